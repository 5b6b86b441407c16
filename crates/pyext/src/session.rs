//! The process-wide profiling session: start, stop, fork.
//!
//! One session per process lives in [`SESSION`]. Starting chooses the sampler: the native
//! GIL-free sampler when it can find and verify the interpreter's layout (see
//! [`crate::selfcheck`]), else the fallback (`sys._current_frames()` driven from a Python
//! thread by `emberscope.profiling._fallback`). A scheduler thread ends a period every upload
//! interval and exports it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use emberscope_collector::{Recorder, StackCollector, StackConfig};
use emberscope_sampler::Sampler;
use emberscope_sync::{fork, Mutex};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::NativeConfig;
use crate::log::warn;
use crate::scheduler::{Meta, Scheduler};
use crate::sink::{self, Sink};
use crate::{exceptions, fallback, selfcheck};

/// Which sampler feeds the CPU/wall profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Native,
    Fallback,
    Off,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Native => "native",
            Mode::Fallback => "fallback",
            Mode::Off => "off",
        }
    }
}

pub struct Session {
    pub config: NativeConfig,
    pub version: (u32, u32, u32),
    pub recorder: Arc<Recorder>,
    pub mode: Mode,
    pub reason: Option<String>,
    pub reader: Option<&'static str>,
    pub exceptions: &'static str,
    /// The process that started the threads below (a fork without our hooks leaves a copy).
    pid: u32,
    stack: Option<StackCollector>,
    scheduler: Option<Scheduler>,
    meta: Arc<Mutex<Meta>>,
    exporter: Arc<Mutex<Sink>>,
}

/// The one session of this process.
pub static SESSION: Mutex<Option<Session>> = Mutex::new(None);

fn python_version(py: Python<'_>) -> (u32, u32, u32) {
    let v = py.version_info();
    (u32::from(v.major), u32::from(v.minor), u32::from(v.patch))
}

/// A random 32-hex-digit runtime id.
pub fn new_runtime_id() -> String {
    let mut buf = [0u8; 16];
    // SAFETY: buf is valid for 16 bytes.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != 16 {
        let t = emberscope_collector::clock::epoch_ns(SystemTime::now()) as u64;
        let pid = u64::from(std::process::id());
        buf[..8].copy_from_slice(&t.to_le_bytes());
        buf[8..].copy_from_slice(&(pid.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ t).to_le_bytes());
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Tries the native sampler: layout discovery plus the self-check against the C API.
fn native_sampler(py: Python<'_>, version: (u32, u32, u32)) -> Result<Sampler, String> {
    // SAFETY: the GIL is held (we have `py`).
    let mut sampler = unsafe { Sampler::discover(version) }
        .map_err(|e| format!("the native sampler cannot run on this interpreter: {e}"))?;
    selfcheck::verify(py, &mut sampler)
        .map_err(|e| format!("the native sampler's self-check failed ({e})"))?;
    Ok(sampler)
}

fn start_stack(
    py: Python<'_>,
    config: &NativeConfig,
    version: (u32, u32, u32),
    recorder: &Arc<Recorder>,
) -> (
    Mode,
    Option<String>,
    Option<&'static str>,
    Option<StackCollector>,
) {
    if !config.stack {
        return (Mode::Off, None, None, None);
    }
    if !config.stack_v2 {
        return (
            Mode::Fallback,
            Some("DD_PROFILING_STACK_V2_ENABLED is false".into()),
            None,
            None,
        );
    }
    match native_sampler(py, version) {
        Ok(sampler) => {
            let reader = sampler.reader_kind();
            let cfg = StackConfig {
                max_frames: config.max_frames,
                max_hz: config.max_sampling_hz,
                max_time_usage_pct: config.max_time_usage_pct,
            };
            match StackCollector::start(sampler, recorder.clone(), cfg) {
                Ok(c) => (Mode::Native, None, Some(reader), Some(c)),
                Err(e) => (
                    Mode::Fallback,
                    Some(format!("cannot start the sampler thread: {e}")),
                    None,
                    None,
                ),
            }
        }
        Err(reason) => (Mode::Fallback, Some(reason), None, None),
    }
}

/// Set while a start is in progress, so a concurrent second start is refused without
/// holding [`SESSION`] across the start-up work (which runs Python code and may release the
/// GIL; a thread blocked on SESSION while holding the GIL would deadlock us).
static STARTING: AtomicBool = AtomicBool::new(false);

/// `_native.start(config)`.
pub fn start<'py>(py: Python<'py>, config: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    let out = PyDict::new(py);
    let running = SESSION.lock().as_ref().map(|s| s.mode.as_str());
    if let Some(mode) = running {
        out.set_item("sampler", mode)?;
        out.set_item("already_running", true)?;
        return Ok(out);
    }
    if STARTING
        .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
    {
        out.set_item("sampler", "off")?;
        out.set_item("already_running", true)?;
        return Ok(out);
    }
    let result = start_session(py, config, &out);
    STARTING.store(false, Ordering::Release);
    result.map(|()| out)
}

