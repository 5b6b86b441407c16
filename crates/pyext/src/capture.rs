//! Stack capture of the calling thread for the event collectors (allocations, locks,
//! exceptions), which run with the GIL held: the native walker built for this process when
//! the native sampler runs, else the frame API.
//!
//! The native walker reads the calling thread with plain loads
//! ([`Sampler::sample_current`]): with the GIL held, its own thread state, frames, code
//! objects and their strings are alive and unchanged, so no system call is needed (about
//! 14 µs per capture with the copy-based walk built for other threads). That walk is enabled
//! only after the start-up check ([`crate::selfcheck::verify_direct`]) found it equal to the
//! copy-based one; `EMBERSCOPE_CAPTURE_DIRECT=0` keeps the copy-based walk (measurements).

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use emberscope_collector::{clock, OwnedFrame};
use emberscope_sampler::Sampler;
use emberscope_sync::{fork, Mutex};
use pyo3::prelude::*;

use crate::memalloc::{int_fn, IntFn};

/// A native stack walker for the calling thread, shared with the lock collector.
static CAPTURE: Mutex<Option<Sampler>> = Mutex::new(None);
/// Whether CAPTURE may be (re)built in this process (false: fallback interpreter).
static CAPTURE_OK: AtomicBool = AtomicBool::new(false);
/// Whether CAPTURE was built in this process (cleared in a forked child by a
/// `pthread_atfork` handler: a cached pid check, without a `getpid` system call per sample).
static CAPTURE_FRESH: AtomicBool = AtomicBool::new(false);

/// A stack of the calling thread: frames, omitted count, kernel thread id when the walker
/// read it.
pub type Captured = (Vec<OwnedFrame>, u32, Option<u32>);

/// Reads the calling thread's stack with the native walker (no Python objects created).
/// `None` when no walker is available or the read failed.
fn capture_native(max_frames: usize) -> Option<Captured> {
    // The walker reads by pid: in a forked child, until it is rebuilt, it would read the
    // parent.
    if !CAPTURE_FRESH.load(Ordering::Relaxed) {
        return None;
    }
    let mut g = CAPTURE.try_lock()?;
    let sampler = g.as_mut()?;
    // SAFETY: the caller holds the GIL (allocator hook of a GIL domain, or a Python call) and
    // the stack read is its own. Plain loads when `selfcheck::verify_direct` enabled them,
    // else (and whenever the direct walk gives up) the copy-based walk.
    let ts = unsafe { sampler.sample_current(max_frames) }?;
    Some((ts.frames, ts.omitted, ts.native_id))
}

/// Stack capture inside the allocator hook.
pub fn capture_in_hook(max_frames: usize, qualname: bool) -> Option<Captured> {
    if let Some(s) = capture_native(max_frames) {
        return Some(s);
    }
    if CAPTURE_OK.load(Ordering::Relaxed) {
        // The walker exists but could not read this thread (no frame, validation failed).
        return None;
    }
    python_stack_in_hook(max_frames, qualname).map(|(f, o)| (f, o, None))
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
    if let Some((frames, omitted, _)) = capture_native(max_frames) {
        return Some((frames, omitted));
    }
    crate::fallback::python_stack(py, None, max_frames, qualname).ok()
}

/// Builds the shared native walker unless the session runs the fallback sampler.
pub fn prepare_capture(py: Python<'_>, version: (u32, u32, u32), native_ok: bool) {
    // One child handler for the walker and the thread-id cache, registered in every mode.
    static ATFORK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    // SAFETY: registers an `extern "C"` handler without arguments.
    let atfork = *ATFORK
        .get_or_init(|| unsafe { libc::pthread_atfork(None, None, Some(stale_in_child)) } == 0);
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
    if std::env::var_os("EMBERSCOPE_CAPTURE_DIRECT").is_some_and(|v| v == "0") {
        crate::log::debug("capture: direct walk of the calling thread turned off");
    } else if let Err(e) = crate::selfcheck::verify_direct(py, &mut s) {
        // The copy-based walk stays in use.
        crate::log::debug(&format!("capture: direct walk not used: {e}"));
    }
    if !atfork {
        // Without it a forked child could not tell that the walker reads its parent.
        return;
    }
    *CAPTURE.lock() = Some(s);
    CAPTURE_FRESH.store(true, Ordering::Relaxed);
    CAPTURE_OK.store(true, Ordering::Relaxed);
}

