//! The allocation and live-heap collector: a `PyMem_SetAllocator` hook on the OBJ and MEM
//! domains, and (heap on, over pymalloc) on the `free`/`realloc` of the RAW domain.
//!
//! Hot path (every OBJ/MEM allocation): subtract the size from a byte countdown, then
//! tail-call the previous allocator. No lock, no hash lookup, no thread-local access unless
//! the countdown crosses zero.
//!
//! Frees, two ways (chosen per domain at `start()`):
//! * RAW path (the OBJ/MEM allocator underneath is plain pymalloc, the common case): OBJ and
//!   MEM `free` are not hooked at all. A sampled allocation asks pymalloc for at least
//!   [`RAW_MIN`] bytes, more than it serves from its pools, so the block comes from
//!   `PyMem_RawMalloc` (libc `malloc`); pymalloc's free/realloc hand every block they do not
//!   own to `PyMem_RawFree`/`PyMem_RawRealloc` (`_PyObject_Free`, `pymalloc_realloc` in
//!   `Objects/obmalloc.c`, 3.8 to 3.14), whose domain we hook: so the frees of the tracked
//!   blocks reach our RAW hook, and the hot small-object frees run without one. RAW calls do
//!   not need the GIL: the RAW hook reads [`AddrFilter`] with atomic loads only, and a hit
//!   takes only the table's lock (nothing in it allocates through `PyMem`). Only valid when
//!   the OBJ/MEM allocator we wrap is pymalloc and the RAW one is malloc, as
//!   `_PyMem_GetCurrentAllocatorName()` reports before anything is installed (not with debug
//!   hooks, `PYTHONMALLOC=malloc`, mimalloc, debug builds, or another hook such as
//!   tracemalloc installed below ours), on the versions checked (3.8 to 3.14).
//! * Free path (everything else): OBJ/MEM `free` is hooked and checks one bit of
//!   [`AddrFilter`]'s small, locality-preserving level one before tail-calling the previous
//!   allocator; only sampled allocations (and rare collisions) go on to the second level and
//!   the table. `realloc` checks the filter too.
//!
//! With the heap off, neither `free` is hooked. The countdown is a plain relaxed load and
//! store, not an atomic read-modify-write: OBJ and MEM allocator calls require the GIL, which
//! serialises them (a rare lost update under sub-interpreters with their own GIL only jitters
//! the sampling).
//!
//! Sampled path (on average once per `DD_PROFILING_HEAP_SAMPLE_SIZE` bytes), GIL held:
//! read the calling thread's stack without creating Python objects (the native sampler's
//! walker on our own memory; in fallback mode the frame API with the garbage collector paused),
//! record `alloc-space`/`alloc-samples` scaled by the inverse sampling probability, and track
//! the address in the bounded live table when heap profiling is on. A thread-local flag keeps
//! our own work from being sampled recursively. Nothing here runs Python code or waits for
//! the GIL while holding one of our locks.
//!
//! At `stop()` a hook is removed when it is still the installed allocator, else it stays as
//! a pass-through (another hook, e.g. tracemalloc, chained to it). Blocks served from RAW stay
//! valid whatever is installed later: pymalloc frees them through the RAW domain, which ends
//! in the same libc allocator. A restart re-registers the hooks as the heap setting asks when
//! they are on top; when an OBJ/MEM hook is wrapped, lacks the `free` hook and the RAW path is
//! not available, the heap is reported unavailable. After fork the child starts with an empty
//! table and a new sampling sequence.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use emberscope_collector::memalloc::{AddrFilter, ByteSampler, HeapTable, LiveAlloc, Weight};
use emberscope_collector::{clock, OwnedFrame, Recorder, ThreadSnapshot};
use emberscope_profile::{Label, LabelValue, SampleType};
use emberscope_sync::{fork, Mutex};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::NativeConfig;
use crate::log::warn;

// ---------------------------------------------------------------------------------------
// C API, resolved with dlsym (these functions are outside the limited API).

type MallocFn = unsafe extern "C" fn(*mut c_void, usize) -> *mut c_void;
type CallocFn = unsafe extern "C" fn(*mut c_void, usize, usize) -> *mut c_void;
type ReallocFn = unsafe extern "C" fn(*mut c_void, *mut c_void, usize) -> *mut c_void;
type FreeFn = unsafe extern "C" fn(*mut c_void, *mut c_void);

/// `PyMemAllocatorEx` (unchanged from 3.5 to 3.14).
#[repr(C)]
#[derive(Clone, Copy)]
struct PyMemAllocatorEx {
    ctx: *mut c_void,
    malloc: Option<MallocFn>,
    calloc: Option<CallocFn>,
    realloc: Option<ReallocFn>,
    free: Option<FreeFn>,
}

type GetAllocatorFn = unsafe extern "C" fn(c_int, *mut PyMemAllocatorEx);
type SetAllocatorFn = unsafe extern "C" fn(c_int, *mut PyMemAllocatorEx);
pub(crate) type IntFn = unsafe extern "C" fn() -> c_int;

const DOMAIN_RAW: usize = 0;
const DOMAIN_MEM: usize = 1;
const DOMAIN_OBJ: usize = 2;
/// The RAW path's smallest request for a sampled block: one more than pymalloc's largest
/// small request (`SMALL_REQUEST_THRESHOLD`, 512 from 3.8 to 3.14), so pymalloc serves it
/// (malloc, calloc and realloc alike) with `PyMem_RawMalloc`/`PyMem_RawRealloc` and counts
/// it as its own (`sys.getallocatedblocks()` stays exact). A sampled 24-byte object takes 513
/// bytes: at most 16,384 tracked blocks, about one per `DD_PROFILING_HEAP_SAMPLE_SIZE`
/// bytes of live heap.
const RAW_MIN: usize = 513;
/// The versions whose `Objects/obmalloc.c` was checked for what the RAW path relies on:
/// `_PyObject_Free`/`_PyObject_Realloc` hand blocks pymalloc does not own to
/// `PyMem_RawFree`/`PyMem_RawRealloc`, and requests above 512 bytes go to RAW.
const RAW_PATH_VERSIONS: std::ops::RangeInclusive<(u32, u32)> = (3, 8)..=(3, 14);

