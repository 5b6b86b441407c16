//! [`Uploader`]: ships profiles to an agent or intake from its own thread,
//! never from the application's, and loses nothing to a short outage.
//!
//! * [`Uploader::enqueue`] never blocks on the network: it appends to a
//!   queue bounded by count and bytes and returns. When the queue is full
//!   the oldest profile that is not being sent at that moment is dropped,
//!   counted, and reported with one warning line.
//! * One background thread (`emberscope-upload`, pure Rust: it never takes
//!   the GIL, and it blocks all signals so they reach the application's
//!   threads) sends the oldest profile, one request at a time. It compresses
//!   the pprof (zstd), builds `event.json` and the multipart body, and
//!   computes the code provenance on first use.
//! * Each attempt is bounded by the configured timeout
//!   (`DD_PROFILING_API_TIMEOUT_MS`): resolve, connect, send and receive.
//! * Connection errors, timeouts, 408, 429 and 5xx are retried with
//!   exponential backoff (`backoff_initial` doubling up to `backoff_max`)
//!   and jitter (each delay is uniformly drawn from its upper half); a
//!   `Retry-After` (seconds or HTTP date) is a lower bound for the delay,
//!   itself capped at `backoff_max`. The first failure of a streak logs one
//!   line, recovery another. Other statuses (4xx, 3xx) are not retried:
//!   one line with the status and a body excerpt (at most 200 characters).
//! * [`Uploader::shutdown`] gives each pending profile one attempt bounded
//!   by the timeout and by the deadline, and returns by the deadline in any
//!   case (the request in flight is then aborted and the thread left to
//!   finish on its own).
//! * After `fork`, the child calls [`Uploader::forget_after_fork`] on the
//!   inherited uploader (its thread does not exist in the child) and
//!   creates a new one.
//!
//! The API key is only put in the `DD-API-KEY` header: it is redacted from
//! `event.json`, from every warning and never appears in `Debug` output or
//! errors.

use std::collections::VecDeque;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use emberscope_sync::{Condvar, Mutex};
use serde_json::Value;

use crate::event::{self, EventMeta, PPROF_ATTACHMENT, PROVENANCE_ATTACHMENT};
use crate::http::{AbortHandle, Endpoint, HttpError, Response};
use crate::multipart::{self, ApiKey};
use crate::provenance::CodeProvenance;
use crate::rng::Rng;

/// Default per-attempt timeout (`DD_PROFILING_API_TIMEOUT_MS` default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(10_000);
/// Default queue bound by count.
pub const DEFAULT_MAX_QUEUE_LEN: usize = 16;
/// Default queue bound by bytes (raw pprof sizes plus a fixed estimate per
/// profile).
pub const DEFAULT_MAX_QUEUE_BYTES: usize = 64 << 20;
/// Default first retry delay.
pub const DEFAULT_BACKOFF_INITIAL: Duration = Duration::from_secs(1);
/// Default longest retry delay.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Longest body excerpt in a warning, in characters.
pub const EXCERPT_CHARS: usize = 200;
/// Longest timeout or backoff honoured (longer settings are clamped).
const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
/// Bytes counted per queued profile on top of its pprof.
const META_BYTES_ESTIMATE: usize = 4096;

/// Where warnings go: one line per call, without a prefix.
pub type WarnSink = Arc<dyn Fn(&str) + Send + Sync>;

/// How an [`Uploader`] behaves.
#[derive(Clone)]
pub struct UploaderConfig {
    /// Where to send.
    pub endpoint: Endpoint,
    /// Agentless: sent as `DD-API-KEY`.
    pub api_key: Option<ApiKey>,
    /// Bound of each attempt (`DD_PROFILING_API_TIMEOUT_MS`; clamped to
    /// 1 ms..24 h, like the backoff settings).
    pub timeout: Duration,
    /// Most profiles waiting (at least 1).
    pub max_queue_len: usize,
    /// Most bytes waiting (one profile is always accepted).
    pub max_queue_bytes: usize,
    /// First retry delay.
    pub backoff_initial: Duration,
    /// Longest retry delay (also caps `Retry-After`).
    pub backoff_max: Duration,
    /// Code provenance to attach (`None`: no `code-provenance.json` part).
    pub provenance: Option<CodeProvenance>,
    /// Warning sink.
    pub warn: WarnSink,
}

