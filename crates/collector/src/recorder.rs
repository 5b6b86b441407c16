//! The profile of the current period, shared by every collector.
//!
//! Collectors add samples through [`Recorder::lock`]; the scheduler swaps the finished
//! period out with [`Recorder::take`], which starts the next period at the exact instant the
//! previous one ends, so consecutive profiles tile time. Thread names come from the Python
//! layer ([`Recorder::set_thread_name`]) because the sampler never touches Python objects.
//!
//! Fork safety: [`Recorder::lock_for_fork`] takes every lock in the forking thread before
//! `fork()`, and `emberscope_sync::fork::release_all` releases them in parent and child, so
//! the child never inherits a lock held by a thread that does not exist there.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use emberscope_profile::fxhash::FxHashMap;
use emberscope_profile::{Frame as PFrame, Label, ProfileBuilder, SampleType, StackId};
use emberscope_sampler::{Frame, FuncInfo};
use emberscope_sync::{fork, Mutex, MutexGuard};

/// A frame produced outside the native sampler (fallback sampler, exception hook).
pub type OwnedFrame = Frame;

/// Builds an [`OwnedFrame`] from plain strings.
pub fn owned_frame(name: &str, filename: &str, line: u32) -> OwnedFrame {
    Frame {
        func: Arc::new(FuncInfo {
            name: name.to_string(),
            filename: filename.to_string(),
            firstlineno: 0,
        }),
        line,
    }
}

/// One thread's stack as collectors hand it to the recorder.
pub struct ThreadSnapshot<'a> {
    /// `threading.get_ident()` of the thread.
    pub thread_id: u64,
    /// Kernel thread id, when known.
    pub native_id: Option<u32>,
    /// Leaf first.
    pub frames: &'a [Frame],
    /// Frames beyond `frames` that were not kept (`DD_PROFILING_MAX_FRAMES`).
    pub omitted: u32,
}

/// Self-telemetry of one period, exported as the profile's `internal` metadata.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    /// Samples added to the profile.
    pub sample_count: u64,
    /// Sampling ticks of the stack collector.
    pub sampling_event_count: u64,
    /// CPU time the sampler thread spent capturing, in microseconds.
    pub sample_capture_cpu_time_us: u64,
    /// Failed reads of interpreter memory (a thread changing under the reader).
    pub copy_memory_error_count: u64,
    /// Stacks discarded because what was read did not validate.
    pub dropped_stacks: u64,
    /// Current sampling interval in microseconds (0 until the sampler has run).
    pub sampling_interval_us: u64,
    /// Exceptions seen by the exception collector.
    pub exceptions_seen: u64,
    /// Exceptions recorded (each one weighted by the sampling interval).
    pub exceptions_sampled: u64,
}

#[derive(Default)]
struct Counters {
    sample_count: AtomicU64,
    ticks: AtomicU64,
    capture_ns: AtomicU64,
    read_errors: AtomicU64,
    dropped: AtomicU64,
    interval_us: AtomicU64,
    exc_seen: AtomicU64,
    exc_sampled: AtomicU64,
}

/// Thread names by Python ident and by kernel id. Idents are reused by later threads as soon
/// as a thread ends; kernel ids are not reused that quickly, so a dead thread's samples (e.g.
/// its live heap, exported every period) keep their name.
#[derive(Default)]
struct Names {
    by_ident: FxHashMap<u64, ThreadName>,
    by_tid: FxHashMap<u32, Arc<str>>,
}

impl Names {
    fn insert(&mut self, thread_id: u64, name: &str, native_id: Option<u32>) {
        // Bounded: a process that churns through threads must not grow these forever.
        if self.by_ident.len() > 65_536 || self.by_tid.len() > 65_536 {
            self.by_ident.clear();
            self.by_tid.clear();
        }
        let native_id =
            native_id.or_else(|| self.by_ident.get(&thread_id).and_then(|t| t.native_id));
        let name: Arc<str> = Arc::from(name);
        if let Some(tid) = native_id {
            self.by_tid.insert(tid, name.clone());
        }
        self.by_ident
            .insert(thread_id, ThreadName { name, native_id });
    }