fn sym(name: &CStr) -> usize {
    // SAFETY: dlsym with a valid NUL-terminated name has no other preconditions.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

pub(crate) fn int_fn(name: &CStr) -> Option<IntFn> {
    let p = sym(name);
    // SAFETY: the named functions take no arguments and return an int in every version
    // that exports them (PyGC_Enable/PyGC_Disable 3.10+, PyGILState_Check 3.4+).
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, IntFn>(p) })
}

// ---------------------------------------------------------------------------------------
// The hook.

/// The allocator a domain's hook chains to. The hook is registered with the previous
/// allocator's own `ctx`, so it passes its arguments through unchanged (a tail call with the
/// registers as they came) and, with the heap off, `free` is the previous allocator's own.
/// Set before the hook is registered and kept afterwards: an allocator that captured ours
/// (tracemalloc started after us) keeps calling it after `stop()`. (Also holds the default
/// allocators the RAW path compares against, [`DEFAULT`].)
struct Prev {
    ctx: AtomicPtr<c_void>,
    malloc: AtomicUsize,
    calloc: AtomicUsize,
    realloc: AtomicUsize,
    free: AtomicUsize,
}

impl Prev {
    const fn new() -> Self {
        Prev {
            ctx: AtomicPtr::new(std::ptr::null_mut()),
            malloc: AtomicUsize::new(0),
            calloc: AtomicUsize::new(0),
            realloc: AtomicUsize::new(0),
            free: AtomicUsize::new(0),
        }
    }

    fn store(&self, a: &PyMemAllocatorEx) {
        let f = |v: Option<usize>| v.unwrap_or(0);
        self.ctx.store(a.ctx, Ordering::Relaxed);
        self.malloc
            .store(f(a.malloc.map(|p| p as usize)), Ordering::Relaxed);
        self.calloc
            .store(f(a.calloc.map(|p| p as usize)), Ordering::Relaxed);
        self.realloc
            .store(f(a.realloc.map(|p| p as usize)), Ordering::Relaxed);
        self.free
            .store(f(a.free.map(|p| p as usize)), Ordering::Relaxed);
    }

    /// Whether `a` is this allocator (same context and functions; never for an empty one).
    fn is(&self, a: &PyMemAllocatorEx) -> bool {
        let mine = self.allocator();
        mine.malloc.is_some() && same_allocator(&mine, a)
    }

    fn allocator(&self) -> PyMemAllocatorEx {
        let f = |a: &AtomicUsize| match a.load(Ordering::Relaxed) {
            0 => None,
            v => Some(v),
        };
        // SAFETY: non-zero values were stored from functions of these exact types.
        unsafe {
            PyMemAllocatorEx {
                ctx: self.ctx.load(Ordering::Relaxed),
                malloc: f(&self.malloc).map(|v| std::mem::transmute::<usize, MallocFn>(v)),
                calloc: f(&self.calloc).map(|v| std::mem::transmute::<usize, CallocFn>(v)),
                realloc: f(&self.realloc).map(|v| std::mem::transmute::<usize, ReallocFn>(v)),
                free: f(&self.free).map(|v| std::mem::transmute::<usize, FreeFn>(v)),
            }
        }
    }
}

/// The five words of a `PyMemAllocatorEx` (`ctx`, then the functions; 0 for none), as laid
/// out in memory.
fn allocator_words(a: &PyMemAllocatorEx) -> [usize; 5] {
    [
        a.ctx as usize,
        a.malloc.map_or(0, |p| p as usize),
        a.calloc.map_or(0, |p| p as usize),
        a.realloc.map_or(0, |p| p as usize),
        a.free.map_or(0, |p| p as usize),
    ]
}

fn same_allocator(a: &PyMemAllocatorEx, b: &PyMemAllocatorEx) -> bool {
    allocator_words(a) == allocator_words(b)
}

/// Countdown value meaning "not sampling" (never reached by real allocation volumes).
const IDLE: i64 = i64::MAX / 2;

static COUNTDOWN: AtomicI64 = AtomicI64::new(IDLE);
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HEAP: AtomicBool = AtomicBool::new(false);
static MEAN: AtomicI64 = AtomicI64::new(1 << 20);
static FILTER: AddrFilter = AddrFilter::new();
/// Indexed by domain (RAW = 0, MEM = 1, OBJ = 2).
static PREV: [Prev; 3] = [const { Prev::new() }; 3];
/// Whether our hook is in the domain's allocator chain.
static INSTALLED: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];
/// Whether the installed OBJ/MEM hook includes `free` and the filtering `realloc` (the free
/// path of the heap).
static FREE_HOOKED: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];
/// The default allocators, seen while `_PyMem_GetCurrentAllocatorName()` said "pymalloc":
/// RAW = malloc, MEM = OBJ = pymalloc. Empty until then (the RAW path is never used).
static DEFAULT: [Prev; 3] = [const { Prev::new() }; 3];
/// OBJ/MEM: the domain's sampled allocations are served by RAW and its tracked blocks'
/// frees are seen by the RAW hook (the RAW path). Only set while the heap is tracked.
static RAW_PATH: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];

// Telemetry (sampled path only).
/// Times our OBJ/MEM hooks were found taken out of the allocator chain by a hook installed
/// before them (see [`check_hooks`]).
static HOOKS_LOST: AtomicU64 = AtomicU64::new(0);
static ALLOC_SAMPLES: AtomicU64 = AtomicU64::new(0);
static ALLOC_NO_STACK: AtomicU64 = AtomicU64::new(0);
static CAPTURE_NS: AtomicU64 = AtomicU64::new(0);
/// One sampled allocation in this many has its capture timed (see record_sampled).
const CAPTURE_TIMING_EVERY: u64 = 16;

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

const fn domain_name(d: usize) -> &'static str {
    match d {
        DOMAIN_OBJ => "obj",
        DOMAIN_MEM => "mem",
        _ => "raw",
    }
}