fn start_session(
    py: Python<'_>,
    config: &Bound<'_, PyDict>,
    out: &Bound<'_, PyDict>,
) -> PyResult<()> {
    register_atfork();
    let config = NativeConfig::from_dict(config);
    let version = python_version(py);
    let start = SystemTime::now();
    let recorder = Arc::new(Recorder::new(start, config.timeline));
    let (mode, reason, reader, stack) = start_stack(py, &config, version, &recorder);
    let exc_mode = exceptions::start(py, &config, version, &recorder);
    // collectors (issue 5)
    crate::capture::prepare_capture(py, version, mode != Mode::Fallback);
    let mem_mode = crate::memalloc::start(py, &config, version, &recorder);
    let lock_mode = crate::locks::start(&config, version, &recorder);
    let exporter = Arc::new(Mutex::new(sink::make_sink(&config)));
    let meta = Arc::new(Mutex::new(Meta {
        runtime_id: new_runtime_id(),
        mode: mode.as_str(),
        reader,
        version,
        exceptions: exc_mode,
        tags: sink::resolve_tags(&config),
        process_tags: sink::resolve_process_tags(&config),
        config: config.clone(),
        process_type: None,
    }));
    let scheduler = match Scheduler::start(
        recorder.clone(),
        exporter.clone(),
        meta.clone(),
        Duration::from_secs_f64(config.upload_interval),
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            warn(&format!("cannot start the profile scheduler thread: {e}"));
            None
        }
    };
    if mode == Mode::Fallback {
        fallback::reset(&config);
        recorder.set_interval_us((1e6 / config.max_sampling_hz.clamp(0.01, 10_000.0)) as u64);
    }
    out.set_item("sampler", mode.as_str())?;
    out.set_item("reason", reason.clone())?;
    out.set_item("reader", reader)?;
    out.set_item("exceptions", exc_mode)?;
    out.set_item("memory", mem_mode)?; // collectors (issue 5)
    out.set_item("lock", lock_mode)?; // collectors (issue 5)
    *SESSION.lock() = Some(Session {
        config,
        version,
        recorder,
        mode,
        reason,
        reader,
        exceptions: exc_mode,
        pid: std::process::id(),
        stack,
        scheduler,
        meta,
        exporter,
    });
    Ok(())
}

/// `_native.stop(flush, timeout_s)`.
pub fn stop(py: Python<'_>, flush: bool, timeout_s: f64) {
    let session = SESSION.lock().take();
    let Some(mut session) = session else {
        return;
    };
    if session.pid != std::process::id() {
        // Forked without our hooks (e.g. by C code): the threads do not exist here.
        if let Some(s) = session.stack.take() {
            s.forget_after_fork();
        }
        if let Some(s) = session.scheduler.take() {
            s.forget_after_fork();
        }
        exceptions::stop();
        crate::locks::stop(); // collectors (issue 5)
        crate::memalloc::stop(); // collectors (issue 5)
        return;
    }
    let timeout = if timeout_s.is_finite() && timeout_s > 0.0 {
        Duration::from_secs_f64(timeout_s.min(3600.0))
    } else {
        Duration::from_secs(5)
    };
    py.detach(move || {
        let deadline = std::time::Instant::now() + timeout;
        if let Some(stack) = session.stack.as_mut() {
            if !stack.stop(timeout) {
                warn("the sampler thread did not stop in time; continuing shutdown");
            }
        }
        if let Some(mut sched) = session.scheduler.take() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !sched.stop(flush, left) {
                warn("the final profile could not be written in time; exiting without it");
            }
        }
        let sink = std::mem::replace(&mut *session.exporter.lock(), Sink::Discard);
        sink.shutdown(deadline);
    });
    // After the final flush, so its exception counters are in the last profile.
    exceptions::stop();
    // collectors (issue 5): after the final flush (it exports the live heap).
    crate::locks::stop();
    crate::memalloc::stop();
}

/// `_native.is_running()`.
pub fn is_running() -> bool {
    SESSION.lock().is_some()
}

/// Records a thread name in the running session.
pub fn set_thread_name(ident: u64, name: &str, native_id: Option<u32>) {
    if let Some(s) = SESSION.lock().as_ref() {
        s.recorder.set_thread_name(ident, name, native_id);
    }
}