    /// The name of the thread with this ident and kernel id, if it was reported.
    fn lookup(&self, thread_id: u64, native_id: Option<u32>) -> Option<Arc<str>> {
        if let Some(name) = native_id.and_then(|tid| self.by_tid.get(&tid)) {
            return Some(name.clone());
        }
        let t = self.by_ident.get(&thread_id)?;
        match (t.native_id, native_id) {
            (Some(a), Some(b)) if a != b => None,
            _ => Some(t.name.clone()),
        }
    }
}

#[derive(Clone)]
struct ThreadName {
    name: Arc<str>,
    native_id: Option<u32>,
}

/// Most frames a period's [`StackMemo`] keys hold, 16 bytes each (beyond it, new stacks are
/// interned by their text, as without the memo).
const MAX_MEMO_FRAMES: usize = 262_144;

/// The stacks already interned in the current period, by the identity of their frames'
/// functions: the sampler shares one [`FuncInfo`] per code object, so a stack seen before is
/// recognised by its `(function pointer, line)` pairs without hashing any text. Every
/// function named by a key is kept alive here, so a pointer cannot be reused by another
/// function while the memo holds it. Only stacks whose functions are all shared (held by a
/// cache as well as by the frame) are remembered: frames made for one sample (fallback
/// sampler, frame-API captures) are interned by their text.
#[derive(Default)]
struct StackMemo {
    /// `(FuncInfo address, line)` per frame, then `(0, omitted)` → the builder's stack.
    index: FxHashMap<Box<[(usize, u32)]>, StackId>,
    /// Frames held by `index`'s keys.
    frames: usize,
    /// The functions `index` names, by address.
    keep: FxHashMap<usize, Arc<FuncInfo>>,
    /// Scratch for the key being looked up.
    key: Vec<(usize, u32)>,
}

/// The current period: its profile and the memo that feeds it.
struct Period {
    builder: ProfileBuilder,
    stacks: StackMemo,
}

impl Period {
    fn new(start: SystemTime) -> Self {
        Period {
            builder: ProfileBuilder::new(start),
            stacks: StackMemo::default(),
        }
    }
}

/// The shared profile of the current period plus thread names and counters.
pub struct Recorder {
    timeline: bool,
    builder: Mutex<Period>,
    /// Threads sampled this period before the Python layer reported their name (a thread in
    /// its first bytecodes); their placeholder label is renamed when the period ends.
    unnamed: Mutex<Vec<(u64, Option<u32>)>>,
    names: Mutex<Names>,
    counters: Counters,
}

impl Recorder {
    /// A recorder whose first period starts at `start`. With `timeline`, every sample keeps
    /// its own `end_timestamp_ns`; without it, identical samples are aggregated.
    pub fn new(start: SystemTime, timeline: bool) -> Self {
        Recorder {
            timeline,
            builder: Mutex::new(Period::new(start)),
            unnamed: Mutex::new(Vec::new()),
            names: Mutex::new(Names::default()),
            counters: Counters::default(),
        }
    }

    /// Whether samples carry timestamps.
    pub fn timeline(&self) -> bool {
        self.timeline
    }

    /// Records (or updates) the name and kernel id of a Python thread.
    pub fn set_thread_name(&self, thread_id: u64, name: &str, native_id: Option<u32>) {
        self.names.lock().insert(thread_id, name, native_id);
    }

    /// Kernel id the Python layer reported for `thread_id`, if any.
    pub fn native_id_of(&self, thread_id: u64) -> Option<u32> {
        self.names
            .lock()
            .by_ident
            .get(&thread_id)
            .and_then(|t| t.native_id)
    }