// The previous allocator's functions. SAFETY (all four): only called from our hooks, which
// are registered after PREV[D] was filled from a complete allocator (install_domain), and
// PREV[D] is never cleared.
#[inline(always)]
unsafe fn prev_malloc<const D: usize>() -> MallocFn {
    unsafe { std::mem::transmute::<usize, MallocFn>(PREV[D].malloc.load(Ordering::Relaxed)) }
}
#[inline(always)]
unsafe fn prev_calloc<const D: usize>() -> CallocFn {
    unsafe { std::mem::transmute::<usize, CallocFn>(PREV[D].calloc.load(Ordering::Relaxed)) }
}
#[inline(always)]
unsafe fn prev_realloc<const D: usize>() -> ReallocFn {
    unsafe { std::mem::transmute::<usize, ReallocFn>(PREV[D].realloc.load(Ordering::Relaxed)) }
}
#[inline(always)]
unsafe fn prev_free<const D: usize>() -> FreeFn {
    unsafe { std::mem::transmute::<usize, FreeFn>(PREV[D].free.load(Ordering::Relaxed)) }
}

/// Takes `size` bytes off the countdown; true when a sample point falls in them (rare).
#[inline(always)]
fn countdown_crossed(size: usize) -> bool {
    // Sizes reaching the hook are at most PY_SSIZE_T_MAX (the C API rejects larger ones).
    let c = COUNTDOWN.load(Ordering::Relaxed).wrapping_sub(size as i64);
    COUNTDOWN.store(c, Ordering::Relaxed);
    c <= 0
}

// The hooks are written so that their common path is a tail call to the previous allocator
// with the arguments as they came (a `jmp`, no stack frame of ours): the countdown is taken
// before the allocation, and a crossing or a tracked address goes to a cold out-of-line
// function that makes the call itself. Those are `extern "C"` (they cannot unwind) so that
// the hooks need no landing pad.

unsafe extern "C" fn h_malloc<const D: usize>(ctx: *mut c_void, size: usize) -> *mut c_void {
    if countdown_crossed(size) {
        // SAFETY: as prev_malloc.
        return unsafe { malloc_sampled::<D>(ctx, size) };
    }
    // SAFETY: as prev_malloc; ctx is the previous allocator's own.
    unsafe { prev_malloc::<D>()(ctx, size) }
}

unsafe extern "C" fn h_calloc<const D: usize>(
    ctx: *mut c_void,
    n: usize,
    elsize: usize,
) -> *mut c_void {
    if countdown_crossed(n.saturating_mul(elsize)) {
        // SAFETY: as prev_calloc.
        return unsafe { calloc_sampled::<D>(ctx, n, elsize) };
    }
    // SAFETY: as prev_calloc.
    unsafe { prev_calloc::<D>()(ctx, n, elsize) }
}

/// `realloc` without the filter (heap off, or the RAW path: the RAW hook sees the old block).
unsafe extern "C" fn h_realloc_count<const D: usize>(
    ctx: *mut c_void,
    ptr: *mut c_void,
    size: usize,
) -> *mut c_void {
    if countdown_crossed(size) {
        // SAFETY: as prev_realloc.
        return unsafe { realloc_slow::<D>(ctx, ptr, size, true, false) };
    }
    // SAFETY: as prev_realloc.
    unsafe { prev_realloc::<D>()(ctx, ptr, size) }
}

/// `realloc` of the free path: the old block may be tracked.
unsafe extern "C" fn h_realloc<const D: usize>(
    ctx: *mut c_void,
    ptr: *mut c_void,
    size: usize,
) -> *mut c_void {
    let tracked = FILTER.maybe_contains(ptr as usize);
    let crossed = countdown_crossed(size);
    if crossed | tracked {
        // SAFETY: as prev_realloc.
        return unsafe { realloc_slow::<D>(ctx, ptr, size, crossed, tracked) };
    }
    // SAFETY: as prev_realloc.
    unsafe { prev_realloc::<D>()(ctx, ptr, size) }
}

/// Registered only while the heap is tracked through the free path (else the previous
/// `free` is registered).
unsafe extern "C" fn h_free<const D: usize>(ctx: *mut c_void, ptr: *mut c_void) {
    if FILTER.maybe_contains(ptr as usize) {
        // SAFETY: as prev_free.
        return unsafe { free_tracked::<D>(ctx, ptr) };
    }
    // SAFETY: as prev_free.
    unsafe { prev_free::<D>()(ctx, ptr) }
}

/// RAW hooks (the RAW path): `malloc`/`calloc` stay the previous allocator's own. These run
/// on any thread, with or without the GIL.
unsafe extern "C" fn h_raw_free(ctx: *mut c_void, ptr: *mut c_void) {
    if FILTER.maybe_contains(ptr as usize) {
        // SAFETY: as prev_free.
        return unsafe { raw_free_tracked(ctx, ptr) };
    }
    // SAFETY: as prev_free.
    unsafe { prev_free::<DOMAIN_RAW>()(ctx, ptr) }
}

unsafe extern "C" fn h_raw_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    if FILTER.maybe_contains(ptr as usize) {
        // SAFETY: as prev_realloc.
        return unsafe { raw_realloc_tracked(ctx, ptr, size) };
    }
    // SAFETY: as prev_realloc.
    unsafe { prev_realloc::<DOMAIN_RAW>()(ctx, ptr, size) }
}

/// Whether domain `D` serves its sampled allocations from RAW (read on the sampled path only).
#[inline(always)]
fn raw_path<const D: usize>() -> bool {
    RAW_PATH[D].load(Ordering::Relaxed)
}

#[cold]
#[inline(never)]
unsafe extern "C" fn malloc_sampled<const D: usize>(ctx: *mut c_void, size: usize) -> *mut c_void {
    // The RAW path asks pymalloc for a block it serves from RAW (see RAW_MIN).
    let req = if raw_path::<D>() {
        size.max(RAW_MIN)
    } else {
        size
    };
    // SAFETY: as prev_malloc.
    let p = unsafe { prev_malloc::<D>()(ctx, req) };
    sampled(domain_name(D), p, size);
    p
}

#[cold]
#[inline(never)]
unsafe extern "C" fn calloc_sampled<const D: usize>(
    ctx: *mut c_void,
    n: usize,
    elsize: usize,
) -> *mut c_void {
    let size = n.saturating_mul(elsize);
    // SAFETY: as prev_calloc. (A small request becomes one zeroed RAW_MIN-byte block; an
    // overflowing one goes as it came, for the allocator to refuse.)
    let p = unsafe {
        if raw_path::<D>() && size < RAW_MIN {
            prev_calloc::<D>()(ctx, 1, RAW_MIN)
        } else {
            prev_calloc::<D>()(ctx, n, elsize)
        }
    };
    sampled(domain_name(D), p, size);
    p
}