/// Forks so far in this process's line (a cached thread id from before a fork is stale).
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// (fork generation, kernel thread id) of the calling thread.
    static TID: Cell<(u64, u32)> = const { Cell::new((u64::MAX, 0)) };
}

/// The calling thread's kernel id, cached per thread and fork: the event collectors label
/// every sampled event with it, and `gettid` is a system call.
pub fn thread_tid() -> u32 {
    let gen = FORK_GEN.load(Ordering::Relaxed);
    TID.try_with(|c| {
        let (g, tid) = c.get();
        if g == gen {
            tid
        } else {
            let tid = clock::gettid();
            c.set((gen, tid));
            tid
        }
    })
    .unwrap_or_else(|_| clock::gettid())
}

/// In a forked child: every thread's cached id is stale. Called by the `pthread_atfork`
/// child handler (so an event sampled before the Python-level after-fork hooks run gets the
/// child's id) and again by the session's after-fork restart, which also covers a handler
/// that could not be registered (an extra increment is harmless).
pub fn forked() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
}

/// `pthread_atfork` child handler: the walker reads the parent until `after_fork_child`
/// rebuilds it, and every cached thread id is the parent's.
extern "C" fn stale_in_child() {
    CAPTURE_FRESH.store(false, Ordering::Relaxed);
    forked();
}

/// Test hook (`emberscope._native._capture_compare`): the calling thread's stack read by the
/// capture walker both ways, `{"direct_enabled": bool, "direct": stack, "copy": stack}`, each
/// stack `([(name, filename, line), ...], omitted, native_id, thread_id, holds_gil)` or None.
/// `"direct"` is what captures use ([`Sampler::sample_current`]), `"copy"` the copy-based
/// walk. With `repeat`, also `"direct_ns"`/`"copy_ns"`: the mean time of one capture each way
/// over `repeat` captures (measurements). None when no capture walker serves this process.
#[pyfunction]
#[pyo3(name = "_capture_compare", signature = (max_frames, repeat=0))]
pub fn capture_compare(
    py: Python<'_>,
    max_frames: usize,
    repeat: u32,
) -> PyResult<Option<Bound<'_, PyAny>>> {
    if !CAPTURE_FRESH.load(Ordering::Relaxed) {
        return Ok(None);
    }
    let (enabled, direct, copy, times) = {
        let mut g = CAPTURE.lock();
        let Some(s) = g.as_mut() else {
            return Ok(None);
        };
        // SAFETY: GIL held (we have `py`), our own stack.
        let direct = unsafe { s.sample_current(max_frames) };
        // SAFETY: as above.
        let tstate = unsafe { s.current_tstate() };
        let copy = s.sample_tstate(tstate, max_frames);
        let times = (repeat > 0).then(|| {
            let t0 = std::time::Instant::now();
            for _ in 0..repeat {
                // SAFETY: as above.
                std::hint::black_box(unsafe { s.sample_current(max_frames) });
            }
            let t1 = std::time::Instant::now();
            for _ in 0..repeat {
                // SAFETY: as above.
                let tstate = unsafe { s.current_tstate() };
                std::hint::black_box(s.sample_tstate(tstate, max_frames));
            }
            let t2 = std::time::Instant::now();
            let per = |d: std::time::Duration| d.as_nanos() as f64 / f64::from(repeat);
            (per(t1 - t0), per(t2 - t1))
        });
        (s.direct_enabled(), direct, copy, times)
    };
    let conv = |t: Option<emberscope_sampler::ThreadStack>| {
        t.map(|t| {
            let frames: Vec<(String, String, u32)> = t
                .frames
                .iter()
                .map(|f| (f.func.name.clone(), f.func.filename.clone(), f.line))
                .collect();
            (frames, t.omitted, t.native_id, t.thread_id, t.holds_gil)
        })
    };
    let d = pyo3::types::PyDict::new(py);
    d.set_item("direct_enabled", enabled)?;
    d.set_item("direct", conv(direct))?;
    d.set_item("copy", conv(copy))?;
    if let Some((direct_ns, copy_ns)) = times {
        d.set_item("direct_ns", direct_ns)?;
        d.set_item("copy_ns", copy_ns)?;
    }
    Ok(Some(d.into_any()))
}

/// Whether the native walker serves captures in this process.
pub fn native_ok() -> bool {
    CAPTURE_OK.load(Ordering::Relaxed)
}

/// Takes the walker's lock before `fork()` (released by `fork::release_all`).
pub fn lock_for_fork() {
    fork::hold_static(&CAPTURE);
}