    /// Locks the current period for a batch of samples.
    pub fn lock(&self) -> RecorderGuard<'_> {
        let builder = self.builder.lock();
        // Timestamps are clamped into [period start, lock time]: a sample stamped just
        // before a period ended but added just after lands inside the period it is in.
        let start_ns = crate::clock::epoch_ns(builder.builder.start());
        let now_ns = crate::clock::epoch_ns(SystemTime::now()).max(start_ns);
        RecorderGuard {
            recorder: self,
            builder,
            start_ns,
            now_ns,
        }
    }

    /// Ends the current period and starts the next one at the same instant: `end`, or the
    /// moment the lock is taken if that is later (so no sample added before can be stamped
    /// after the end). Returns the finished period, its telemetry and its end.
    pub fn take(&self, end: SystemTime) -> (ProfileBuilder, Telemetry, SystemTime) {
        let (mut builder, end) = {
            let mut current = self.builder.lock();
            let end = end.max(SystemTime::now());
            (
                std::mem::replace(&mut *current, Period::new(end)).builder,
                end,
            )
        };
        let unnamed = std::mem::take(&mut *self.unnamed.lock());
        if !unnamed.is_empty() {
            let names = self.names.lock();
            for (id, tid) in unnamed {
                if let Some(name) = names.lookup(id, tid) {
                    builder.replace_string(&placeholder_name(id, tid), &name);
                }
            }
        }
        let c = &self.counters;
        let telemetry = Telemetry {
            sample_count: c.sample_count.swap(0, Ordering::Relaxed),
            sampling_event_count: c.ticks.swap(0, Ordering::Relaxed),
            sample_capture_cpu_time_us: c.capture_ns.swap(0, Ordering::Relaxed) / 1000,
            copy_memory_error_count: c.read_errors.swap(0, Ordering::Relaxed),
            dropped_stacks: c.dropped.swap(0, Ordering::Relaxed),
            sampling_interval_us: c.interval_us.load(Ordering::Relaxed),
            exceptions_seen: c.exc_seen.swap(0, Ordering::Relaxed),
            exceptions_sampled: c.exc_sampled.swap(0, Ordering::Relaxed),
        };
        (builder, telemetry, end)
    }

    /// Records one sampler tick's cost and outcome.
    pub fn note_tick(&self, capture_ns: u64, read_errors: u64, dropped: u64, interval_us: u64) {
        let c = &self.counters;
        c.ticks.fetch_add(1, Ordering::Relaxed);
        c.capture_ns.fetch_add(capture_ns, Ordering::Relaxed);
        c.read_errors.fetch_add(read_errors, Ordering::Relaxed);
        c.dropped.fetch_add(dropped, Ordering::Relaxed);
        c.interval_us.store(interval_us, Ordering::Relaxed);
    }

    /// Sets the reported sampling interval before the first tick has measured one.
    pub fn set_interval_us(&self, interval_us: u64) {
        self.counters
            .interval_us
            .store(interval_us, Ordering::Relaxed);
    }

    /// Counts exceptions seen and recorded by the exception collector.
    pub fn note_exceptions(&self, seen: u64, sampled: u64) {
        let c = &self.counters;
        c.exc_seen.fetch_add(seen, Ordering::Relaxed);
        c.exc_sampled.fetch_add(sampled, Ordering::Relaxed);
    }

    /// Takes every lock before `fork()` (called in the forking thread's `pthread_atfork`
    /// prepare handler) and keeps the guards, and this recorder, in
    /// [`emberscope_sync::fork`] until [`fork::release_all`] in the parent and the child.
    pub fn lock_for_fork(self: &Arc<Self>) {
        fork::stash(self.clone());
        // SAFETY: the clone stashed above keeps the recorder, and so its mutexes, alive until
        // release_all has dropped the guards stashed after it.
        unsafe {
            fork::hold(&self.builder);
            fork::hold(&self.unnamed);
            fork::hold(&self.names);
        }
    }
}

