//! The stack collector: a native thread that samples every Python thread's stack.
//!
//! Each tick walks all threads through [`emberscope_sampler::Sampler`] (no GIL), then emits one
//! sample per thread with `cpu-time` (the thread's CPU clock since the previous tick),
//! `wall-time` (time since the previous tick) and one each of `cpu-samples`/`wall-samples`.
//!
//! The interval adapts: the thread measures its own CPU per tick and waits long enough that
//! it stays within `DD_PROFILING_MAX_TIME_USAGE_PCT` of one core, but never samples a thread
//! more often than `max_hz`. It sleeps on a condition variable between ticks (no busy wait),
//! so stopping is immediate.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use emberscope_profile::SampleType;
use emberscope_sampler::{Sampler, ThreadStack};
use emberscope_sync::{Condvar, Mutex};

use crate::clock;
use crate::recorder::{Recorder, ThreadSnapshot};

/// Settings of the stack collector.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Frames kept per stack (`DD_PROFILING_MAX_FRAMES`).
    pub max_frames: usize,
    /// Highest sampling rate per thread, in Hz.
    pub max_hz: f64,
    /// CPU budget of the sampler thread, in percent of one core.
    pub max_time_usage_pct: f64,
}

impl StackConfig {
    fn min_interval(&self) -> Duration {
        let hz = if self.max_hz.is_finite() && self.max_hz > 0.0 {
            self.max_hz.min(10_000.0)
        } else {
            100.0
        };
        Duration::from_secs_f64(1.0 / hz)
    }

    fn budget(&self) -> f64 {
        let pct = if self.max_time_usage_pct.is_finite() && self.max_time_usage_pct > 0.0 {
            self.max_time_usage_pct.min(100.0)
        } else {
            1.0
        };
        pct / 100.0
    }
}

/// Longest wait between ticks, whatever the cost of a tick.
const MAX_INTERVAL: Duration = Duration::from_secs(1);

struct Stop {
    flag: Mutex<bool>,
    cv: Condvar,
}

/// A running stack collector thread.
pub struct StackCollector {
    stop: Arc<Stop>,
    handle: Option<JoinHandle<()>>,
}

impl StackCollector {
    /// Starts the sampling thread.
    pub fn start(
        sampler: Sampler,
        recorder: Arc<Recorder>,
        config: StackConfig,
    ) -> std::io::Result<StackCollector> {
        let stop = Arc::new(Stop {
            flag: Mutex::new(false),
            cv: Condvar::new(),
        });
        let stop2 = stop.clone();
        recorder.set_interval_us(config.min_interval().as_micros() as u64);
        let handle = std::thread::Builder::new()
            .name("emberscope-sampler".into())
            .spawn(move || run(sampler, recorder, config, stop2))?;
        Ok(StackCollector {
            stop,
            handle: Some(handle),
        })
    }

    /// Stops the thread and waits for it at most `timeout`. Returns false on timeout (the
    /// thread then ends on its own at its next wake-up).
    pub fn stop(&mut self, timeout: Duration) -> bool {
        *self.stop.flag.lock() = true;
        self.stop.cv.notify_all();
        let Some(handle) = self.handle.take() else {
            return true;
        };
        let deadline = Instant::now() + timeout;
        while !handle.is_finished() {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let _ = handle.join();
        true
    }

    /// In a forked child the thread does not exist: drop the handle without joining.
    pub fn forget_after_fork(mut self) {
        if let Some(h) = self.handle.take() {
            std::mem::forget(h);
        }
        std::mem::forget(self);
    }
}

impl Drop for StackCollector {
    fn drop(&mut self) {
        *self.stop.flag.lock() = true;
        self.stop.cv.notify_all();
    }
}

fn run(mut sampler: Sampler, recorder: Arc<Recorder>, config: StackConfig, stop: Arc<Stop>) {
    let min_interval = config.min_interval();
    let mut pacer = clock::Pacer::new(config.budget(), min_interval, MAX_INTERVAL);
    let mut interval = min_interval;
    let mut stacks: Vec<ThreadStack> = Vec::new();
    let mut cpu = clock::CpuDeltas::default();
    let mut prev_tick = Instant::now();
    loop {
        {
            let mut stopped = stop.flag.lock();
            if !*stopped {
                stopped = stop.cv.wait_for(stopped, interval).0;
            }
            if *stopped {
                return;
            }
        }
        cpu.begin_tick();
        let t0 = clock::own_cpu_ns();
        let now = Instant::now();
        let wall_ns = now
            .duration_since(prev_tick)
            .as_nanos()
            .min(i64::MAX as u128) as i64;
        prev_tick = now;
        let stats = sampler.sample_all(config.max_frames, &mut stacks);
        let ts_ns = clock::epoch_ns(SystemTime::now());
        {
            let mut guard = recorder.lock();
            for st in &stacks {
                // A thread that is starting or ending has no Python frame: nothing to attribute.
                if st.frames.is_empty() && st.omitted == 0 {
                    continue;
                }
                let native_id = st.native_id.or_else(|| recorder.native_id_of(st.thread_id));
                let cpu_ns = native_id.map_or(0, |tid| cpu.delta(tid));
                let snap = ThreadSnapshot {
                    thread_id: st.thread_id,
                    native_id,
                    frames: &st.frames,
                    omitted: st.omitted,
                };
                guard.add(
                    &snap,
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
        }
        let cost_ns = clock::own_cpu_ns().saturating_sub(t0);
        interval = pacer.next_interval(cost_ns);
        recorder.note_tick(
            cost_ns,
            stats.read_errors,
            u64::from(stats.dropped_stacks),
            interval.as_micros() as u64,
        );
    }
}