/// `realloc` whose countdown crossed zero or whose old block may be tracked (the countdown
/// was already taken).
#[cold]
#[inline(never)]
unsafe extern "C" fn realloc_slow<const D: usize>(
    ctx: *mut c_void,
    ptr: *mut c_void,
    size: usize,
    crossed: bool,
    tracked: bool,
) -> *mut c_void {
    // A sampled block of the RAW path must come from RAW: pymalloc reallocates any block to
    // more than its small-request limit through RAW (and keeps min(old, size) bytes).
    let req = if crossed && raw_path::<D>() {
        size.max(RAW_MIN)
    } else {
        size
    };
    // SAFETY: as prev_realloc.
    let p = unsafe { prev_realloc::<D>()(ctx, ptr, req) };
    if p.is_null() && req != 0 {
        // Failed: the old block is untouched and still live (a crossed countdown stays at or
        // below zero: the next allocation is sampled).
        return p;
    }
    if tracked && !ptr.is_null() {
        untrack(ptr as usize);
    }
    if crossed {
        sampled(domain_name(D), p, size);
    }
    p
}

/// `free` of an address the filter may hold (the free path): out of the table first (the GIL
/// is held, so the address cannot be handed out again before it leaves the table), then freed.
#[cold]
#[inline(never)]
unsafe extern "C" fn free_tracked<const D: usize>(ctx: *mut c_void, ptr: *mut c_void) {
    if !ptr.is_null() {
        untrack(ptr as usize);
    }
    // SAFETY: as prev_free.
    unsafe { prev_free::<D>()(ctx, ptr) }
}

/// RAW `free` of an address the filter may hold, on any thread: out of the table first (a
/// tracked block is still live until it is freed here, so its address cannot be handed out
/// again before it leaves the table), then freed.
#[cold]
#[inline(never)]
unsafe extern "C" fn raw_free_tracked(ctx: *mut c_void, ptr: *mut c_void) {
    if !ptr.is_null() {
        untrack(ptr as usize);
    }
    // SAFETY: as prev_free.
    unsafe { prev_free::<DOMAIN_RAW>()(ctx, ptr) }
}

/// RAW `realloc` of an address the filter may hold: out of the table before the block may be
/// released, back in if the reallocation fails (the entry's place is still allocated, so
/// putting it back allocates nothing).
#[cold]
#[inline(never)]
unsafe extern "C" fn raw_realloc_tracked(
    ctx: *mut c_void,
    ptr: *mut c_void,
    size: usize,
) -> *mut c_void {
    let entry = if ptr.is_null() {
        None
    } else {
        untrack_take(ptr as usize)
    };
    // SAFETY: as prev_realloc.
    let p = unsafe { prev_realloc::<DOMAIN_RAW>()(ctx, ptr, size) };
    if p.is_null() && size != 0 {
        if let Some(e) = entry {
            retrack(ptr as usize, e);
        }
    }
    p
}

// ---------------------------------------------------------------------------------------
// Session state.

/// Where a sampled allocation came from.
#[derive(Clone)]
struct Site {
    frames: Arc<[OwnedFrame]>,
    omitted: u32,
    thread_id: u64,
    native_id: u32,
}

struct MemState {
    recorder: Arc<Recorder>,
    sampler: ByteSampler,
    max_frames: usize,
    qualname: bool,
}

static STATE: Mutex<Option<MemState>> = Mutex::new(None);
static TABLE: Mutex<Option<HeapTable<Site>>> = Mutex::new(None);

/// Live allocations tracked at most (each one keeps a shared stack).
pub const HEAP_CAPACITY: usize = 16_384;

#[cold]
#[inline(never)]
fn sampled(domain: &'static str, p: *mut c_void, size: usize) {
    if !ACTIVE.load(Ordering::Acquire) {
        COUNTDOWN.store(IDLE, Ordering::Relaxed);
        return;
    }
    let entered = IN_HOOK
        .try_with(|c| {
            if c.get() {
                false
            } else {
                c.set(true);
                true
            }
        })
        .unwrap_or(false);
    if !entered {
        // Our own allocation while recording one (or a dying thread): never recurse.
        COUNTDOWN.store(MEAN.load(Ordering::Relaxed).max(1), Ordering::Relaxed);
        return;
    }
    record_sampled(domain, p, size);
    let _ = IN_HOOK.try_with(|c| c.set(false));
}

fn record_sampled(domain: &'static str, p: *mut c_void, size: usize) {
    let (recorder, weight, max_frames, qualname) = {
        let Some(mut g) = STATE.try_lock() else {
            COUNTDOWN.store(MEAN.load(Ordering::Relaxed).max(1), Ordering::Relaxed);
            return;
        };
        let Some(s) = g.as_mut() else {
            COUNTDOWN.store(IDLE, Ordering::Relaxed);
            return;
        };
        COUNTDOWN.store(s.sampler.draw(), Ordering::Relaxed);
        if p.is_null() {
            return;
        }
        (
            s.recorder.clone(),
            s.sampler.weight(size),
            s.max_frames,
            s.qualname,
        )
    };
    // The thread CPU clock is a system call: time one sample in CAPTURE_TIMING_EVERY and
    // scale (an unbiased estimate of the capture time).
    let timed = ALLOC_SAMPLES.load(Ordering::Relaxed) % CAPTURE_TIMING_EVERY == 0;
    let t0 = if timed { clock::own_cpu_ns() } else { 0 };
    let stack = crate::capture::capture_in_hook(max_frames, qualname);
    let (mut frames, omitted, native_id) = match stack {
        Some(s) => s,
        None => {
            ALLOC_NO_STACK.fetch_add(1, Ordering::Relaxed);
            (Vec::new(), 0, None)
        }
    };
    if frames.is_empty() && omitted == 0 {
        // The interpreter allocating outside any Python frame (start-up, thread bootstrap,
        // finalisation): keep the bytes, under one synthetic frame like the reference's
        // `<runtime>` frames, rather than an empty stack.
        frames.push(emberscope_collector::recorder::owned_frame(
            "<no Python frame>",
            "<runtime>",
            0,
        ));
    }
    let site = Site {
        frames: Arc::from(frames),
        omitted,
        // SAFETY: pthread_self has no preconditions.
        thread_id: unsafe { libc::pthread_self() } as u64,
        native_id: native_id.unwrap_or_else(crate::capture::thread_tid),
    };
    let labels = [Label {
        key: "allocator domain",
        value: LabelValue::Str(domain),
    }];
    recorder.lock().add(
        &snapshot(&site),
        &[
            (SampleType::AllocSpace, weight.bytes),
            (SampleType::AllocSamples, weight.count),
        ],
        &labels,
        clock::epoch_ns(SystemTime::now()),
    );
    ALLOC_SAMPLES.fetch_add(1, Ordering::Relaxed);
    if HEAP.load(Ordering::Relaxed) {
        let mut t = TABLE.lock();
        if let Some(table) = t.as_mut() {
            if table.filter_is_stale() {
                // Frees reading the filter meanwhile (RAW ones need not hold the GIL) never
                // miss a live entry: the rebuild moves each word straight to its new value.
                table.rebuild_filter(&FILTER);
            }
            table.insert(
                &FILTER,
                p as usize,
                LiveAlloc {
                    weight,
                    domain,
                    site,
                },
            );
        }
    }
    if timed {
        let ns = clock::own_cpu_ns().saturating_sub(t0);
        CAPTURE_NS.fetch_add(ns.saturating_mul(CAPTURE_TIMING_EVERY), Ordering::Relaxed);
    }
}