/// The current period, locked for adding samples.
pub struct RecorderGuard<'a> {
    recorder: &'a Recorder,
    builder: MutexGuard<'a, Period>,
    start_ns: i64,
    now_ns: i64,
}

impl RecorderGuard<'_> {
    /// The reported name of the thread, unless the ident now belongs to another thread (a
    /// dead thread's ident reused before the new one registered: kernel ids differ).
    fn thread_name(&self, thread_id: u64, native_id: Option<u32>) -> Option<Arc<str>> {
        self.recorder.names.lock().lookup(thread_id, native_id)
    }

    /// The builder's id of `thread`'s stack (its frames plus the omitted-frames marker),
    /// from the period's memo when the same functions and lines were seen before.
    fn stack_of(&mut self, thread: &ThreadSnapshot<'_>) -> StackId {
        let Period { builder, stacks } = &mut *self.builder;
        // Frames made for one sample (fallback sampler, exception hook: a fresh `FuncInfo`
        // each, held by nothing else) would never be seen again: intern them by text and
        // keep them out of the memo, which would only hold them alive.
        let shared = thread.frames.iter().all(|f| Arc::strong_count(&f.func) > 1);
        if !shared {
            return intern_by_text(builder, thread);
        }
        stacks.key.clear();
        stacks.key.extend(
            thread
                .frames
                .iter()
                .map(|f| (Arc::as_ptr(&f.func) as usize, f.line)),
        );
        stacks.key.push((0, thread.omitted));
        if let Some(&id) = stacks.index.get(stacks.key.as_slice()) {
            return id;
        }
        let id = intern_by_text(builder, thread);
        if stacks.frames + stacks.key.len() <= MAX_MEMO_FRAMES {
            stacks.frames += stacks.key.len();
            stacks.index.insert(stacks.key.as_slice().into(), id);
            for f in thread.frames {
                stacks
                    .keep
                    .entry(Arc::as_ptr(&f.func) as usize)
                    .or_insert_with(|| f.func.clone());
            }
        }
        id
    }

    /// Adds one sample for `thread` with the given values and extra labels, stamped `ts_ns`.
    pub fn add(
        &mut self,
        thread: &ThreadSnapshot<'_>,
        values: &[(SampleType, i64)],
        extra: &[Label<'_>],
        ts_ns: i64,
    ) {
        let name = self.thread_name(thread.thread_id, thread.native_id);
        let stack = self.stack_of(thread);
        let fallback_name;
        let name_str: &str = match &name {
            Some(n) => n,
            None => {
                fallback_name = placeholder_name(thread.thread_id, thread.native_id);
                let key = (thread.thread_id, thread.native_id);
                let mut unnamed = self.recorder.unnamed.lock();
                if !unnamed.contains(&key) && unnamed.len() < 4096 {
                    unnamed.push(key);
                }
                &fallback_name
            }
        };
        // The thread's labels, then `extra`, on the stack unless `extra` is long.
        let id = Label::num("thread id", thread.thread_id as i64);
        let name_label = Label::str("thread name", name_str);
        let with_tid;
        let without_tid;
        let head: &[Label<'_>] = match thread.native_id {
            Some(tid) => {
                with_tid = [
                    id,
                    Label::num("thread native id", i64::from(tid)),
                    name_label,
                ];
                &with_tid
            }
            None => {
                without_tid = [id, name_label];
                &without_tid
            }
        };
        let mut inline = [Label::num("", 0); 8];
        let spilled: Vec<Label<'_>>;
        let labels: &[Label<'_>] = match inline.get_mut(..head.len() + extra.len()) {
            Some(slots) => {
                let (a, b) = slots.split_at_mut(head.len());
                a.copy_from_slice(head);
                b.copy_from_slice(extra);
                slots
            }
            None => {
                spilled = [head, extra].concat();
                &spilled
            }
        };
        let ts = if self.recorder.timeline {
            Some(ts_ns.clamp(self.start_ns, self.now_ns))
        } else {
            None
        };
        self.builder
            .builder
            .add_sample_with_stack(stack, values, labels, ts);
        self.recorder
            .counters
            .sample_count
            .fetch_add(1, Ordering::Relaxed);
    }
}

