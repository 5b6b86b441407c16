//! The lock collector's native half. `emberscope.profiling._locks` wraps the lock factories
//! and calls, around the real lock operations:
//!
//! The hot types (`Lock`, `RLock`) are native classes ([`crate::lock_types`]) that call
//! the functions below directly; the Python-level wrappers (Condition, Semaphore, asyncio)
//! call them through `lock_enter`/`lock_acquired`/`lock_released`:
//!
//! * [`enter`] before every acquire: the sampling decision (a geometric countdown,
//!   `DD_PROFILING_CAPTURE_PCT`); returns 0 (not sampled: the wrapper just delegates) or a
//!   monotonic timestamp. The native wrappers inline its countdown part ([`tick`]) and call
//!   [`enter_sampled`] out of line when it runs out;
//! * [`record_acquired`] after a sampled acquire succeeded: records `lock-acquire-wait` and
//!   `lock-acquire` at the caller's stack and returns the acquire time the wrapper keeps;
//! * [`record_released`] after the matching release: records `lock-release-hold` and
//!   `lock-release`.
//!
//! Every recorded value is scaled by `100 / capture_pct` so totals estimate the true counts
//! and times. An event's kernel thread id is cached per thread (and fork), not a `gettid`
//! system call each time. These functions never block on anything an application thread holds: they
//! take no Python-level lock and call no Python code except reading the caller's frames
//! (when the native walker is unavailable); the recorder lock they take is only ever held by
//! code that does not need the GIL.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use emberscope_collector::locks::LockSampler;
use emberscope_collector::{clock, Recorder, ThreadSnapshot};
use emberscope_profile::{Label, LabelValue, SampleType};
use emberscope_sync::{fork, Mutex};
use pyo3::prelude::*;

use crate::config::NativeConfig;

const IDLE: i64 = i64::MAX / 2;

/// Acquisitions left before the next sampled one (updated under the GIL: load and store).
static COUNTDOWN: AtomicI64 = AtomicI64::new(IDLE);
static ENABLED: AtomicBool = AtomicBool::new(false);
static EVENTS: AtomicU64 = AtomicU64::new(0);

struct State {
    recorder: Arc<Recorder>,
    sampler: LockSampler,
    max_frames: usize,
    qualname: bool,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

/// Suffix of the wrapper module's file: its frames are not part of the reported stack.
const WRAPPER_FILE: &str = "emberscope/profiling/_locks.py";

fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
        .max(1)
}

/// Prepares the lock collector; returns `"on"` or `"off"`. The Python layer wraps the
/// factories only when this says `"on"`.
pub fn start(
    config: &NativeConfig,
    version: (u32, u32, u32),
    recorder: &Arc<Recorder>,
) -> &'static str {
    ENABLED.store(false, Ordering::Release);
    COUNTDOWN.store(IDLE, Ordering::Relaxed);
    if !config.lock {
        *STATE.lock() = None;
        return "off";
    }
    let seed = clock::epoch_ns(SystemTime::now()) as u64 ^ (u64::from(std::process::id()) << 17);
    let mut sampler = LockSampler::new(config.capture_pct, seed);
    COUNTDOWN.store(sampler.draw(), Ordering::Relaxed);
    *STATE.lock() = Some(State {
        recorder: recorder.clone(),
        sampler,
        max_frames: config.max_frames,
        qualname: version >= (3, 11, 0),
    });
    ENABLED.store(true, Ordering::Release);
    "on"
}

/// Stops recording (wrapped locks keep working and just delegate).
pub fn stop() {
    ENABLED.store(false, Ordering::Release);
    COUNTDOWN.store(IDLE, Ordering::Relaxed);
    *STATE.lock() = None;
}

/// Whether lock events are being recorded.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Acquire)
}

/// Monotonic time of the last fork in this process (0: none).
static FORK_MONO: AtomicU64 = AtomicU64::new(0);

/// Whether a sampled acquire time `t` is from this process (not inherited over a fork: the
/// monotonic clock is the same in parent and child).
#[inline]
fn since_fork(t: u64) -> bool {
    t > FORK_MONO.load(Ordering::Relaxed)
}

/// In the forked child: same sampling, the child's recorder.
pub fn after_fork_child(recorder: &Arc<Recorder>) {
    FORK_MONO.store(mono_ns(), Ordering::Relaxed);
    if let Some(s) = STATE.lock().as_mut() {
        s.recorder = recorder.clone();
    }
}

/// Takes this module's lock before `fork()`.
pub fn lock_for_fork() {
    fork::hold_static(&STATE);
}

/// Counters for the profile's `internal` metadata (reset on read).
pub fn internal() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("lock_collector".into(), enabled().into());
    m.insert(
        "lock_events_sampled".into(),
        EVENTS.swap(0, Ordering::Relaxed).into(),
    );
    m
}