/// Registers the `pthread_atfork` handlers once per process.
///
/// They run inside `fork()` itself, on the forking thread, after every Python-level
/// before-fork hook: nothing can run Python code (and so nothing can wait for the GIL while
/// holding one of our locks) between `prepare` and `parent`/`child`. `prepare` takes every
/// lock that a native thread (sampler, scheduler) may hold, so the child never inherits one
/// in a held state.
fn register_atfork() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the three handlers are `extern "C"` functions without arguments.
        let rc = unsafe {
            libc::pthread_atfork(
                Some(atfork_prepare),
                Some(atfork_release),
                Some(atfork_release),
            )
        };
        if rc != 0 {
            warn("could not register fork handlers; profiling in forked children may hang");
        }
    });
}

extern "C" fn atfork_prepare() {
    // collectors (issue 5): first, same order as their own paths (theirs, then the recorder).
    crate::memalloc::lock_for_fork();
    crate::locks::lock_for_fork();
    exceptions::lock_for_fork();
    let guard = SESSION.lock();
    if let Some(s) = guard.as_ref() {
        s.recorder.lock_for_fork();
        fork::hold_arc(&s.meta);
        fork::hold_arc(&s.exporter);
    }
    // Stashed last, released first: SESSION, then what it owns, then the collectors.
    fork::stash(guard);
}

extern "C" fn atfork_release() {
    // Drops, last taken first, every guard atfork_prepare stashed on this thread.
    fork::release_all();
}

/// `_native.fork_prepare()`: the locks are handled by `pthread_atfork` (see
/// [`register_atfork`]); nothing to do at the Python level.
pub fn fork_prepare() {}

/// `_native.fork_parent()`: from now on this process's profiles say `process_type:main`.
pub fn fork_parent() {
    if let Some(s) = SESSION.lock().as_ref() {
        s.meta.lock().process_type = Some("main");
    }
}

/// After fork, in the child: a fresh, empty profile, a new runtime id, our own pid in file
/// names and new sampler and scheduler threads (the parent's do not exist here).
pub fn fork_child(py: Python<'_>) {
    // Only this thread exists in the child, so holding SESSION while restarting is safe.
    let mut guard = SESSION.lock();
    let Some(old) = guard.take() else {
        return;
    };
    if let Some(stack) = old.stack {
        stack.forget_after_fork();
    }
    if let Some(sched) = old.scheduler {
        sched.forget_after_fork();
    }
    let config = old.config;
    let version = old.version;
    let start = SystemTime::now();
    let recorder = Arc::new(Recorder::new(start, config.timeline));
    let (mode, reason, reader, stack) = if old.mode == Mode::Off {
        (Mode::Off, old.reason, None, None)
    } else if old.mode == Mode::Fallback {
        fallback::reset(&config);
        (Mode::Fallback, old.reason, None, None)
    } else {
        start_stack(py, &config, version, &recorder)
    };
    if mode == Mode::Fallback && old.mode != Mode::Fallback {
        fallback::reset(&config);
    }
    crate::capture::forked();
    let exc_mode = exceptions::restart_after_fork(py, &config, version, &recorder);
    // collectors (issue 5): same collectors, empty heap table, the child's recorder.
    crate::memalloc::after_fork_child(py, version, mode != Mode::Fallback, &recorder);
    crate::locks::after_fork_child(&recorder);
    {
        let mut slot = old.exporter.lock();
        std::mem::replace(&mut *slot, Sink::Discard).forget_after_fork();
        *slot = sink::make_sink(&config);
    }
    {
        let mut m = old.meta.lock();
        m.runtime_id = new_runtime_id();
        m.process_type = Some("worker");
        m.mode = mode.as_str();
        m.reader = reader;
        m.exceptions = exc_mode;
    }
    let scheduler = Scheduler::start(
        recorder.clone(),
        old.exporter.clone(),
        old.meta.clone(),
        Duration::from_secs_f64(config.upload_interval),
    )
    .map_err(|e| {
        warn(&format!(
            "cannot restart the profile scheduler after fork: {e}"
        ))
    })
    .ok();
    *guard = Some(Session {
        config,
        version,
        recorder,
        mode,
        reason,
        reader,
        exceptions: exc_mode,
        pid: std::process::id(),
        stack,
        scheduler,
        meta: old.meta,
        exporter: old.exporter,
    });
}

/// `_native.stats()`.
pub fn stats(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let d = PyDict::new(py);
    if let Some(s) = SESSION.lock().as_ref() {
        d.set_item("sampler", s.mode.as_str())?;
        d.set_item("reader", s.reader)?;
        d.set_item("exceptions", s.exceptions)?;
        d.set_item("runtime_id", s.meta.lock().runtime_id.clone())?;
        d.set_item("reason", s.reason.clone())?;
    }
    Ok(d)
}