impl fmt::Debug for UploaderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploaderConfig")
            .field("endpoint", &self.endpoint)
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("max_queue_len", &self.max_queue_len)
            .field("max_queue_bytes", &self.max_queue_bytes)
            .field("backoff_initial", &self.backoff_initial)
            .field("backoff_max", &self.backoff_max)
            .field("provenance", &self.provenance.is_some())
            .finish()
    }
}

impl UploaderConfig {
    /// Defaults for `endpoint`: no key, 10 s timeout, 16 profiles / 64 MiB,
    /// backoff 1 s to 60 s, no provenance.
    pub fn new(endpoint: Endpoint, warn: WarnSink) -> Self {
        UploaderConfig {
            endpoint,
            api_key: None,
            timeout: DEFAULT_TIMEOUT,
            max_queue_len: DEFAULT_MAX_QUEUE_LEN,
            max_queue_bytes: DEFAULT_MAX_QUEUE_BYTES,
            backoff_initial: DEFAULT_BACKOFF_INITIAL,
            backoff_max: DEFAULT_BACKOFF_MAX,
            provenance: None,
            warn,
        }
    }

    /// Agent mode: `url` is the agent (`http://host:port`, `https://...`
    /// or `unix:///path`); profiles go to `/profiling/v1/input`.
    pub fn agent(url: &str, warn: WarnSink) -> Result<Self, HttpError> {
        Ok(Self::new(Endpoint::agent(url)?, warn))
    }

    /// Agentless mode: `url` is the full intake URL (e.g.
    /// `https://intake.profile.datadoghq.com/api/v2/profile`).
    pub fn agentless(url: &str, api_key: ApiKey, warn: WarnSink) -> Result<Self, HttpError> {
        let mut c = Self::new(Endpoint::intake(url)?, warn);
        c.api_key = Some(api_key);
        Ok(c)
    }
}

/// The agentless intake URL for `site` (`DD_SITE`, e.g. `datadoghq.com`).
pub fn agentless_url(site: &str) -> String {
    let site = site.trim().trim_matches('/');
    let site = if site.is_empty() {
        "datadoghq.com"
    } else {
        site
    };
    format!("https://intake.profile.{site}/api/v2/profile")
}

/// One finished period.
#[derive(Debug, Clone)]
pub struct ProfileUpload {
    /// The serialized, uncompressed pprof protobuf.
    pub pprof: Vec<u8>,
    /// What `event.json` says about it.
    pub meta: EventMeta,
}

/// Upload counters since the uploader started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UploadStats {
    /// Profiles delivered (2xx).
    pub ok: u64,
    /// Failed attempts that were scheduled for a retry.
    pub retried: u64,
    /// Profiles dropped undelivered: queue overflow, or still pending when
    /// the shutdown deadline came.
    pub dropped: u64,
    /// Profiles given up on: rejected (non-retryable status), could not be
    /// built, or whose attempt at shutdown failed.
    pub failed: u64,
}

impl UploadStats {
    /// Keys used in `internal`, with their values.
    pub fn internal_fields(&self) -> [(&'static str, u64); 4] {
        [
            ("upload_ok_count", self.ok),
            ("upload_retry_count", self.retried),
            ("upload_dropped_count", self.dropped),
            ("upload_failed_count", self.failed),
        ]
    }

    /// Adds the counters to an `internal` object (keys already present are
    /// left alone; non-objects are not touched).
    pub fn merge_into(&self, internal: &mut Value) {
        if let Value::Object(map) = internal {
            for (k, v) in self.internal_fields() {
                map.entry(k).or_insert(Value::from(v));
            }
        }
    }
}

/// What [`Uploader::shutdown`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShutdownReport {
    /// Final counters.
    pub stats: UploadStats,
    /// Profiles left undelivered because the deadline came (included in
    /// `stats.dropped`).
    pub unsent: usize,
    /// Whether the deadline came before the thread finished.
    pub timed_out: bool,
}

/// Why an [`Uploader`] could not be created.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The thread could not be started.
    #[error("cannot start the upload thread: {0}")]
    Spawn(#[source] std::io::Error),
}

struct Entry {
    id: u64,
    item: Arc<ProfileUpload>,
    bytes: usize,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Entry>,
    queued_bytes: usize,
    next_id: u64,
    /// Id of the entry whose request is on the wire.
    in_flight: Option<u64>,
    shutdown: Option<Instant>,
    /// The shutdown caller gave up waiting: the worker must not touch
    /// counters or the queue any more.
    abandoned: bool,
    finished: bool,
    warnings: Vec<String>,
}