/// Before an acquire: 0 when this acquisition is not sampled, else a monotonic timestamp.
#[inline]
pub fn enter() -> u64 {
    if tick() {
        enter_sampled()
    } else {
        0
    }
}

/// The countdown part of [`enter`], inlined into the native lock wrappers (a load, a store
/// and a test): true when this acquisition may be sampled, and then the caller, out of
/// line, calls [`enter_sampled`].
#[inline(always)]
pub fn tick() -> bool {
    let c = COUNTDOWN.load(Ordering::Relaxed) - 1;
    COUNTDOWN.store(c, Ordering::Relaxed);
    c <= 0
}

/// After [`tick`] returned true: draws the next countdown and returns the acquire's start
/// time (0: not sampled after all, the collector is off or busy).
#[cold]
#[inline(never)]
pub fn enter_sampled() -> u64 {
    let Some(mut g) = STATE.try_lock() else {
        COUNTDOWN.store(1, Ordering::Relaxed);
        return 0;
    };
    match g.as_mut() {
        Some(s) => {
            COUNTDOWN.store(s.sampler.draw(), Ordering::Relaxed);
            mono_ns()
        }
        None => {
            COUNTDOWN.store(IDLE, Ordering::Relaxed);
            0
        }
    }
}

fn record(
    py: Python<'_>,
    values: impl FnOnce(&mut LockSampler) -> [(SampleType, i64); 2],
    name: &str,
) {
    let (recorder, vals, max_frames, qualname) = {
        let Some(mut g) = STATE.try_lock() else {
            return;
        };
        let Some(s) = g.as_mut() else {
            return;
        };
        let vals = values(&mut s.sampler);
        (s.recorder.clone(), vals, s.max_frames, s.qualname)
    };
    // A couple of extra frames for the wrapper's own, which are cut below.
    let Some((mut frames, omitted)) = crate::capture::capture_current(py, max_frames + 3, qualname)
    else {
        return;
    };
    let skip = frames
        .iter()
        .take_while(|f| f.func.filename.ends_with(WRAPPER_FILE))
        .count();
    frames.drain(..skip);
    let extra = frames.len().saturating_sub(max_frames);
    frames.truncate(max_frames);
    let snap = ThreadSnapshot {
        // SAFETY: pthread_self has no preconditions.
        thread_id: unsafe { libc::pthread_self() } as u64,
        native_id: Some(crate::capture::thread_tid()),
        frames: &frames,
        omitted: omitted + extra as u32,
    };
    recorder.lock().add(
        &snap,
        &vals,
        &[Label {
            key: "lock name",
            value: LabelValue::Str(name),
        }],
        clock::epoch_ns(SystemTime::now()),
    );
    EVENTS.fetch_add(1, Ordering::Relaxed);
}

/// `_native.lock_enter()`: [`enter`] for the Python-level wrappers.
#[pyfunction]
fn lock_enter() -> u64 {
    enter()
}

/// `_native.lock_acquired(t0, name)`: [`record_acquired`] for the Python-level wrappers.
#[pyfunction]
fn lock_acquired(py: Python<'_>, t0: u64, name: &str) -> u64 {
    record_acquired(py, t0, name)
}

/// `_native.lock_released(t, name)`: [`record_released`] for the Python-level wrappers.
#[pyfunction]
fn lock_released(py: Python<'_>, t_acquired: u64, name: &str) {
    record_released(py, t_acquired, name)
}

/// After a sampled acquire succeeded (`t0` from [`enter`]): records the wait and returns
/// the acquire time to pass to [`record_released`].
pub fn record_acquired(py: Python<'_>, t0: u64, name: &str) -> u64 {
    let now = mono_ns();
    let wait = now.saturating_sub(t0);
    record(
        py,
        |s| {
            [
                (SampleType::LockAcquireWait, s.scaled_ns(wait)),
                (SampleType::LockAcquire, s.count_weight()),
            ]
        },
        name,
    );
    now
}

/// After the release matching a sampled acquire (`t_acquired` from [`record_acquired`]).
pub fn record_released(py: Python<'_>, t_acquired: u64, name: &str) {
    if !since_fork(t_acquired) {
        return;
    }
    let held = mono_ns().saturating_sub(t_acquired);
    record(
        py,
        |s| {
            [
                (SampleType::LockReleaseHold, s.scaled_ns(held)),
                (SampleType::LockRelease, s.count_weight()),
            ]
        },
        name,
    );
}

/// Whether the lock collector records events (the wrappers stay cheap when it does not).
#[pyfunction]
fn lock_enabled() -> bool {
    enabled()
}

/// Registers this module's Python functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lock_enter, m)?)?;
    m.add_function(wrap_pyfunction!(lock_acquired, m)?)?;
    m.add_function(wrap_pyfunction!(lock_released, m)?)?;
    m.add_function(wrap_pyfunction!(lock_enabled, m)?)?;
    crate::lock_types::register(m)
}