#[cold]
#[inline(never)]
fn untrack(addr: usize) {
    drop(untrack_take(addr));
}

/// Takes `addr` out of the table (only our lock; the entry is dropped by the caller, after
/// the lock: dropping frees Rust memory, never through `PyMem`).
fn untrack_take(addr: usize) -> Option<LiveAlloc<Site>> {
    let mut t = TABLE.lock();
    t.as_mut().and_then(|table| table.remove(&FILTER, addr))
}

fn retrack(addr: usize, alloc: LiveAlloc<Site>) {
    let mut t = TABLE.lock();
    if let Some(table) = t.as_mut() {
        table.insert(&FILTER, addr, alloc);
    }
}

fn snapshot(site: &Site) -> ThreadSnapshot<'_> {
    ThreadSnapshot {
        thread_id: site.thread_id,
        native_id: Some(site.native_id),
        frames: &site.frames,
        omitted: site.omitted,
    }
}

// ---------------------------------------------------------------------------------------
// Lifecycle.

fn allocator_api() -> Option<(GetAllocatorFn, SetAllocatorFn)> {
    match (sym(c"PyMem_GetAllocator"), sym(c"PyMem_SetAllocator")) {
        (0, _) | (_, 0) => None,
        // SAFETY: these are the C API functions of these signatures.
        (g, s) => unsafe {
            Some((
                std::mem::transmute::<usize, GetAllocatorFn>(g),
                std::mem::transmute::<usize, SetAllocatorFn>(s),
            ))
        },
    }
}

fn current_allocator(get: GetAllocatorFn, domain: usize) -> PyMemAllocatorEx {
    let mut cur = PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    };
    // SAFETY: `cur` is a valid out-pointer. PyMem_GetAllocator copies the domain's allocator
    // (3.12+: under the allocators' own mutex, which needs no thread state), so it may be
    // called without the GIL (check_hooks on the scheduler thread).
    unsafe { get(domain as c_int, &mut cur) };
    cur
}

/// Our allocator for OBJ/MEM domain `D` over PREV[D]: for the free path of the heap, `free`
/// and the filtering `realloc` are hooked; otherwise `free` is the previous allocator's own
/// and `realloc` only counts.
fn our_allocator<const D: usize>(free_path: bool) -> PyMemAllocatorEx {
    let prev = PREV[D].allocator();
    PyMemAllocatorEx {
        ctx: prev.ctx,
        malloc: Some(h_malloc::<D>),
        calloc: Some(h_calloc::<D>),
        realloc: Some(if free_path {
            h_realloc::<D>
        } else {
            h_realloc_count::<D>
        }),
        free: if free_path {
            Some(h_free::<D>)
        } else {
            prev.free
        },
    }
}

/// Our RAW allocator over PREV[RAW]: `malloc`/`calloc` are the previous ones.
fn our_raw_allocator() -> PyMemAllocatorEx {
    let prev = PREV[DOMAIN_RAW].allocator();
    PyMemAllocatorEx {
        ctx: prev.ctx,
        malloc: prev.malloc,
        calloc: prev.calloc,
        realloc: Some(h_raw_realloc),
        free: Some(h_raw_free),
    }
}

/// Whether this is a debug build (`Py_REF_DEBUG`, so `Py_DEBUG`): its allocators expect
/// their own headers; the RAW path is never used there.
fn debug_build() -> bool {
    sym(c"_Py_NegativeRefcount") != 0
}

/// Records the default allocators (DEFAULT) when the interpreter reports plain pymalloc,
/// which `_PyMem_GetCurrentAllocatorName` (exported 3.8 to 3.14) only does when RAW is malloc
/// and MEM and OBJ are pymalloc with no hook over them (not ours, not tracemalloc's, no debug
/// hooks). Called before our hooks are installed; once known, kept for the process.
fn learn_default(get: GetAllocatorFn) {
    if DEFAULT[DOMAIN_OBJ].malloc.load(Ordering::Relaxed) != 0 || debug_build() {
        return;
    }
    let f = sym(c"_PyMem_GetCurrentAllocatorName");
    if f == 0 {
        return;
    }
    // SAFETY: `const char *_PyMem_GetCurrentAllocatorName(void)` in every version that
    // exports it; it returns a static string or NULL. GIL held.
    let name = unsafe {
        let f = std::mem::transmute::<usize, unsafe extern "C" fn() -> *const libc::c_char>(f);
        f()
    };
    // SAFETY: a non-NULL result is a static NUL-terminated string.
    if name.is_null() || unsafe { CStr::from_ptr(name) } != c"pymalloc" {
        return;
    }
    let raw = current_allocator(get, DOMAIN_RAW);
    let mem = current_allocator(get, DOMAIN_MEM);
    let obj = current_allocator(get, DOMAIN_OBJ);
    let complete = |a: &PyMemAllocatorEx| {
        a.malloc.is_some() && a.calloc.is_some() && a.realloc.is_some() && a.free.is_some()
    };
    if !(complete(&raw) && complete(&mem) && same_allocator(&mem, &obj)) {
        return;
    }
    DEFAULT[DOMAIN_RAW].store(&raw);
    DEFAULT[DOMAIN_MEM].store(&mem);
    DEFAULT[DOMAIN_OBJ].store(&obj);
}

