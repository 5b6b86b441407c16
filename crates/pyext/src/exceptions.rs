//! The exception collector.
//!
//! On CPython 3.12+ the Python layer registers [`on_raise`] as a `sys.monitoring` RAISE
//! callback. RAISE fires in the raising frame and again in every frame the exception
//! propagates into; only the first event of an exception counts (its traceback then has a
//! single entry). A geometric countdown
//! ([`emberscope_collector::exceptions::ExceptionSampler`]) picks the raises to record; each
//! recorded one carries `exception-samples = interval` and an `exception type` label
//! `module.QualName`, at the stack of the frame that raised.
//!
//! On CPython 3.8–3.11 exceptions are counted when they are created instead
//! ([`crate::exc_hook`]).

use std::sync::Arc;
use std::time::SystemTime;

use emberscope_collector::clock;
use emberscope_collector::exceptions::ExceptionSampler;
use emberscope_collector::{Recorder, ThreadSnapshot};
use emberscope_profile::{Label, LabelValue, SampleType};
use emberscope_sync::{fork, Mutex};
use pyo3::intern;
use pyo3::prelude::*;

use crate::config::NativeConfig;
use crate::log::warn;

struct State {
    sampler: ExceptionSampler,
    recorder: Arc<Recorder>,
    max_frames: usize,
    qualname: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Prepares exception sampling; returns how exceptions are collected: `"monitoring"` (the
/// Python layer must register [`on_raise`] with `sys.monitoring`) or `"off"`.
pub fn start(
    py: Python<'_>,
    config: &NativeConfig,
    version: (u32, u32, u32),
    recorder: &Arc<Recorder>,
) -> &'static str {
    if !config.exception {
        *STATE.lock() = None;
        return "off";
    }
    let mode = if version >= (3, 12, 0) {
        "monitoring"
    } else {
        let offset = emberscope_sampler::layout::Layout::for_version(version.0, version.1)
            .and_then(|l| l.type_tp_new);
        let Some(offset) = offset else {
            *STATE.lock() = None;
            warn("exception profiling is unavailable: no tp_new layout for this interpreter");
            return "off";
        };
        if let Err(e) = crate::exc_hook::install(py, offset as usize) {
            *STATE.lock() = None;
            warn(&format!("exception profiling is unavailable: {e}"));
            return "off";
        }
        "native"
    };
    let seed = clock::epoch_ns(SystemTime::now()) as u64 ^ u64::from(std::process::id());
    *STATE.lock() = Some(State {
        sampler: ExceptionSampler::new(config.exception_sampling_interval, seed),
        recorder: recorder.clone(),
        max_frames: config.max_frames,
        qualname: version >= (3, 11, 0),
    });
    mode
}

/// After fork: same mode, the child's recorder.
pub fn restart_after_fork(
    py: Python<'_>,
    config: &NativeConfig,
    version: (u32, u32, u32),
    recorder: &Arc<Recorder>,
) -> &'static str {
    start(py, config, version, recorder)
}

/// Stops recording exceptions.
pub fn stop() {
    crate::exc_hook::disable();
    *STATE.lock() = None;
}

/// Returns and resets (seen, sampled) counts.
pub fn take_counts() -> (u64, u64) {
    STATE
        .lock()
        .as_mut()
        .map(|s| s.sampler.take_counts())
        .unwrap_or((0, 0))
}

fn is_first_raise(py: Python<'_>, exc: &Bound<'_, PyAny>) -> bool {
    match exc.getattr(intern!(py, "__traceback__")) {
        Ok(tb) if !tb.is_none() => tb
            .getattr(intern!(py, "tb_next"))
            .map(|n| n.is_none())
            .unwrap_or(false),
        Ok(_) => true,
        Err(_) => false,
    }
}

fn type_name(py: Python<'_>, exc: &Bound<'_, PyAny>) -> String {
    let t = exc.get_type();
    let module: String = t
        .getattr(intern!(py, "__module__"))
        .and_then(|m| m.extract())
        .unwrap_or_else(|_| "builtins".into());
    let qual: String = t
        .getattr(intern!(py, "__qualname__"))
        .and_then(|m| m.extract())
        .unwrap_or_else(|_| "<unknown>".into());
    format!("{module}.{qual}")
}

/// The RAISE callback body. Never raises.
pub fn on_raise(py: Python<'_>, exc: &Bound<'_, PyAny>) {
    if !is_first_raise(py, exc) {
        return;
    }
    on_created(py, exc);
}

/// Counts one exception (3.12+: its first RAISE event; 3.8–3.11: its creation) and records
/// it when the countdown says so. Never raises.
pub fn on_created(py: Python<'_>, exc: &Bound<'_, PyAny>) {
    let (recorder, weight, max_frames, qualname) = {
        // Never block an application thread (it holds the GIL): if the scheduler is reading
        // the counters right now, this one exception goes uncounted.
        let Some(mut g) = STATE.try_lock() else {
            return;
        };
        let Some(s) = g.as_mut() else {
            return;
        };
        if !s.sampler.should_sample() {
            return;
        }
        (
            s.recorder.clone(),
            s.sampler.weight(),
            s.max_frames,
            s.qualname,
        )
    };
    record(py, &recorder, exc, weight, max_frames, qualname);
}

fn record(
    py: Python<'_>,
    recorder: &Recorder,
    exc: &Bound<'_, PyAny>,
    weight: i64,
    max_frames: usize,
    qualname: bool,
) {
    // The native walker (plain loads of this thread's frames) when available, else the
    // frame API.
    let Some((frames, omitted)) = crate::capture::capture_current(py, max_frames, qualname) else {
        return;
    };
    let tname = type_name(py, exc);
    let thread_id = unsafe { libc::pthread_self() } as u64;
    let snap = ThreadSnapshot {
        thread_id,
        native_id: Some(crate::capture::thread_tid()),
        frames: &frames,
        omitted,
    };
    recorder.lock().add(
        &snap,
        &[(SampleType::ExceptionSamples, weight)],
        &[Label {
            key: "exception type",
            value: LabelValue::Str(&tname),
        }],
        clock::epoch_ns(SystemTime::now()),
    );
}

/// Takes this module's lock before `fork()` (see `session::fork_prepare`).
pub fn lock_for_fork() {
    fork::hold_static(&STATE);
}