impl State {
    fn remove(&mut self, id: u64) -> bool {
        match self.queue.iter().position(|e| e.id == id) {
            Some(i) => {
                if let Some(e) = self.queue.remove(i) {
                    self.queued_bytes = self.queued_bytes.saturating_sub(e.bytes);
                }
                true
            }
            None => false,
        }
    }
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    retried: AtomicU64,
    dropped: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> UploadStats {
        UploadStats {
            ok: self.ok.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

struct Shared {
    config: UploaderConfig,
    state: Mutex<State>,
    /// Wakes the worker (new profile, shutdown).
    wake: Condvar,
    /// Wakes the shutdown caller (worker finished).
    done: Condvar,
    abort: AbortHandle,
    counters: Counters,
}

impl Shared {
    /// Calls the sink with the API key redacted; a panicking sink is
    /// ignored.
    fn emit(&self, msg: &str) {
        let msg = match &self.config.api_key {
            Some(k) => k.redact(msg),
            None => msg.to_string(),
        };
        let sink = &self.config.warn;
        let _ = catch_unwind(AssertUnwindSafe(|| sink(&msg)));
    }
}

/// Ships [`ProfileUpload`]s from a background thread (see the module doc).
pub struct Uploader {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Uploader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploader")
            .field("endpoint", &self.shared.config.endpoint)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Uploader {
    /// Starts the upload thread.
    pub fn new(mut config: UploaderConfig) -> Result<Uploader, UploadError> {
        // Bounded so that `Instant + duration` can never overflow.
        let clamp = |d: Duration| d.clamp(Duration::from_millis(1), MAX_DURATION);
        config.max_queue_len = config.max_queue_len.max(1);
        config.backoff_initial = clamp(config.backoff_initial);
        config.backoff_max = clamp(config.backoff_max).max(config.backoff_initial);
        config.timeout = clamp(config.timeout);
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
            abort: AbortHandle::new(),
            counters: Counters::default(),
        });
        let worker_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("emberscope-upload".to_string())
            .spawn(move || {
                block_signals();
                let mut w = Worker {
                    shared: worker_shared,
                    streak: 0,
                    next_attempt: None,
                    prepared: None,
                    rng: Rng::new(),
                    provenance_warned: false,
                };
                w.run();
            })
            .map_err(UploadError::Spawn)?;
        Ok(Uploader {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues a profile and returns at once. If the queue is then over its
    /// bounds, the oldest profiles (except one being sent right now) are
    /// dropped, each counted and reported by one warning line.
    pub fn enqueue(&self, upload: ProfileUpload) {
        let bytes = upload.pprof.len() + META_BYTES_ESTIMATE;
        let config = &self.shared.config;
        let mut st = self.shared.state.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.queue.push_back(Entry {
            id,
            item: Arc::new(upload),
            bytes,
        });
        st.queued_bytes += bytes;
        while st.queue.len() > config.max_queue_len
            || (st.queued_bytes > config.max_queue_bytes && st.queue.len() > 1)
        {
            // Never the one on the wire: its outcome is counted by the worker.
            let idx = match (st.in_flight, st.queue.front()) {
                (Some(f), Some(e)) if e.id == f => 1,
                _ => 0,
            };
            let Some(old) = st.queue.remove(idx) else {
                break;
            };
            st.queued_bytes = st.queued_bytes.saturating_sub(old.bytes);
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
            let msg = format!(
                "upload queue full ({} profiles, {} bytes max): dropped the oldest profile ({} to {}) for {}",
                config.max_queue_len,
                config.max_queue_bytes,
                event::rfc3339_nanos(old.item.meta.start),
                event::rfc3339_nanos(old.item.meta.end),
                config.endpoint.url()
            );
            st.warnings.push(msg);
        }
        drop(st);
        self.shared.wake.notify_all();
    }

    /// Counters so far.
    pub fn stats(&self) -> UploadStats {
        self.shared.counters.snapshot()
    }

    /// Profiles waiting (including one being sent).
    pub fn queued(&self) -> usize {
        self.shared.state.lock().queue.len()
    }

    /// The endpoint URL (no credentials).
    pub fn endpoint_url(&self) -> &str {
        self.shared.config.endpoint.url()
    }

    /// Stops the uploader: every pending profile gets one attempt (bounded
    /// by the timeout and by `deadline`), then the thread ends. Returns by
    /// `deadline` whatever the agent does: what is still pending then is
    /// dropped, and the request in flight is aborted. Warnings still queued
    /// are emitted on the calling thread before returning.
    pub fn shutdown(mut self, deadline: Instant) -> ShutdownReport {
        let shared = self.shared.clone();
        let mut unsent = 0usize;
        let mut timed_out = false;
        let warnings = {
            let mut st = shared.state.lock();
            st.shutdown = Some(deadline);
            shared.wake.notify_all();
            while !st.finished {
                let (g, late) = shared.done.wait_until(st, deadline);
                st = g;
                if late {
                    break;
                }
            }
            if !st.finished {
                timed_out = true;
                st.abandoned = true;
                unsent = st.queue.len();
                st.queue.clear();
                st.queued_bytes = 0;
                shared
                    .counters
                    .dropped
                    .fetch_add(unsent as u64, Ordering::Relaxed);
            }
            std::mem::take(&mut st.warnings)
        };
        let thread = self.thread.take();
        if timed_out {
            shared.abort.abort();
            // The thread ends on its own once its socket call returns.
            drop(thread);
        } else if let Some(t) = thread {
            let _ = t.join();
        }
        for w in &warnings {
            shared.emit(w);
        }
        if unsent > 0 {
            shared.emit(&format!(
                "exit deadline reached: {unsent} profile(s) not delivered to {}",
                shared.config.endpoint.url()
            ));
        }
        ShutdownReport {
            stats: shared.counters.snapshot(),
            unsent,
            timed_out,
        }
    }

    /// In a forked child: forgets this uploader without touching its state
    /// (its thread and any lock it held belong to the parent). Its memory is
    /// leaked; create a new [`Uploader`] for the child.
    pub fn forget_after_fork(self) {
        std::mem::forget(self);
    }
}

impl Drop for Uploader {
    /// Without [`shutdown`](Uploader::shutdown): pending profiles are
    /// dropped, the request in flight is aborted, nothing waits.
    fn drop(&mut self) {
        if self.thread.take().is_none() {
            return;
        }
        {
            let mut st = self.shared.state.lock();
            st.abandoned = true;
        }
        self.shared.wake.notify_all();
        self.shared.abort.abort();
    }
}

/// Blocks every signal in the calling (helper) thread so that the
/// application's threads receive them.
fn block_signals() {
    // SAFETY: sigset_t is plain data initialised by sigfillset; the calls
    // only change this thread's mask.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// A request ready to send (kept across retries).
struct Prepared {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

enum Outcome {
    Delivered,
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Reject {
        reason: String,
    },
}

enum Step {
    Send(u64, Arc<ProfileUpload>),
    Shutdown(Instant),
    Exit,
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(
            v.parse::<u64>().unwrap_or(u64::MAX / 4),
        ));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// One line of at most [`EXCERPT_CHARS`] characters from a response body.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let flat: String = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if flat.chars().count() <= EXCERPT_CHARS {
        flat
    } else {
        let mut s: String = flat.chars().take(EXCERPT_CHARS - 3).collect();
        s.push_str("...");
        s
    }
}

fn classify(result: Result<Response, HttpError>) -> Outcome {
    match result {
        Ok(r) if (200..300).contains(&r.status) => Outcome::Delivered,
        Ok(r) if r.status == 408 || r.status == 429 || r.status >= 500 => Outcome::Retry {
            reason: format!("HTTP {} {}", r.status, r.reason)
                .trim_end()
                .to_string(),
            retry_after: r
                .header("retry-after")
                .and_then(|v| parse_retry_after(v, SystemTime::now())),
        },
        Ok(r) => {
            let body = excerpt(&r.body);
            let status = format!("HTTP {} {}", r.status, r.reason)
                .trim_end()
                .to_string();
            Outcome::Reject {
                reason: if body.is_empty() {
                    status
                } else {
                    format!("{status}: {body}")
                },
            }
        }
        Err(e) if e.is_retryable() => Outcome::Retry {
            reason: e.to_string(),
            retry_after: None,
        },
        Err(e) => Outcome::Reject {
            reason: e.to_string(),
        },
    }
}

struct Worker {
    shared: Arc<Shared>,
    /// Consecutive retryable failures.
    streak: u32,
    next_attempt: Option<Instant>,
    prepared: Option<(u64, Arc<Prepared>)>,
    rng: Rng,
    provenance_warned: bool,
}

impl Worker {
    fn config(&self) -> &UploaderConfig {
        &self.shared.config
    }

    fn run(&mut self) {
        loop {
            match self.next_step() {
                Step::Send(id, item) => self.attempt(id, &item),
                Step::Shutdown(deadline) => {
                    self.drain(deadline);
                    break;
                }
                Step::Exit => break,
            }
        }
        let mut st = self.shared.state.lock();
        st.finished = true;
        drop(st);
        self.shared.done.notify_all();
    }

    /// Waits for something to do; emits queued warnings (outside the lock).
    fn next_step(&mut self) -> Step {
        loop {
            let mut st = self.shared.state.lock();
            if st.abandoned {
                return Step::Exit;
            }
            if let Some(deadline) = st.shutdown {
                return Step::Shutdown(deadline);
            }
            if !st.warnings.is_empty() {
                let warnings = std::mem::take(&mut st.warnings);
                drop(st);
                for w in &warnings {
                    self.shared.emit(w);
                }
                continue;
            }
            let Some(front) = st.queue.front() else {
                drop(self.shared.wake.wait(st));
                continue;
            };
            if let Some(t) = self.next_attempt {
                if Instant::now() < t {
                    drop(self.shared.wake.wait_until(st, t));
                    continue;
                }
            }
            let (id, item) = (front.id, front.item.clone());
            st.in_flight = Some(id);
            return Step::Send(id, item);
        }
    }

    fn prepare(&mut self, id: u64, item: &ProfileUpload) -> Result<Arc<Prepared>, String> {
        if let Some((pid, p)) = &self.prepared {
            if *pid == id {
                return Ok(p.clone());
            }
        }
        let pprof = emberscope_profile::zstd(&item.pprof)
            .map_err(|e| format!("cannot compress profile: {e}"))?;
        let provenance = match &self.shared.config.provenance {
            Some(p) => {
                let doc = p.get();
                if doc.is_none() && !self.provenance_warned {
                    self.provenance_warned = true;
                    self.shared
                        .emit("cannot compress code provenance; sending profiles without it");
                }
                doc
            }
            None => None,
        };
        let mut meta = item.meta.clone();
        self.shared
            .counters
            .snapshot()
            .merge_into(&mut meta.internal);
        let attachments: &[&str] = if provenance.is_some() {
            &[PROVENANCE_ATTACHMENT, PPROF_ATTACHMENT]
        } else {
            &[PPROF_ATTACHMENT]
        };
        let mut json = event::event_json(&meta, attachments);
        if let Some(k) = &self.config().api_key {
            json = k.redact(&json);
        }
        let body = multipart::profile_body(
            json.as_bytes(),
            provenance.as_ref().map(|d| d.zstd.as_slice()),
            &pprof,
        );
        let headers = multipart::request_headers(&body, self.config().api_key.as_ref());
        let p = Arc::new(Prepared {
            headers,
            body: body.body,
        });
        self.prepared = Some((id, p.clone()));
        Ok(p)
    }

    /// One attempt; `None` if the profile could not even be built (it is
    /// then removed and counted as failed).
    fn send(&mut self, id: u64, item: &ProfileUpload, deadline: Instant) -> Option<Outcome> {
        match self.prepare(id, item) {
            Ok(p) => {
                let r =
                    self.config()
                        .endpoint
                        .post(&p.headers, &p.body, deadline, &self.shared.abort);
                Some(classify(r))
            }
            Err(reason) => {
                let mut st = self.shared.state.lock();
                st.in_flight = None;
                if !st.abandoned && st.remove(id) {
                    self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                    st.warnings.push(format!("profile not uploaded: {reason}"));
                }
                None
            }
        }
    }

    fn backoff(&mut self, retry_after: Option<Duration>) -> Duration {
        let cfg = self.config();
        let (initial, max) = (cfg.backoff_initial, cfg.backoff_max);
        let doublings = self.streak.saturating_sub(1).min(30);
        let exp = initial.saturating_mul(1u32 << doublings).min(max);
        let jittered = exp.mul_f64(0.5 + 0.5 * self.rng.next_f64());
        retry_after.map_or(jittered, |ra| ra.max(jittered)).min(max)
    }

    fn attempt(&mut self, id: u64, item: &ProfileUpload) {
        let deadline = Instant::now() + self.config().timeout;
        let Some(outcome) = self.send(id, item, deadline) else {
            return;
        };
        let url = self.config().endpoint.url().to_string();
        let shared = self.shared.clone();
        let mut st = shared.state.lock();
        st.in_flight = None;
        if st.abandoned {
            return;
        }
        let counters = &shared.counters;
        match outcome {
            Outcome::Delivered => {
                st.remove(id);
                counters.ok.fetch_add(1, Ordering::Relaxed);
                if self.streak > 0 {
                    st.warnings.push(format!(
                        "upload to {url} succeeded again after {} failed attempt(s)",
                        self.streak
                    ));
                }
                self.streak = 0;
                self.next_attempt = None;
                self.prepared = None;
            }
            Outcome::Retry {
                reason,
                retry_after,
            } => {
                self.streak += 1;
                counters.retried.fetch_add(1, Ordering::Relaxed);
                let delay = self.backoff(retry_after);
                self.next_attempt = Some(Instant::now() + delay);
                if self.streak == 1 {
                    st.warnings.push(format!(
                        "upload to {url} failed ({reason}); will retry with backoff"
                    ));
                }
            }
            Outcome::Reject { reason } => {
                if st.remove(id) {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                }
                st.warnings.push(format!(
                    "upload to {url} rejected, profile dropped: {reason}"
                ));
                self.streak = 0;
                self.next_attempt = None;
                self.prepared = None;
            }
        }
    }

    /// Shutdown: one attempt per pending profile, all by `deadline`.
    /// Warnings are left for the shutdown caller to emit.
    fn drain(&mut self, deadline: Instant) {
        let url = self.config().endpoint.url().to_string();
        let mut failed = 0usize;
        let mut last_reason = String::new();
        loop {
            let (id, item) = {
                let mut st = self.shared.state.lock();
                if st.abandoned {
                    return;
                }
                let Some(front) = st.queue.front() else { break };
                if Instant::now() >= deadline {
                    break;
                }
                let next = (front.id, front.item.clone());
                st.in_flight = Some(next.0);
                next
            };
            let attempt_deadline = deadline.min(Instant::now() + self.config().timeout);
            let Some(outcome) = self.send(id, &item, attempt_deadline) else {
                continue;
            };
            let mut st = self.shared.state.lock();
            st.in_flight = None;
            if st.abandoned {
                return;
            }
            st.remove(id);
            self.prepared = None;
            match outcome {
                Outcome::Delivered => {
                    self.shared.counters.ok.fetch_add(1, Ordering::Relaxed);
                }
                Outcome::Retry { reason, .. } | Outcome::Reject { reason } => {
                    self.shared.counters.failed.fetch_add(1, Ordering::Relaxed);
                    failed += 1;
                    last_reason = reason;
                }
            }
        }
        let mut st = self.shared.state.lock();
        if st.abandoned {
            return;
        }
        let left = st.queue.len();
        st.queue.clear();
        st.queued_bytes = 0;
        self.shared
            .counters
            .dropped
            .fetch_add(left as u64, Ordering::Relaxed);
        if failed > 0 || left > 0 {
            let mut msg = format!(
                "at exit: {} profile(s) not delivered to {url}",
                failed + left
            );
            if !last_reason.is_empty() {
                msg.push_str(&format!(" (last error: {last_reason})"));
            }
            st.warnings.push(msg);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after(" 1 ", now), Some(Duration::from_secs(1)));
        let later = now + Duration::from_secs(30);
        let date = httpdate::fmt_http_date(later);
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert!(parse_retry_after("99999999999999999999999", now).is_some());
    }

    #[test]
    fn excerpts_are_one_short_line() {
        let body = format!("line one\r\n\tline two {}", "x".repeat(500));
        let e = excerpt(body.as_bytes());
        assert!(e.starts_with("line one line two xxx"));
        assert_eq!(e.chars().count(), EXCERPT_CHARS);
        assert!(e.ends_with("..."));
    }

    #[test]
    fn agentless_url_per_site() {
        assert_eq!(
            agentless_url("datadoghq.eu"),
            "https://intake.profile.datadoghq.eu/api/v2/profile"
        );
        assert_eq!(
            agentless_url(""),
            "https://intake.profile.datadoghq.com/api/v2/profile"
        );
    }

    #[test]
    fn stats_merge_keeps_existing_keys() {
        let s = UploadStats {
            ok: 1,
            retried: 2,
            dropped: 3,
            failed: 4,
        };
        let mut v = serde_json::json!({"upload_ok_count": 99, "x": 1});
        s.merge_into(&mut v);
        assert_eq!(v["upload_ok_count"], 99);
        assert_eq!(v["upload_retry_count"], 2);
        assert_eq!(v["upload_failed_count"], 4);
    }
}