/// Puts our RAW hook over the default RAW allocator (or finds it still there). Returns whether
/// it is in the RAW chain right over malloc, which the RAW path needs: frees reach it, and
/// nothing below it (a hook that restores its saved allocator when stopped) can drop it.
fn install_raw() -> bool {
    let Some((get, set)) = allocator_api() else {
        return false;
    };
    let default = DEFAULT[DOMAIN_RAW].allocator();
    if default.malloc.is_none() {
        return false;
    }
    if INSTALLED[DOMAIN_RAW].load(Ordering::Acquire) {
        return PREV[DOMAIN_RAW].is(&default);
    }
    let cur = current_allocator(get, DOMAIN_RAW);
    if !same_allocator(&cur, &default) {
        return false;
    }
    PREV[DOMAIN_RAW].store(&cur);
    let mut ours = our_raw_allocator();
    // SAFETY: GIL held; our allocator chains to the current one. Threads calling RAW
    // functions meanwhile see the previous allocator or ours (same ctx), both valid.
    unsafe { set(DOMAIN_RAW as c_int, &mut ours) };
    INSTALLED[DOMAIN_RAW].store(true, Ordering::Release);
    true
}

fn uninstall_raw() {
    if !INSTALLED[DOMAIN_RAW].load(Ordering::Acquire) {
        return;
    }
    let Some((get, set)) = allocator_api() else {
        return;
    };
    let cur = current_allocator(get, DOMAIN_RAW);
    if cur.free.map(|f| f as usize) == Some(h_raw_free as FreeFn as usize) {
        let mut orig = PREV[DOMAIN_RAW].allocator();
        // SAFETY: GIL held; restores the allocator we wrapped. A RAW free already inside our
        // hook finishes with PREV, which is never cleared.
        unsafe { set(DOMAIN_RAW as c_int, &mut orig) };
        INSTALLED[DOMAIN_RAW].store(false, Ordering::Release);
    }
    // Otherwise someone wrapped us: stay installed as a pass-through (the filter is empty).
}

/// Puts our hook in front of OBJ/MEM domain `D`'s allocator. With the heap on, its frees are
/// seen through the RAW path when `raw_ok` (our RAW hook is in place) and the allocator
/// underneath is the default pymalloc, else through the free path. Returns whether frees are
/// seen (false only when the heap is wanted, the RAW path is not available and a hook
/// installed without `free` has since been wrapped by another one, so cannot be changed).
fn install_domain<const D: usize>(heap: bool, raw_ok: bool) -> Result<bool, String> {
    let name = domain_name(D);
    let Some((get, set)) = allocator_api() else {
        return Err("PyMem_GetAllocator/PyMem_SetAllocator not found".into());
    };
    let cur = current_allocator(get, D);
    let on_top = cur.malloc.map(|f| f as usize) == Some(h_malloc::<D> as MallocFn as usize);
    let raw_below = |prev: &PyMemAllocatorEx| heap && raw_ok && DEFAULT[D].is(prev);
    if INSTALLED[D].load(Ordering::Acquire) {
        let free_hooked = FREE_HOOKED[D].load(Ordering::Relaxed);
        if !on_top {
            // Someone wrapped us: our hook stays as it is. A free-path hook keeps that path
            // (its `free` sees everything); one without can still use the RAW path.
            let raw = !free_hooked && raw_below(&PREV[D].allocator());
            RAW_PATH[D].store(raw, Ordering::Relaxed);
            return Ok(!heap || raw || free_hooked);
        }
        let raw = raw_below(&PREV[D].allocator());
        let free_path = heap && !raw;
        if free_hooked != free_path {
            let mut ours = our_allocator::<D>(free_path);
            // SAFETY: GIL held; replaces our hook with our hook over the same allocator.
            unsafe { set(D as c_int, &mut ours) };
            FREE_HOOKED[D].store(free_path, Ordering::Relaxed);
        }
        RAW_PATH[D].store(raw, Ordering::Relaxed);
        return Ok(true);
    }
    let (Some(_), Some(_), Some(_), Some(_)) = (cur.malloc, cur.calloc, cur.realloc, cur.free)
    else {
        return Err(format!("the {name} allocator is incomplete"));
    };
    PREV[D].store(&cur);
    let raw = raw_below(&cur);
    let free_path = heap && !raw;
    let mut ours = our_allocator::<D>(free_path);
    // SAFETY: GIL held; our allocator wraps (chains to) the current one, as the API requires
    // after initialisation.
    unsafe { set(D as c_int, &mut ours) };
    FREE_HOOKED[D].store(free_path, Ordering::Relaxed);
    INSTALLED[D].store(true, Ordering::Release);
    RAW_PATH[D].store(raw, Ordering::Relaxed);
    Ok(true)
}

/// Whether our hook of domain `D`, though registered, is no longer in the allocator chain:
/// the current allocator is the one we wrapped, or the one that one wrapped (read through its
/// `ctx` when it points to a saved `PyMemAllocatorEx`, as tracemalloc's does, with a checked
/// copy: `ctx` may point anywhere). Both lie below our hook, so allocations no longer reach
/// it. This is what `tracemalloc.stop()` does when tracemalloc was started before the
/// profiler: it restores the allocator it saved, dropping ours. A hook that wraps ours is
/// never mistaken for this (its functions are neither of those); an unknown kind of hook that
/// dropped ours goes unnoticed. Callable without the GIL.
fn hook_lost<const D: usize>(get: GetAllocatorFn) -> bool {
    if !INSTALLED[D].load(Ordering::Acquire) {
        return false;
    }
    let cur = current_allocator(get, D);
    if cur.malloc.map(|f| f as usize) == Some(h_malloc::<D> as MallocFn as usize) {
        return false;
    }
    let prev = PREV[D].allocator();
    if prev.malloc.is_some() && same_allocator(&cur, &prev) {
        return true;
    }
    if prev.ctx.is_null() {
        return false;
    }
    let Ok(reader) = emberscope_sampler::memory::MemoryReader::new() else {
        return false;
    };
    let mut words = [0usize; 5];
    for (i, w) in words.iter_mut().enumerate() {
        match reader.read_usize(prev.ctx as usize + i * std::mem::size_of::<usize>()) {
            Ok(v) => *w = v,
            Err(_) => return false,
        }
    }
    words[1] != 0 && words == allocator_words(&cur)
}

