//! The allocation and live-heap collector: a `PyMem_SetAllocator` hook on the OBJ and MEM
//! domains.
//!
//! Hot path (every allocation): call the previous allocator, subtract the size from a byte
//! countdown, return. Every free: one bit of [`AddrFilter`] is checked before the previous
//! allocator's free; only sampled allocations (and rare collisions) touch the live table. No
//! lock, no hash lookup, no thread-local access on either path unless the countdown crosses
//! zero or the filter bit is set.
//!
//! The countdown is a plain relaxed load and store, not an atomic read-modify-write: OBJ and
//! MEM allocator calls require the GIL, which serialises them (a rare lost update under
//! sub-interpreters with their own GIL only jitters the sampling).
//!
//! Sampled path (on average once per `DD_PROFILING_HEAP_SAMPLE_SIZE` bytes), GIL held:
//! read the calling thread's stack without creating Python objects (the native sampler's
//! walker on our own memory; in fallback mode the frame API with the garbage collector paused),
//! record `alloc-space`/`alloc-samples` scaled by the inverse sampling probability, and track
//! the address in the bounded live table when heap profiling is on. A thread-local flag keeps
//! our own work from being sampled recursively. Nothing here runs Python code or waits for
//! the GIL while holding one of our locks.
//!
//! At `stop()` the hook is removed when it is still the installed allocator, else it stays as
//! a pass-through (another hook, e.g. tracemalloc, chained to it). After fork the child starts
//! with an empty table.

use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use emberscope_collector::memalloc::{AddrFilter, ByteSampler, HeapTable, LiveAlloc, Weight};
use emberscope_collector::{clock, OwnedFrame, Recorder, ThreadSnapshot};
use emberscope_profile::{Label, LabelValue, SampleType};
use emberscope_sampler::Sampler;
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
type IntFn = unsafe extern "C" fn() -> c_int;

const DOMAIN_MEM: c_int = 1;
const DOMAIN_OBJ: c_int = 2;

fn sym(name: &CStr) -> usize {
    // SAFETY: dlsym with a valid NUL-terminated name has no other preconditions.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

fn int_fn(name: &CStr) -> Option<IntFn> {
    let p = sym(name);
    // SAFETY: the named functions take no arguments and return an int in every version
    // that exports them (PyGC_Enable/PyGC_Disable 3.10+, PyGILState_Check 3.4+).
    (p != 0).then(|| unsafe { std::mem::transmute::<usize, IntFn>(p) })
}

// ---------------------------------------------------------------------------------------
// The hook.

/// The allocator we chain to, plus which domain it serves. Leaked: it must outlive any
/// allocator that captured ours (tracemalloc started after us keeps calling it).
struct DomainHook {
    ctx: *mut c_void,
    malloc: MallocFn,
    calloc: CallocFn,
    realloc: ReallocFn,
    free: FreeFn,
    domain: &'static str,
    orig: PyMemAllocatorEx,
}

/// Countdown value meaning "not sampling" (never reached by real allocation volumes).
const IDLE: i64 = i64::MAX / 2;

static COUNTDOWN: AtomicI64 = AtomicI64::new(IDLE);
static ACTIVE: AtomicBool = AtomicBool::new(false);
static HEAP: AtomicBool = AtomicBool::new(false);
static MEAN: AtomicI64 = AtomicI64::new(1 << 20);
static FILTER: AddrFilter = AddrFilter::new();
static INSTALLED: [AtomicPtr<DomainHook>; 3] = [
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
    AtomicPtr::new(std::ptr::null_mut()),
];

// Telemetry (sampled path only).
static ALLOC_SAMPLES: AtomicU64 = AtomicU64::new(0);
static ALLOC_NO_STACK: AtomicU64 = AtomicU64::new(0);
static CAPTURE_NS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

#[inline(always)]
unsafe fn hook_of(ctx: *mut c_void) -> &'static DomainHook {
    // SAFETY: ctx is the leaked DomainHook we registered with this function.
    unsafe { &*(ctx as *const DomainHook) }
}

#[inline(always)]
fn account(h: &'static DomainHook, p: *mut c_void, size: usize) {
    let c = COUNTDOWN
        .load(Ordering::Relaxed)
        .wrapping_sub(size.min(IDLE as usize) as i64);
    COUNTDOWN.store(c, Ordering::Relaxed);
    if c <= 0 {
        sampled(h.domain, p, size);
    }
}

