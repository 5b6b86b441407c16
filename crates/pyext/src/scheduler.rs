//! The scheduler thread: ends a profiling period every upload interval and exports it.
//!
//! Periods tile time: each one ends at the instant the next one starts
//! ([`emberscope_collector::Recorder::take`]). Deadlines are fixed multiples of the interval
//! from the session start, so a slow export does not drift the schedule. Encoding and writing
//! happen on this thread, never on an application thread, and never with the GIL.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use emberscope_collector::{Recorder, Telemetry};
use emberscope_exporter::EventMeta;
use emberscope_sync::{Condvar, Mutex};

use crate::config::NativeConfig;
use crate::sink::Sink;

/// What the exporter needs to describe a profile besides its samples.
pub struct Meta {
    pub runtime_id: String,
    pub mode: &'static str,
    pub reader: Option<&'static str>,
    pub version: (u32, u32, u32),
    pub exceptions: &'static str,
    pub config: NativeConfig,
    /// `main` after this process forked, `worker` in a forked child, else `None`.
    pub process_type: Option<&'static str>,
    /// User tags plus git metadata tags.
    pub tags: Vec<(String, String)>,
    /// `process_tags` of the event.
    pub process_tags: String,
}

#[derive(Default)]
struct Control {
    stop: bool,
    flush_on_stop: bool,
    done: bool,
}

struct Shared {
    control: Mutex<Control>,
    cv: Condvar,
}

/// A running scheduler thread.
pub struct Scheduler {
    shared: Arc<Shared>,
    handle: Option<JoinHandle<()>>,
}

impl Scheduler {
    /// Starts the thread; the first period ends one `interval` from now.
    pub fn start(
        recorder: Arc<Recorder>,
        exporter: Arc<Mutex<Sink>>,
        meta: Arc<Mutex<Meta>>,
        interval: Duration,
    ) -> std::io::Result<Scheduler> {
        let shared = Arc::new(Shared {
            control: Mutex::new(Control::default()),
            cv: Condvar::new(),
        });
        let s2 = shared.clone();
        let handle = std::thread::Builder::new()
            .name("emberscope-scheduler".into())
            .spawn(move || run(recorder, exporter, meta, interval, s2))?;
        Ok(Scheduler {
            shared,
            handle: Some(handle),
        })
    }