/// Notices hooks dropped from under us ([`hook_lost`]) and stops the collector instead of
/// exporting a live heap whose frees can no longer be seen (it would only grow). One warning;
/// restarting the profiler installs the hooks again. Called every period by the scheduler
/// (without the GIL) and by `memalloc_stats`.
pub fn check_hooks() {
    let Some((get, _)) = allocator_api() else {
        return;
    };
    let lost = [hook_lost::<DOMAIN_OBJ>(get), hook_lost::<DOMAIN_MEM>(get)];
    if !lost.contains(&true) {
        return;
    }
    for (d, l) in [DOMAIN_OBJ, DOMAIN_MEM].into_iter().zip(lost) {
        if l {
            RAW_PATH[d].store(false, Ordering::Relaxed);
            FREE_HOOKED[d].store(false, Ordering::Relaxed);
            INSTALLED[d].store(false, Ordering::Release);
        }
    }
    let was_active = ACTIVE.swap(false, Ordering::AcqRel);
    COUNTDOWN.store(IDLE, Ordering::Relaxed);
    HEAP.store(false, Ordering::Relaxed);
    if let Some(t) = TABLE.lock().as_mut() {
        t.clear(&FILTER);
    }
    HOOKS_LOST.fetch_add(1, Ordering::Relaxed);
    if was_active {
        warn(
            "allocation and heap profiling stopped: an allocator hook installed before the \
             profiler (e.g. tracemalloc, stopped with tracemalloc.stop()) removed the profiler's \
             hook; restart the profiler to resume",
        );
    }
}

fn uninstall_domain<const D: usize>() {
    RAW_PATH[D].store(false, Ordering::Relaxed);
    if !INSTALLED[D].load(Ordering::Acquire) {
        return;
    }
    let Some((get, set)) = allocator_api() else {
        return;
    };
    let cur = current_allocator(get, D);
    if cur.malloc.map(|f| f as usize) == Some(h_malloc::<D> as MallocFn as usize) {
        let mut orig = PREV[D].allocator();
        // SAFETY: GIL held; restores the allocator we wrapped.
        unsafe { set(D as c_int, &mut orig) };
        INSTALLED[D].store(false, Ordering::Release);
        FREE_HOOKED[D].store(false, Ordering::Relaxed);
    }
    // Otherwise someone wrapped us: stay installed as a pass-through (ACTIVE is false).
}

/// Starts the allocation (and heap) collector; returns its state for `start()`'s dict:
/// `"on"`, `"off"` or `"unavailable"`.
pub fn start(
    py: Python<'_>,
    config: &NativeConfig,
    version: (u32, u32, u32),
    recorder: &Arc<Recorder>,
) -> &'static str {
    // Hooks dropped from under a previous session are installed afresh below.
    check_hooks();
    ACTIVE.store(false, Ordering::Release);
    COUNTDOWN.store(IDLE, Ordering::Relaxed);
    if !config.memory {
        return "off";
    }
    let seed = clock::epoch_ns(SystemTime::now()) as u64 ^ u64::from(std::process::id());
    let mean = config.heap_sample_size.max(1);
    MEAN.store(mean.min(IDLE as u64) as i64, Ordering::Relaxed);
    *STATE.lock() = Some(MemState {
        recorder: recorder.clone(),
        sampler: ByteSampler::new(mean, seed),
        max_frames: config.max_frames,
        qualname: version >= (3, 11, 0),
    });
    {
        let mut t = TABLE.lock();
        match t.as_mut() {
            Some(table) => table.clear(&FILTER),
            None => *t = Some(HeapTable::new(HEAP_CAPACITY)),
        }
    }
    FILTER.clear();
    let _ = py;
    if let Some((get, _)) = allocator_api() {
        learn_default(get);
    }
    let raw_ok =
        config.heap && RAW_PATH_VERSIONS.contains(&(version.0, version.1)) && install_raw();
    let mut frees_seen = true;
    for r in [
        install_domain::<DOMAIN_OBJ>(config.heap, raw_ok),
        install_domain::<DOMAIN_MEM>(config.heap, raw_ok),
    ] {
        match r {
            Ok(seen) => frees_seen &= seen,
            Err(e) => {
                warn(&format!("allocation profiling is unavailable: {e}"));
                stop_hooks();
                *STATE.lock() = None;
                return "unavailable";
            }
        }
    }
    if !raw_path::<DOMAIN_OBJ>() && !raw_path::<DOMAIN_MEM>() {
        uninstall_raw();
    }
    if config.heap && !frees_seen {
        warn(
            "heap profiling is unavailable in this session: another allocator hook \
             (e.g. tracemalloc) wraps the one installed without heap tracking",
        );
    }
    HEAP.store(config.heap && frees_seen, Ordering::Relaxed);
    if let Some(s) = STATE.lock().as_mut() {
        COUNTDOWN.store(s.sampler.draw(), Ordering::Relaxed);
    }
    ACTIVE.store(true, Ordering::Release);
    "on"
}

fn stop_hooks() {
    ACTIVE.store(false, Ordering::Release);
    COUNTDOWN.store(IDLE, Ordering::Relaxed);
    uninstall_domain::<DOMAIN_MEM>();
    uninstall_domain::<DOMAIN_OBJ>();
    uninstall_raw();
}

/// Stops the collector: the hooks are removed (or left as pass-throughs), the table emptied.
pub fn stop() {
    stop_hooks();
    HEAP.store(false, Ordering::Relaxed);
    *STATE.lock() = None;
    if let Some(t) = TABLE.lock().as_mut() {
        t.clear(&FILTER);
    }
}

/// Whether allocations (and the heap) are being profiled: (memory, heap).
pub fn status() -> (bool, bool) {
    let on = ACTIVE.load(Ordering::Acquire);
    (on, on && HEAP.load(Ordering::Relaxed))
}