unsafe extern "C" fn h_malloc(ctx: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: see hook_of; the previous allocator is called with its own context.
    let h = unsafe { hook_of(ctx) };
    let p = unsafe { (h.malloc)(h.ctx, size) };
    account(h, p, size);
    p
}

unsafe extern "C" fn h_calloc(ctx: *mut c_void, n: usize, elsize: usize) -> *mut c_void {
    // SAFETY: as h_malloc.
    let h = unsafe { hook_of(ctx) };
    let p = unsafe { (h.calloc)(h.ctx, n, elsize) };
    account(h, p, n.saturating_mul(elsize));
    p
}

unsafe extern "C" fn h_realloc(ctx: *mut c_void, ptr: *mut c_void, size: usize) -> *mut c_void {
    // SAFETY: as h_malloc.
    let h = unsafe { hook_of(ctx) };
    let tracked = !ptr.is_null() && FILTER.maybe_contains(ptr as usize);
    let p = unsafe { (h.realloc)(h.ctx, ptr, size) };
    if p.is_null() && size != 0 {
        // Failed: the old block is untouched and still live.
        return p;
    }
    if tracked {
        untrack(ptr as usize);
    }
    account(h, p, size);
    p
}

unsafe extern "C" fn h_free(ctx: *mut c_void, ptr: *mut c_void) {
    // SAFETY: as h_malloc.
    let h = unsafe { hook_of(ctx) };
    if !ptr.is_null() && FILTER.maybe_contains(ptr as usize) {
        untrack(ptr as usize);
    }
    unsafe { (h.free)(h.ctx, ptr) }
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
/// A native stack walker for the calling thread, shared with the lock collector.
static CAPTURE: Mutex<Option<Sampler>> = Mutex::new(None);
/// Whether CAPTURE may be (re)built in this process (false: fallback interpreter).
static CAPTURE_OK: AtomicBool = AtomicBool::new(false);
/// The process CAPTURE was built in.
static CAPTURE_PID: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

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
    let t0 = clock::own_cpu_ns();
    let stack = capture_in_hook(max_frames, qualname);
    let (mut frames, omitted) = match stack {
        Some(s) => s,
        None => {
            ALLOC_NO_STACK.fetch_add(1, Ordering::Relaxed);
            (Vec::new(), 0)
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
        native_id: clock::gettid(),
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
                // GIL held: no OBJ/MEM free reads the filter while it is rebuilt.
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
    CAPTURE_NS.fetch_add(clock::own_cpu_ns().saturating_sub(t0), Ordering::Relaxed);
}

#[cold]
#[inline(never)]
fn untrack(addr: usize) {
    let mut t = TABLE.lock();
    if let Some(table) = t.as_mut() {
        table.remove(&FILTER, addr);
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
// Stack capture of the calling thread.

/// Reads the calling thread's stack with the native walker (no Python objects created).
/// `None` when no walker is available or the read failed.
fn capture_native(max_frames: usize) -> Option<(Vec<OwnedFrame>, u32)> {
    // The walker reads by pid: in a forked child, until it is rebuilt, it would read the
    // parent.
    // SAFETY: getpid has no preconditions.
    if CAPTURE_PID.load(Ordering::Relaxed) != unsafe { libc::getpid() } as u32 {
        return None;
    }
    let mut g = CAPTURE.try_lock()?;
    let sampler = g.as_mut()?;
    // SAFETY: the caller holds the GIL (allocator hook of a GIL domain, or a Python call).
    let tstate = unsafe { sampler.current_tstate() };
    if tstate == 0 {
        return None;
    }
    let ts = sampler.sample_tstate(tstate, max_frames)?;
    Some((ts.frames, ts.omitted))
}

/// Stack capture inside the allocator hook.
fn capture_in_hook(max_frames: usize, qualname: bool) -> Option<(Vec<OwnedFrame>, u32)> {
    if let Some(s) = capture_native(max_frames) {
        return Some(s);
    }
    if CAPTURE_OK.load(Ordering::Relaxed) {
        // The walker exists but could not read this thread (no frame, validation failed).
        return None;
    }
    python_stack_in_hook(max_frames, qualname)
}

/// Fallback interpreters: the frame API, with the garbage collector paused (materialising
/// frame objects on 3.11 may allocate a GC object, and a collection could run finalizers in
/// the middle of the allocation we were called from) and the caller's pending error kept.
fn python_stack_in_hook(max_frames: usize, qualname: bool) -> Option<(Vec<OwnedFrame>, u32)> {
    static GIL_CHECK: std::sync::OnceLock<Option<IntFn>> = std::sync::OnceLock::new();
    static GC_FNS: std::sync::OnceLock<Option<(IntFn, IntFn)>> = std::sync::OnceLock::new();
    let gil_check = (*GIL_CHECK.get_or_init(|| int_fn(c"PyGILState_Check")))?;
    // SAFETY: PyGILState_Check has no preconditions.
    if unsafe { gil_check() } == 0 {
        return None;
    }
    let gc = *GC_FNS.get_or_init(|| Some((int_fn(c"PyGC_Disable")?, int_fn(c"PyGC_Enable")?)));
    // SAFETY: the GIL is held (checked above).
    let py = unsafe { Python::assume_attached() };
    let was_enabled = gc.map(|(disable, _)| unsafe { disable() } != 0);
    let (mut et, mut ev, mut tb) = (
        std::ptr::null_mut(),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    );
    // SAFETY: GIL held; valid out-pointers.
    unsafe { pyo3::ffi::PyErr_Fetch(&mut et, &mut ev, &mut tb) };
    let r = crate::fallback::python_stack(py, None, max_frames, qualname).ok();
    // SAFETY: GIL held; restores exactly what was fetched.
    unsafe {
        pyo3::ffi::PyErr_Clear();
        pyo3::ffi::PyErr_Restore(et, ev, tb);
    }
    if let (Some((_, enable)), Some(true)) = (gc, was_enabled) {
        // SAFETY: GIL held.
        unsafe { enable() };
    }
    r
}

/// The calling thread's stack for a collector called from Python (GIL held, not inside an
/// allocator): the native walker when available, else the frame API.
pub fn capture_current(
    py: Python<'_>,
    max_frames: usize,
    qualname: bool,
) -> Option<(Vec<OwnedFrame>, u32)> {
    if let Some(s) = capture_native(max_frames) {
        return Some(s);
    }
    crate::fallback::python_stack(py, None, max_frames, qualname).ok()
}

/// Builds the shared native walker unless the session runs the fallback sampler.
pub fn prepare_capture(py: Python<'_>, version: (u32, u32, u32), native_ok: bool) {
    CAPTURE_OK.store(false, Ordering::Relaxed);
    *CAPTURE.lock() = None;
    if !native_ok {
        return;
    }
    // SAFETY: the GIL is held (we have `py`).
    let Ok(mut s) = (unsafe { Sampler::discover(version) }) else {
        return;
    };
    if crate::selfcheck::verify(py, &mut s).is_err() {
        return;
    }
    *CAPTURE.lock() = Some(s);
    CAPTURE_PID.store(std::process::id(), Ordering::Relaxed);
    CAPTURE_OK.store(true, Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------
// Lifecycle.

fn install_domain(domain: c_int, name: &'static str) -> Result<(), String> {
    let idx = domain as usize;
    if !INSTALLED[idx].load(Ordering::Acquire).is_null() {
        return Ok(());
    }
    let (get, set) = match (sym(c"PyMem_GetAllocator"), sym(c"PyMem_SetAllocator")) {
        (0, _) | (_, 0) => return Err("PyMem_GetAllocator/PyMem_SetAllocator not found".into()),
        // SAFETY: these are the C API functions of these signatures.
        (g, s) => unsafe {
            (
                std::mem::transmute::<usize, GetAllocatorFn>(g),
                std::mem::transmute::<usize, SetAllocatorFn>(s),
            )
        },
    };
    let mut cur = PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    };
    // SAFETY: GIL held by the caller; `cur` is a valid out-pointer.
    unsafe { get(domain, &mut cur) };
    let (Some(malloc), Some(calloc), Some(realloc), Some(free)) =
        (cur.malloc, cur.calloc, cur.realloc, cur.free)
    else {
        return Err(format!("the {name} allocator is incomplete"));
    };
    let hook: &'static mut DomainHook = Box::leak(Box::new(DomainHook {
        ctx: cur.ctx,
        malloc,
        calloc,
        realloc,
        free,
        domain: name,
        orig: cur,
    }));
    let hook_ptr: *mut DomainHook = hook;
    let mut ours = PyMemAllocatorEx {
        ctx: hook_ptr.cast(),
        malloc: Some(h_malloc),
        calloc: Some(h_calloc),
        realloc: Some(h_realloc),
        free: Some(h_free),
    };
    // SAFETY: GIL held; our allocator wraps (chains to) the current one, as the API requires
    // after initialisation.
    unsafe { set(domain, &mut ours) };
    INSTALLED[idx].store(hook_ptr, Ordering::Release);
    Ok(())
}

fn uninstall_domain(domain: c_int) {
    let idx = domain as usize;
    let hook_ptr = INSTALLED[idx].load(Ordering::Acquire);
    if hook_ptr.is_null() {
        return;
    }
    let (get, set) = match (sym(c"PyMem_GetAllocator"), sym(c"PyMem_SetAllocator")) {
        (0, _) | (_, 0) => return,
        // SAFETY: as in install_domain.
        (g, s) => unsafe {
            (
                std::mem::transmute::<usize, GetAllocatorFn>(g),
                std::mem::transmute::<usize, SetAllocatorFn>(s),
            )
        },
    };
    let mut cur = PyMemAllocatorEx {
        ctx: std::ptr::null_mut(),
        malloc: None,
        calloc: None,
        realloc: None,
        free: None,
    };
    // SAFETY: GIL held by the caller.
    unsafe { get(domain, &mut cur) };
    if cur.ctx == hook_ptr.cast::<c_void>() {
        // SAFETY: hook_ptr is our leaked hook; restoring the allocator we wrapped.
        let mut orig = unsafe { (*hook_ptr).orig };
        unsafe { set(domain, &mut orig) };
        INSTALLED[idx].store(std::ptr::null_mut(), Ordering::Release);
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
    HEAP.store(config.heap, Ordering::Relaxed);
    let _ = py;
    for (domain, name) in [(DOMAIN_OBJ, "obj"), (DOMAIN_MEM, "mem")] {
        if let Err(e) = install_domain(domain, name) {
            warn(&format!("allocation profiling is unavailable: {e}"));
            stop_hooks();
            *STATE.lock() = None;
            return "unavailable";
        }
    }
    if let Some(s) = STATE.lock().as_mut() {
        COUNTDOWN.store(s.sampler.draw(), Ordering::Relaxed);
    }
    ACTIVE.store(true, Ordering::Release);
    "on"
}

fn stop_hooks() {
    ACTIVE.store(false, Ordering::Release);
    COUNTDOWN.store(IDLE, Ordering::Relaxed);
    for domain in [DOMAIN_MEM, DOMAIN_OBJ] {
        uninstall_domain(domain);
    }
}

/// Stops the collector: the hook is removed (or left as a pass-through), the table emptied.
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
    prepare_capture(py, version, native_ok);
    ACTIVE.store(was_active, Ordering::Release);
    if let Some(s) = STATE.lock().as_mut() {
        s.recorder = recorder.clone();
    }
    if let Some(t) = TABLE.lock().as_mut() {
        t.clear(&FILTER);
        let _ = t.take_counters();
    }
}

/// Takes this module's locks before `fork()` (from the pthread_atfork prepare handler);
/// `fork::release_all` releases them.
pub fn lock_for_fork() {
    fork::hold_static(&STATE);
    fork::hold_static(&CAPTURE);
    fork::hold_static(&TABLE);
}

// ---------------------------------------------------------------------------------------
// Per period.

/// Adds the live heap (every tracked allocation, with its allocation stack) to the current
/// period. Called by the scheduler right before the period ends; never with the GIL.
pub fn export_heap(recorder: &Recorder) {
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
    let d = PyDict::new(py);
    let (mem, heap) = status();
    d.set_item("memory", mem)?;
    d.set_item("heap", heap)?;
    d.set_item("sample_size", MEAN.load(Ordering::Relaxed))?;
    d.set_item("alloc_samples", ALLOC_SAMPLES.load(Ordering::Relaxed))?;
    d.set_item("native_walker", CAPTURE_OK.load(Ordering::Relaxed))?;
    let hooked: Vec<&str> = [(DOMAIN_OBJ, "obj"), (DOMAIN_MEM, "mem")]
        .iter()
        .filter(|(dm, _)| !INSTALLED[*dm as usize].load(Ordering::Acquire).is_null())
        .map(|(_, n)| *n)
        .collect();
    d.set_item("hooked_domains", hooked)?;
    if let Some(t) = TABLE.lock().as_ref() {
        d.set_item("heap_tracked", t.len())?;
        let bytes: i64 = t.iter().map(|(_, a)| a.weight.bytes).sum();
        d.set_item("heap_estimated_bytes", bytes)?;
    }
    Ok(d)
}

/// Registers this module's Python functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(memalloc_stats, m)?)?;
    Ok(())
}