/// `thread`'s stack interned by its frames' text (plus the omitted-frames marker).
fn intern_by_text(builder: &mut ProfileBuilder, thread: &ThreadSnapshot<'_>) -> StackId {
    let omitted_name;
    let mut frames: Vec<PFrame<'_>> = Vec::with_capacity(thread.frames.len() + 1);
    for f in thread.frames {
        frames.push(PFrame {
            name: &f.func.name,
            filename: &f.func.filename,
            line: i64::from(f.line),
        });
    }
    if thread.omitted > 0 {
        omitted_name = omitted_marker(thread.omitted);
        frames.push(PFrame {
            name: &omitted_name,
            filename: "",
            line: 0,
        });
    }
    builder.intern_stack(&frames)
}

/// The `thread name` used until the Python layer reports the real one (unique per thread,
/// so that only this thread's samples are renamed once the name is known).
fn placeholder_name(thread_id: u64, native_id: Option<u32>) -> String {
    match native_id {
        Some(tid) => format!("Thread-{thread_id} (tid {tid})"),
        None => format!("Thread-{thread_id}"),
    }
}

/// The synthetic root-side frame standing for `n` frames cut by `DD_PROFILING_MAX_FRAMES`.
pub fn omitted_marker(n: u32) -> String {
    if n == 1 {
        "<1 frame omitted>".to_string()
    } else {
        format!("<{n} frames omitted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn take_tiles_time_and_resets_counters() {
        let t0 = SystemTime::now();
        let r = Recorder::new(t0, true);
        r.set_thread_name(7, "worker", Some(1234));
        let frames = vec![owned_frame("f", "/a.py", 3), owned_frame("g", "/a.py", 9)];
        let snap = ThreadSnapshot {
            thread_id: 7,
            native_id: Some(1234),
            frames: &frames,
            omitted: 2,
        };
        r.lock().add(
            &snap,
            &[(SampleType::WallTime, 10), (SampleType::WallSamples, 1)],
            &[],
            5,
        );
        let t1 = t0 + Duration::from_secs(1);
        let (b, tel, end) = r.take(t1);
        assert_eq!(end, t1);
        assert_eq!(tel.sample_count, 1);
        assert_eq!(b.start(), t0);
        let (b2, tel2, _) = r.take(t1 + Duration::from_secs(1));
        assert_eq!(b2.start(), t1);
        assert_eq!(tel2.sample_count, 0);
        let p = b.build(t1);
        let strings = &p.string_table;
        assert!(strings.iter().any(|s| s == "<2 frames omitted>"));
        assert!(strings.iter().any(|s| s == "worker"));
    }

    #[test]
    fn late_thread_names_replace_the_placeholder() {
        let t0 = SystemTime::now();
        let r = Recorder::new(t0, true);
        let frames = vec![owned_frame("_bootstrap", "/threading.py", 1)];
        let snap = ThreadSnapshot {
            thread_id: 42,
            native_id: None,
            frames: &frames,
            omitted: 0,
        };
        r.lock().add(&snap, &[(SampleType::WallSamples, 1)], &[], 1);
        r.set_thread_name(42, "late-worker", None);
        let (b, _, _) = r.take(t0 + Duration::from_secs(1));
        let p = b.build(t0 + Duration::from_secs(1));
        assert!(p.string_table.iter().any(|s| s == "late-worker"));
        assert!(!p.string_table.iter().any(|s| s == "Thread-42"));
    }

    #[test]
    fn a_renamed_placeholder_merges_with_the_named_samples_without_timeline() {
        // An allocation sampled while the thread starts (no name yet) and later samples of
        // the same stack under the real name: one sample once the period ends.
        let t0 = SystemTime::now();
        let r = Recorder::new(t0, false);
        let frames = vec![owned_frame("run", "/threading.py", 1)];
        let snap = ThreadSnapshot {
            thread_id: 42,
            native_id: Some(7),
            frames: &frames,
            omitted: 0,
        };
        r.lock()
            .add(&snap, &[(SampleType::AllocSamples, 1)], &[], 1);
        r.set_thread_name(42, "steady-0", Some(7));
        r.lock()
            .add(&snap, &[(SampleType::AllocSamples, 2)], &[], 2);
        r.lock().add(&snap, &[(SampleType::WallSamples, 5)], &[], 3);
        let (b, _, _) = r.take(t0 + Duration::from_secs(1));
        let p = b.build(t0 + Duration::from_secs(1));
        assert_eq!(p.sample.len(), 1, "{:?}", p.sample);
        let alloc = SampleType::AllocSamples.index();
        let wall = SampleType::WallSamples.index();
        assert_eq!(p.sample[0].value[alloc], 3);
        assert_eq!(p.sample[0].value[wall], 5);
        assert!(!p.string_table.iter().any(|s| s.starts_with("Thread-42")));
    }

    #[test]
    fn a_reused_ident_does_not_rename_the_dead_threads_samples() {
        let t0 = SystemTime::now();
        let r = Recorder::new(t0, true);
        let frames = vec![owned_frame("work", "/a.py", 1)];
        r.set_thread_name(42, "old-worker", Some(1));
        let old = ThreadSnapshot {
            thread_id: 42,
            native_id: Some(1),
            frames: &frames,
            omitted: 0,
        };
        let new = ThreadSnapshot {
            thread_id: 42,
            native_id: Some(2),
            frames: &frames,
            omitted: 0,
        };
        r.lock().add(&old, &[(SampleType::WallSamples, 1)], &[], 1);
        // The new thread is sampled before it registers: not the old thread's name.
        r.lock().add(&new, &[(SampleType::WallSamples, 1)], &[], 2);
        r.set_thread_name(42, "new-worker", Some(2));
        let (b, _, end) = r.take(t0 + Duration::from_secs(1));
        let p = b.build(end);
        let st = &p.string_table;
        assert!(st.iter().any(|s| s == "old-worker"));
        assert!(st.iter().any(|s| s == "new-worker"));
        assert!(!st.iter().any(|s| s.starts_with("Thread-42")));
    }

    /// Each sample of `b`'s profile as (leaf-first frame names and lines, wall samples).
    fn stacks_of(b: ProfileBuilder, end: SystemTime) -> Vec<(Vec<(String, i64)>, i64)> {
        let p = emberscope_profile::decode(&b.encode(end)).unwrap();
        let s = emberscope_profile::ProfileSummary::from_profile(&p).unwrap();
        s.rows
            .iter()
            .map(|r| {
                let frames = r.frames.iter().map(|f| (f.0.clone(), f.2)).collect();
                (frames, r.value("wall-samples"))
            })
            .collect()
    }

    #[test]
    fn remembered_stacks_are_told_apart_by_function_line_and_omitted() {
        let t0 = SystemTime::now();
        let r = Recorder::new(t0, false);
        let f = owned_frame("f", "/a.py", 1);
        let g = owned_frame("g", "/a.py", 5);
        // A function with the same text from another code object is the same frame.
        let f_again = owned_frame("f", "/a.py", 1);
        // Each function also held elsewhere, as by the sampler's code cache.
        let _cache = [f.func.clone(), g.func.clone(), f_again.func.clone()];
        let moved = Frame {
            line: 2,
            ..f.clone()
        };
        let stacks: [(Vec<Frame>, u32); 5] = [
            (vec![f.clone(), g.clone()], 0),
            (vec![f_again, g.clone()], 0),
            (vec![moved, g.clone()], 0),
            (vec![f.clone(), g.clone()], 3),
            (vec![g.clone(), f.clone()], 0),
        ];
        let mut guard = r.lock();
        for (i, (frames, omitted)) in stacks.iter().enumerate() {
            let snap = ThreadSnapshot {
                thread_id: 1,
                native_id: Some(1),
                frames,
                omitted: *omitted,
            };
            guard.add(&snap, &[(SampleType::WallSamples, 1 << i)], &[], 1);
        }
        drop(guard);
        let end = t0 + Duration::from_secs(1);
        let (b, _, end) = r.take(end);
        let mut got = stacks_of(b, end);
        got.sort();
        let fg = vec![("f".to_string(), 1), ("g".to_string(), 5)];
        let mut want = vec![
            (fg.clone(), 1 | 2),
            (vec![("f".to_string(), 2), ("g".to_string(), 5)], 4),
            (
                [fg.clone(), vec![("<3 frames omitted>".to_string(), 0)]].concat(),
                8,
            ),
            (vec![("g".to_string(), 5), ("f".to_string(), 1)], 16),
        ];
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn frames_made_for_one_sample_stay_out_of_the_memo() {
        let r = Recorder::new(SystemTime::now(), true);
        let add = |frames: &[Frame]| {
            let snap = ThreadSnapshot {
                thread_id: 1,
                native_id: None,
                frames,
                omitted: 0,
            };
            r.lock().add(&snap, &[(SampleType::WallSamples, 1)], &[], 1);
        };
        for line in 0..50 {
            // Fresh functions, as the fallback sampler makes them: dropped after the sample.
            add(&[owned_frame("f", "/a.py", line % 5)]);
        }
        assert_eq!(r.builder.lock().stacks.index.len(), 0);
        assert_eq!(r.builder.lock().builder.sample_count(), 50);
        // Functions shared with a cache (the native sampler's) are remembered.
        let cached = owned_frame("g", "/a.py", 1);
        let _cache = cached.func.clone();
        for _ in 0..3 {
            add(std::slice::from_ref(&cached));
        }
        assert_eq!(r.builder.lock().stacks.index.len(), 1);
    }

    #[test]
    fn the_stack_memo_starts_afresh_every_period() {
        // Stack ids belong to one period's builder: the next period must not reuse them.
        let t0 = SystemTime::now();
        let r = Recorder::new(t0, true);
        let a = vec![owned_frame("a", "/a.py", 1)];
        let b = vec![owned_frame("b", "/b.py", 2)];
        // Shared, as the sampler's code cache shares them: remembered by the memo.
        let _cache = (a[0].func.clone(), b[0].func.clone());
        let snap = |frames| ThreadSnapshot {
            thread_id: 1,
            native_id: None,
            frames,
            omitted: 0,
        };
        r.lock()
            .add(&snap(&a), &[(SampleType::WallSamples, 1)], &[], 1);
        r.lock()
            .add(&snap(&b), &[(SampleType::WallSamples, 1)], &[], 2);
        let (_, _, end) = r.take(t0 + Duration::from_secs(1));
        r.lock()
            .add(&snap(&b), &[(SampleType::WallSamples, 1)], &[], 3);
        let (second, _, end2) = r.take(end + Duration::from_secs(1));
        assert_eq!(
            stacks_of(second, end2),
            vec![(vec![("b".to_string(), 2)], 1)]
        );
    }

    #[test]
    fn fork_locks_roundtrip() {
        let r = Arc::new(Recorder::new(SystemTime::now(), false));
        r.lock_for_fork();
        assert!(r.names.try_lock().is_none());
        fork::release_all();
        assert_eq!(Arc::strong_count(&r), 1);
        r.set_thread_name(1, "x", None);
        assert_eq!(r.native_id_of(1), None);
    }

    #[test]
    fn omitted_marker_grammar() {
        assert_eq!(omitted_marker(1), "<1 frame omitted>");
        assert_eq!(omitted_marker(37), "<37 frames omitted>");
    }
}