/// In the forked child: an empty table, the child's recorder and a stack walker reading
/// the child's own memory (the parent's one reads by pid). The hook stays installed.
pub fn after_fork_child(
    py: Python<'_>,
    version: (u32, u32, u32),
    native_ok: bool,
    recorder: &Arc<Recorder>,
) {
    let was_active = ACTIVE.swap(false, Ordering::AcqRel);
    crate::capture::prepare_capture(py, version, native_ok);
    if let Some(t) = TABLE.lock().as_mut() {
        t.clear(&FILTER);
        let _ = t.take_counters();
    }
    if let Some(s) = STATE.lock().as_mut() {
        s.recorder = recorder.clone();
        // A new sequence of sample points (the parent's would repeat in every child), and a
        // new countdown: a crossing while ACTIVE was off (prepare_capture allocates) parked
        // it at IDLE.
        let seed = clock::epoch_ns(SystemTime::now()) as u64 ^ u64::from(std::process::id());
        s.sampler = ByteSampler::new(s.sampler.mean(), seed);
        COUNTDOWN.store(s.sampler.draw(), Ordering::Relaxed);
    }
    ACTIVE.store(was_active, Ordering::Release);
}

/// Takes this module's locks before `fork()` (from the pthread_atfork prepare handler);
/// `fork::release_all` releases them.
pub fn lock_for_fork() {
    fork::hold_static(&STATE);
    crate::capture::lock_for_fork();
    fork::hold_static(&TABLE);
}

// ---------------------------------------------------------------------------------------
// Per period.

/// Adds the live heap (every tracked allocation, with its allocation stack) to the current
/// period. Called by the scheduler right before the period ends; never with the GIL.
pub fn export_heap(recorder: &Recorder) {
    if ACTIVE.load(Ordering::Acquire) {
        check_hooks();
    }
    if !HEAP.load(Ordering::Relaxed) {
        return;
    }
    let live: Vec<(Weight, &'static str, Site)> = {
        let t = TABLE.lock();
        let Some(table) = t.as_ref() else {
            return;
        };
        table
            .iter()
            .map(|(_, a)| (a.weight, a.domain, a.site.clone()))
            .collect()
    };
    if live.is_empty() {
        return;
    }
    let ts = clock::epoch_ns(SystemTime::now());
    let mut g = recorder.lock();
    for (w, domain, site) in &live {
        g.add(
            &snapshot(site),
            &[
                (SampleType::HeapSpace, w.bytes),
                (SampleType::HeapLiveSamples, w.count),
            ],
            &[Label {
                key: "allocator domain",
                value: LabelValue::Str(domain),
            }],
            ts,
        );
    }
}

/// Counters for the profile's `internal` metadata (reset on read).
pub fn internal() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    let (mem, heap) = status();
    m.insert("memory_collector".into(), mem.into());
    if !mem && ALLOC_SAMPLES.load(Ordering::Relaxed) == 0 {
        return m;
    }
    m.insert(
        "alloc_samples".into(),
        ALLOC_SAMPLES.swap(0, Ordering::Relaxed).into(),
    );
    m.insert(
        "alloc_samples_without_stack".into(),
        ALLOC_NO_STACK.swap(0, Ordering::Relaxed).into(),
    );
    m.insert(
        "alloc_capture_cpu_time_us".into(),
        (CAPTURE_NS.swap(0, Ordering::Relaxed) / 1000).into(),
    );
    m.insert("heap_collector".into(), heap.into());
    m.insert(
        "memalloc_hooks_lost".into(),
        HOOKS_LOST.load(Ordering::Relaxed).into(),
    );
    m.insert(
        "heap_raw_path".into(),
        (heap && (raw_path::<DOMAIN_OBJ>() || raw_path::<DOMAIN_MEM>())).into(),
    );
    if let Some(t) = TABLE.lock().as_mut() {
        let c = t.take_counters();
        m.insert("heap_tracked".into(), (t.len() as u64).into());
        m.insert("heap_dropped".into(), c.dropped.into());
        m.insert("heap_untracked".into(), c.untracked.into());
        m.insert(
            "heap_filter_false_positives".into(),
            c.filter_false_positives.into(),
        );
    }
    m
}

/// `_native.memalloc_stats()`: a snapshot for tests and `--info` (not reset).
#[pyfunction]
fn memalloc_stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    if ACTIVE.load(Ordering::Acquire) {
        check_hooks();
    }
    let d = PyDict::new(py);
    let (mem, heap) = status();
    d.set_item("hooks_lost", HOOKS_LOST.load(Ordering::Relaxed))?;
    d.set_item("memory", mem)?;
    d.set_item("heap", heap)?;
    d.set_item("sample_size", MEAN.load(Ordering::Relaxed))?;
    d.set_item("alloc_samples", ALLOC_SAMPLES.load(Ordering::Relaxed))?;
    d.set_item("native_walker", crate::capture::native_ok())?;
    let hooked: Vec<&str> = [DOMAIN_OBJ, DOMAIN_MEM, DOMAIN_RAW]
        .into_iter()
        .filter(|d| INSTALLED[*d].load(Ordering::Acquire))
        .map(domain_name)
        .collect();
    d.set_item("hooked_domains", hooked)?;
    let raw_path: Vec<&str> = [DOMAIN_OBJ, DOMAIN_MEM]
        .into_iter()
        .filter(|d| heap && RAW_PATH[*d].load(Ordering::Relaxed))
        .map(domain_name)
        .collect();
    d.set_item("heap_raw_path", raw_path)?;
    // Read under the lock, build Python objects after: creating them allocates, and a
    // sampled allocation takes TABLE (a self-deadlock if it were still held here).
    let table = TABLE.lock().as_ref().map(|t| {
        (
            t.len(),
            t.iter().map(|(_, a)| a.weight.bytes).sum::<i64>(),
            t.rebuilds(),
        )
    });
    if let Some((tracked, bytes, rebuilds)) = table {
        d.set_item("heap_tracked", tracked)?;
        d.set_item("heap_estimated_bytes", bytes)?;
        d.set_item("heap_filter_rebuilds", rebuilds)?;
    }
    Ok(d)
}

/// Registers this module's Python functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(memalloc_stats, m)?)?;
    Ok(())
}