    /// Stops the thread; with `flush`, it exports the final partial period first. Waits at
    /// most `timeout`; false when the thread did not finish in time.
    pub fn stop(&mut self, flush: bool, timeout: Duration) -> bool {
        {
            let mut c = self.shared.control.lock();
            c.stop = true;
            c.flush_on_stop = flush;
        }
        self.shared.cv.notify_all();
        let deadline = Instant::now() + timeout;
        let mut c = self.shared.control.lock();
        while !c.done {
            let (g, late) = self.shared.cv.wait_until(c, deadline);
            c = g;
            if late {
                return c.done;
            }
        }
        drop(c);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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

fn run(
    recorder: Arc<Recorder>,
    exporter: Arc<Mutex<Sink>>,
    meta: Arc<Mutex<Meta>>,
    interval: Duration,
    shared: Arc<Shared>,
) {
    let t0 = Instant::now();
    let mut n: u32 = 1;
    loop {
        let deadline = t0 + interval.saturating_mul(n);
        let (stop, flush) = {
            let mut c = shared.control.lock();
            while !c.stop && Instant::now() < deadline {
                c = shared.cv.wait_until(c, deadline).0;
            }
            (c.stop, c.flush_on_stop)
        };
        if !stop || flush {
            export_period(&recorder, &exporter, &meta);
        }
        if stop {
            let mut c = shared.control.lock();
            c.done = true;
            shared.cv.notify_all();
            return;
        }
        // Skip deadlines already missed (e.g. a slow export) instead of flushing in a burst.
        let secs = interval.as_secs_f64();
        let passed = if secs > 0.0 {
            (t0.elapsed().as_secs_f64() / secs)
                .floor()
                .min(f64::from(u32::MAX - 1)) as u32
        } else {
            n
        };
        n = n.saturating_add(1).max(passed.saturating_add(1));
    }
}

fn info_json(meta: &Meta) -> serde_json::Value {
    let c = &meta.config;
    let tags: serde_json::Map<String, serde_json::Value> = c
        .tags
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
        .collect();
    serde_json::json!({
        "profiler": {
            "settings": {
                "service": c.service,
                "env": c.env,
                "version": c.version,
                "tags": tags,
                "output_pprof": c.output_pprof,
                "upload_interval": c.upload_interval,
                "max_frames": c.max_frames,
                "max_time_usage_pct": c.max_time_usage_pct,
                "max_sampling_hz": c.max_sampling_hz,
                "timeline_enabled": c.timeline,
                "stack.enabled": c.stack,
                "stack.v2_enabled": c.stack_v2,
                "exception.enabled": c.exception,
                "exception.sampling_interval": c.exception_sampling_interval,
                "agent_url": c.agent_url,
                "api_timeout_ms": c.api_timeout_ms,
                "enabled": true,
                "code_provenance": c.code_provenance,
                "capture_pct": c.capture_pct,
                "lock.enabled": c.lock,
                "memory.enabled": c.memory,
                "heap.enabled": c.heap,
                "heap._sample_size": c.heap_sample_size,
                "agentless": c.agentless,
                "site": c.site,
            }
        }
    })
}

fn internal_json(t: &Telemetry, meta: &Meta) -> serde_json::Value {
    serde_json::json!({
        "sample_count": t.sample_count,
        "sampling_event_count": t.sampling_event_count,
        "sample_capture_cpu_time_us": t.sample_capture_cpu_time_us,
        "sampling_interval_us": t.sampling_interval_us,
        "copy_memory_error_count": t.copy_memory_error_count,
        "dropped_stacks": t.dropped_stacks,
        "exceptions_seen": t.exceptions_seen,
        "exceptions_sampled": t.exceptions_sampled,
        "sampler": meta.mode,
        "memory_reader": meta.reader,
        "exception_collector": meta.exceptions,
        "runtime_id": meta.runtime_id,
        "process_type": meta.process_type,
        "runtime_version": format!("{}.{}.{}", meta.version.0, meta.version.1, meta.version.2),
        "profiler_config": meta.config.profiler_config(meta.exceptions != "off"),
    })
}

/// Ends the current period and writes it out. Failures become one warning line.
pub fn export_period(recorder: &Recorder, exporter: &Mutex<Sink>, meta: &Mutex<Meta>) {
    let end = SystemTime::now();
    // collectors (issue 5): the live heap belongs to the period that ends now; their counters
    // are read before the sink/meta locks are taken (fork handlers take theirs first).
    crate::memalloc::export_heap(recorder);
    let mut collectors = crate::memalloc::internal();
    collectors.extend(crate::locks::internal());
    let (builder, telemetry, end) = recorder.take(end);
    let start = builder.start();
    let (ex_seen, ex_sampled) = crate::exceptions::take_counts();
    let telemetry = Telemetry {
        exceptions_seen: telemetry.exceptions_seen + ex_seen,
        exceptions_sampled: telemetry.exceptions_sampled + ex_sampled,
        ..telemetry
    };
    let raw = builder.encode(end);
    let mut sink = exporter.lock();
    let (event, info) = {
        let m = meta.lock();
        let mut internal = internal_json(&telemetry, &m);
        if let Some(o) = internal.as_object_mut() {
            o.extend(collectors); // collectors (issue 5)
        }
        if let Some(stats) = sink.upload_stats() {
            stats.merge_into(&mut internal);
        }
        let info = info_json(&m);
        let c = &m.config;
        let mut event = EventMeta::new(
            m.runtime_id.clone(),
            format!("{}.{}.{}", m.version.0, m.version.1, m.version.2),
            env!("CARGO_PKG_VERSION"),
            std::process::id(),
        );
        event.service = c.service.clone();
        event.env = c.env.clone();
        event.version = c.version.clone();
        event.tags = m.tags.clone();
        event.process_type = m.process_type.map(str::to_string);
        event.profiler_config = c.profiler_config(m.exceptions != "off");
        event.start = start;
        event.end = end;
        event.process_tags = Some(m.process_tags.clone()).filter(|t| !t.is_empty());
        event.internal = internal;
        event.settings = info
            .get("profiler")
            .and_then(|p| p.get("settings"))
            .cloned()
            .unwrap_or_default();
        (event, info)
    };
    sink.send(raw, event, &info);
}
