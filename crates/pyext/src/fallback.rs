//! The fallback sampler, for interpreters the native sampler cannot read safely (or when
//! `DD_PROFILING_STACK_V2_ENABLED=0`).
//!
//! A Python thread (`emberscope.profiling._fallback`) calls [`tick`] in a loop; each tick
//! takes `sys._current_frames()` under the GIL, turns every thread's frames into a sample with
//! the same values and labels as the native sampler, and returns how long to wait so the
//! tick's own CPU stays within `DD_PROFILING_MAX_TIME_USAGE_PCT`. [`python_stack`] is also how
//! the exception hook and the self-check read the current thread.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use emberscope_collector::clock;
use emberscope_collector::recorder::owned_frame;
use emberscope_collector::{OwnedFrame, Recorder, ThreadSnapshot};
use emberscope_profile::SampleType;
use emberscope_sync::Mutex;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::config::NativeConfig;
use crate::session::{Mode, SESSION};

struct State {
    prev: Option<Instant>,
    cpu: clock::CpuDeltas,
    pacer: clock::Pacer,
    max_frames: usize,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Prepares the fallback sampler for a (new) session.
pub fn reset(config: &NativeConfig) {
    *STATE.lock() = Some(State {
        prev: None,
        cpu: clock::CpuDeltas::default(),
        pacer: clock::Pacer::new(
            config.max_time_usage_pct.clamp(0.001, 100.0) / 100.0,
            Duration::from_secs_f64(1.0 / config.max_sampling_hz.clamp(0.01, 10_000.0)),
            Duration::from_secs(1),
        ),
        max_frames: config.max_frames,
    });
}

/// Reads a Python frame chain (leaf first) starting at `frame`, or at the caller's frame when
/// `frame` is `None`. Returns the kept frames and the number of frames beyond `max_frames`.
pub fn python_stack(
    py: Python<'_>,
    frame: Option<Bound<'_, PyAny>>,
    max_frames: usize,
    qualname: bool,
) -> PyResult<(Vec<OwnedFrame>, u32)> {
    let mut frame = match frame {
        Some(f) => f,
        None => {
            // SAFETY: GIL held; PyEval_GetFrame returns a borrowed reference or NULL and,
            // unlike calling sys._getframe, adds no recursion depth.
            let f = unsafe { pyo3::ffi::PyEval_GetFrame() };
            if f.is_null() {
                return Ok((Vec::new(), 0));
            }
            // SAFETY: non-null borrowed frame object, alive while we hold the GIL.
            unsafe { Bound::from_borrowed_ptr(py, f.cast()) }
        }
    };
    let mut frames = Vec::new();
    let mut omitted: u32 = 0;
    let mut depth = 0usize;
    while !frame.is_none() && depth < 4096 {
        depth += 1;
        if frames.len() < max_frames {
            let code = frame.getattr(intern!(py, "f_code"))?;
            let name: String = if qualname {
                code.getattr(intern!(py, "co_qualname"))?.extract()?
            } else {
                code.getattr(intern!(py, "co_name"))?.extract()?
            };
            let filename: String = code.getattr(intern!(py, "co_filename"))?.extract()?;
            let line: u32 = frame
                .getattr(intern!(py, "f_lineno"))?
                .extract::<Option<u32>>()?
                .unwrap_or(0);
            frames.push(owned_frame(&name, &filename, line));
        } else {
            omitted += 1;
        }
        frame = frame.getattr(intern!(py, "f_back"))?;
    }
    Ok((frames, omitted))
}

fn recorder_if_fallback() -> Option<(Arc<Recorder>, bool)> {
    SESSION
        .lock()
        .as_ref()
        .filter(|s| s.mode == Mode::Fallback)
        .map(|s| (s.recorder.clone(), s.version >= (3, 11, 0)))
}

/// One fallback tick; returns seconds until the next one.
pub fn tick(py: Python<'_>) -> f64 {
    let Some((recorder, qualname)) = recorder_if_fallback() else {
        return 1.0;
    };
    let t0 = clock::own_cpu_ns();
    let mut guard = STATE.lock();
    let Some(state) = guard.as_mut() else {
        return 1.0;
    };
    let now = Instant::now();
    let wall_ns = state
        .prev
        .map(|p| now.duration_since(p).as_nanos().min(i64::MAX as u128) as i64)
        .unwrap_or(0);
    state.prev = Some(now);
    if wall_ns > 0 {
        let _ = sample_all(py, &recorder, state, wall_ns, qualname);
    }
    let cost = clock::own_cpu_ns().saturating_sub(t0);
    let interval = state.pacer.next_interval(cost);
    recorder.note_tick(cost, 0, 0, interval.as_micros() as u64);
    interval.as_secs_f64()
}

fn sample_all(
    py: Python<'_>,
    recorder: &Recorder,
    state: &mut State,
    wall_ns: i64,
    qualname: bool,
) -> PyResult<()> {
    let me = unsafe { libc::pthread_self() } as u64;
    let current = py.import("sys")?.getattr("_current_frames")?.call0()?;
    let current = current.cast::<PyDict>()?;
    let mut stacks: Vec<(u64, Vec<OwnedFrame>, u32)> = Vec::with_capacity(current.len());
    for (ident, frame) in current.iter() {
        let ident: u64 = ident.extract()?;
        if ident == me {
            continue;
        }
        let (frames, omitted) = python_stack(py, Some(frame), state.max_frames, qualname)?;
        stacks.push((ident, frames, omitted));
    }
    let ts_ns = clock::epoch_ns(SystemTime::now());
    state.cpu.begin_tick();
    let mut g = recorder.lock();
    for (ident, frames, omitted) in &stacks {
        if frames.is_empty() && *omitted == 0 {
            continue;
        }
        let native_id = recorder.native_id_of(*ident);
        let cpu_ns = native_id.map_or(0, |tid| state.cpu.delta(tid));
        g.add(
            &ThreadSnapshot {
                thread_id: *ident,
                native_id,
                frames,
                omitted: *omitted,
            },
            &[
                (SampleType::CpuTime, cpu_ns.min(i64::MAX as u64) as i64),
                (SampleType::CpuSamples, 1),
                (SampleType::WallTime, wall_ns),
                (SampleType::WallSamples, 1),
            ],
            &[],
            ts_ns,
        );
    }
    Ok(())
}
