//! [`ProfileBuilder`]: collects samples for one profile period and turns them
//! into a [`pprof::Profile`] ([`ProfileBuilder::build`]) or straight into its
//! protobuf bytes ([`ProfileBuilder::encode`], in `wire`).
//!
//! Everything is interned once per profile: strings, functions
//! `(name, filename)`, locations `(function, line)`, stacks (sequences of
//! location ids) and label sets. A frame already seen costs one hash of its
//! text plus two string comparisons; a stack already seen costs one more hash
//! of its location ids (a caller that knows its stacks by identity skips both:
//! [`ProfileBuilder::intern_stack`]). A label set seen before costs one hash of
//! the labels as given plus a comparison with the set it names (a memo), not
//! an interning of every key and value. Samples without a timestamp are aggregated per
//! `(stack, labels)` by summing values; samples with a timestamp (timeline)
//! are kept one by one and get an `end_timestamp_ns` numeric label.
//!
//! Values are stored sparsely (a bit mask of the non-zero types plus those
//! values only), so a typical CPU/wall sample costs ~40 bytes of memory, not
//! 19 × 8.
//!
//! Nothing here panics: ids are `u32` indices kept consistent by
//! construction, and lookups use `get`.

use std::hash::{Hash, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::fxhash::{FxHashMap, FxHasher};
use crate::pprof;
use crate::sample_type::{SampleType, SAMPLE_TYPE_COUNT};

mod wire;

/// Label key carrying the end of a timeline sample, epoch nanoseconds.
pub const END_TIMESTAMP_NS: &str = "end_timestamp_ns";
/// Filename of synthetic frames for C calls; such locations get `address = 1`
/// as in the reference profiler (Python frames have `address = 0`).
pub const NATIVE_FILENAME: &str = "<native>";
/// Strings the reference profiler puts at the start of every string table,
/// right after the sample types (kept for byte-level familiarity).
const PRE_INTERNED: [&str; 3] = ["local root span id", "trace endpoint", END_TIMESTAMP_NS];

/// The name of the synthetic root-side frame that replaces `n` frames cut by
/// truncation: `<1 frame omitted>`, `<5 frames omitted>` (empty filename,
/// line 0, like the reference profiler).
pub fn omitted_frames_name(n: usize) -> String {
    if n == 1 {
        "<1 frame omitted>".to_owned()
    } else {
        format!("<{n} frames omitted>")
    }
}

/// One stack frame as the sampler read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame<'a> {
    /// Function name (`co_qualname`, or `module.func` for native frames).
    pub name: &'a str,
    /// Absolute file name, or a pseudo path like `<native>`, `<frozen ...>`.
    pub filename: &'a str,
    /// Current line number (0 if unknown).
    pub line: i64,
}

/// Value of a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelValue<'a> {
    /// A string label (e.g. `thread name`).
    Str(&'a str),
    /// A numeric label (e.g. `thread id`, `span id` bit-cast to i64).
    Num(i64),
}

/// A label attached to a sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Label<'a> {
    /// Key, e.g. `thread id`.
    pub key: &'a str,
    /// Value.
    pub value: LabelValue<'a>,
}

impl<'a> Label<'a> {
    /// A string label.
    pub fn str(key: &'a str, value: &'a str) -> Self {
        Label {
            key,
            value: LabelValue::Str(value),
        }
    }

    /// A numeric label.
    pub fn num(key: &'a str, value: i64) -> Self {
        Label {
            key,
            value: LabelValue::Num(value),
        }
    }
}

/// A stack interned in one [`ProfileBuilder`] ([`ProfileBuilder::intern_stack`]), for
/// callers that remember their stacks ([`ProfileBuilder::add_sample_with_stack`]). Meaningful
/// only to the builder that returned it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StackId(u32);

const NONE: u32 = u32::MAX;
/// Label sets remembered by [`ProfileBuilder::intern_labels`]'s memo (beyond it, sets are
/// interned key by key, as before the memo).
const MAX_LABEL_MEMO: usize = 4096;

#[derive(Clone, Copy)]
struct FunctionRec {
    name: u32,
    filename: u32,
}

#[derive(Clone, Copy)]
struct LocationRec {
    function: u32,
    line: i64,
    /// Next location whose frame hash is the same (collision chain), or NONE.
    next: u32,
}

/// An interned label: `str` is a string id or NONE for numeric labels.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct LabelRec {
    key: u32,
    str: u32,
    num: i64,
}

#[derive(Clone, Copy)]
struct SampleRec {
    stack: u32,
    labels: u32,
    /// Bit i set = value of `SampleType::ALL[i]` stored.
    mask: u32,
    /// Index of the first stored value in `ProfileBuilder::values`.
    start: usize,
    timestamp: Option<i64>,
}

impl SampleRec {
    /// This sample's compact block in `values`: one value per bit of `mask`, in type order.
    fn stored<'v>(&self, values: &'v [i64]) -> &'v [i64] {
        values
            .get(self.start..self.start + self.mask.count_ones() as usize)
            .unwrap_or(&[])
    }

    /// This sample's values, one slot per sample type (0 where none is stored), read from
    /// its compact block in `values`.
    fn dense(&self, values: &[i64]) -> [i64; SAMPLE_TYPE_COUNT] {
        let mut dense = [0i64; SAMPLE_TYPE_COUNT];
        let mut stored = self.stored(values).iter();
        for (i, slot) in dense.iter_mut().enumerate() {
            if self.mask & (1 << i) != 0 {
                *slot = stored.next().copied().unwrap_or(0);
            }
        }
        dense
    }
}

#[derive(Default)]
#[cfg_attr(test, derive(Clone))]
struct Strings {
    index: FxHashMap<Box<str>, u32>,
    list: Vec<Box<str>>,
}

impl Strings {
    fn intern(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        let id = self.list.len() as u32;
        self.list.push(s.into());
        self.index.insert(s.into(), id);
        id
    }

    fn get(&self, id: u32) -> &str {
        self.list.get(id as usize).map_or("", |s| s)
    }
}

/// Accumulates the samples of one profile period. `Send`, not `Sync`: owned
/// by one thread at a time (the collector swaps it out at flush).
#[cfg_attr(test, derive(Clone))]
pub struct ProfileBuilder {
    start: SystemTime,
    strings: Strings,
    functions: Vec<FunctionRec>,
    function_index: FxHashMap<(u32, u32), u32>,
    locations: Vec<LocationRec>,
    /// Hash of (name, filename, line) → first location in its chain.
    frame_index: FxHashMap<u64, u32>,
    stack_index: FxHashMap<Box<[u32]>, u32>,
    label_set_index: FxHashMap<Box<[LabelRec]>, u32>,
    /// Hash of a label slice as given ([`labels_hash`]) → its set: most samples repeat a
    /// set seen before, and checking it against this entry costs one hash of the slice
    /// instead of interning every key and value.
    label_memo: FxHashMap<u64, (u32, Box<[LabelRec]>)>,
    samples: Vec<SampleRec>,
    values: Vec<i64>,
    /// (stack, label set) → sample, for samples without timestamp.
    aggregate_index: FxHashMap<(u32, u32), u32>,
    sample_type_ids: [(u32, u32); SAMPLE_TYPE_COUNT],
    end_timestamp_key: u32,
    scratch_stack: Vec<u32>,
    scratch_labels: Vec<LabelRec>,
}

fn frame_hash(frame: &Frame<'_>) -> u64 {
    let mut h = FxHasher::default();
    frame.name.hash(&mut h);
    frame.filename.hash(&mut h);
    frame.line.hash(&mut h);
    h.finish()
}

/// A location's `address`: 1 for a synthetic C-call frame (its function's file is
/// [`NATIVE_FILENAME`], whose string id is `native`), 0 for a Python frame.
fn location_address(functions: &[FunctionRec], native: Option<u32>, l: &LocationRec) -> u64 {
    u64::from(
        functions
            .get(l.function as usize)
            .is_some_and(|f| Some(f.filename) == native),
    )
}

fn labels_hash(labels: &[Label<'_>]) -> u64 {
    let mut h = FxHasher::default();
    labels.hash(&mut h);
    h.finish()
}

/// `end - start` in nanoseconds, 0 if the clock went backwards.
fn duration_nanos(start: SystemTime, end: SystemTime) -> i64 {
    end.duration_since(start)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn epoch_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

impl ProfileBuilder {
    /// An empty profile whose period starts at `start`.
    pub fn new(start: SystemTime) -> Self {
        let mut strings = Strings::default();
        strings.intern("");
        let mut sample_type_ids = [(0, 0); SAMPLE_TYPE_COUNT];
        for (slot, t) in sample_type_ids.iter_mut().zip(SampleType::ALL) {
            *slot = (strings.intern(t.name()), strings.intern(t.unit()));
        }
        let mut end_timestamp_key = 0;
        for s in PRE_INTERNED {
            end_timestamp_key = strings.intern(s);
        }
        ProfileBuilder {
            start,
            strings,
            functions: Vec::new(),
            function_index: FxHashMap::default(),
            locations: Vec::new(),
            frame_index: FxHashMap::default(),
            stack_index: FxHashMap::default(),
            label_set_index: FxHashMap::default(),
            label_memo: FxHashMap::default(),
            samples: Vec::new(),
            values: Vec::new(),
            aggregate_index: FxHashMap::default(),
            sample_type_ids,
            end_timestamp_key,
            scratch_stack: Vec::new(),
            scratch_labels: Vec::new(),
        }
    }

    /// Start of the period.
    pub fn start(&self) -> SystemTime {
        self.start
    }

    /// Number of pprof samples so far (after aggregation).
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// Whether no sample was added.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Number of distinct locations (frames) so far.
    pub fn location_count(&self) -> usize {
        self.locations.len()
    }

    /// Number of strings in the string table so far (including `""`).
    pub fn string_count(&self) -> usize {
        self.strings.list.len()
    }

    /// Rewrites an already-interned string everywhere it is used (labels, names), e.g. a
    /// placeholder thread name whose real name became known before the period ended.
    /// Returns false when `old` was never interned (or is `""`). Later interning of `old`
    /// creates a new entry. When `new` was already interned (the thread's later samples
    /// carry its real name), label sets that now read the same are merged, and so are the
    /// untimestamped samples whose stack and labels thereby coincide: without a timeline,
    /// identical stack + labels stay one sample.
    pub fn replace_string(&mut self, old: &str, new: &str) -> bool {
        if old.is_empty() {
            return false;
        }
        let Some(id) = self.strings.index.remove(old) else {
            return false;
        };
        // The memo's sets were checked against the strings' old text.
        self.label_memo.clear();
        if let Some(slot) = self.strings.list.get_mut(id as usize) {
            *slot = new.into();
        }
        match self.strings.index.get(new).copied() {
            None => {
                self.strings.index.insert(new.into(), id);
            }
            Some(existing) => self.merge_label_string(id, existing),
        }
        true
    }

    /// Label sets using string `from` now use `to` (the same text). A set that becomes equal
    /// to an existing one keeps its id (ids stay dense) but its samples move to the existing
    /// set, merging with an untimestamped sample of the same stack.
    fn merge_label_string(&mut self, from: u32, to: u32) {
        let uses: Vec<(Box<[LabelRec]>, u32)> = self
            .label_set_index
            .iter()
            .filter(|(recs, _)| recs.iter().any(|r| r.str == from))
            .map(|(recs, &sid)| (recs.clone(), sid))
            .collect();
        let mut moved: FxHashMap<u32, u32> = FxHashMap::default();
        for (recs, sid) in uses {
            let renamed: Box<[LabelRec]> = recs
                .iter()
                .map(|r| LabelRec {
                    str: if r.str == from { to } else { r.str },
                    ..*r
                })
                .collect();
            match self.label_set_index.get(&renamed).copied() {
                Some(other) => {
                    moved.insert(sid, other);
                }
                None => {
                    self.label_set_index.remove(&recs);
                    self.label_set_index.insert(renamed, sid);
                }
            }
        }
        if moved.is_empty() {
            return;
        }
        let old_samples = std::mem::take(&mut self.samples);
        self.aggregate_index.clear();
        for mut rec in old_samples {
            if let Some(&other) = moved.get(&rec.labels) {
                rec.labels = other;
            }
            if rec.timestamp.is_none() {
                if let Some(&idx) = self.aggregate_index.get(&(rec.stack, rec.labels)) {
                    let dense = rec.dense(&self.values);
                    self.merge_into(idx as usize, &dense, rec.mask);
                    continue;
                }
                self.aggregate_index
                    .insert((rec.stack, rec.labels), self.samples.len() as u32);
            }
            self.samples.push(rec);
        }
    }

    fn intern_location(&mut self, frame: &Frame<'_>) -> u32 {
        let hash = frame_hash(frame);
        let first = self.frame_index.get(&hash).copied().unwrap_or(NONE);
        let mut cur = first;
        while let Some(loc) = self.locations.get(cur as usize) {
            if loc.line == frame.line {
                if let Some(f) = self.functions.get(loc.function as usize) {
                    if self.strings.get(f.name) == frame.name
                        && self.strings.get(f.filename) == frame.filename
                    {
                        return cur;
                    }
                }
            }
            cur = loc.next;
        }
        let name = self.strings.intern(frame.name);
        let filename = self.strings.intern(frame.filename);
        let function = match self.function_index.get(&(name, filename)) {
            Some(&id) => id,
            None => {
                let id = self.functions.len() as u32;
                self.functions.push(FunctionRec { name, filename });
                self.function_index.insert((name, filename), id);
                id
            }
        };
        let id = self.locations.len() as u32;
        self.locations.push(LocationRec {
            function,
            line: frame.line,
            next: first,
        });
        self.frame_index.insert(hash, id);
        id
    }

    /// Interns a stack (leaf first) without adding a sample: a caller that can tell two
    /// stacks apart more cheaply than by their text (the collector, by the identity of its
    /// frames' functions) keeps the id and adds samples with
    /// [`add_sample_with_stack`](Self::add_sample_with_stack).
    pub fn intern_stack(&mut self, frames: &[Frame<'_>]) -> StackId {
        StackId(self.intern_stack_id(frames))
    }

    fn intern_stack_id(&mut self, frames: &[Frame<'_>]) -> u32 {
        let mut stack = std::mem::take(&mut self.scratch_stack);
        stack.clear();
        for frame in frames {
            let loc = self.intern_location(frame);
            stack.push(loc);
        }
        let id = match self.stack_index.get(stack.as_slice()) {
            Some(&id) => id,
            None => {
                let id = self.stack_index.len() as u32;
                self.stack_index.insert(stack.as_slice().into(), id);
                id
            }
        };
        self.scratch_stack = stack;
        id
    }

    /// Whether the interned `recs` are `labels`.
    fn same_labels(&self, recs: &[LabelRec], labels: &[Label<'_>]) -> bool {
        recs.len() == labels.len()
            && recs.iter().zip(labels).all(|(r, l)| {
                self.strings.get(r.key) == l.key
                    && match l.value {
                        LabelValue::Str(s) => r.str != NONE && self.strings.get(r.str) == s,
                        LabelValue::Num(n) => r.str == NONE && r.num == n,
                    }
            })
    }

    fn intern_labels(&mut self, labels: &[Label<'_>]) -> u32 {
        let hash = labels_hash(labels);
        if let Some((id, recs)) = self.label_memo.get(&hash) {
            if self.same_labels(recs, labels) {
                return *id;
            }
        }
        let id = self.intern_labels_slow(labels);
        if self.label_memo.len() < MAX_LABEL_MEMO {
            let recs: Box<[LabelRec]> = self.scratch_labels.as_slice().into();
            self.label_memo.insert(hash, (id, recs));
        }
        id
    }

    fn intern_labels_slow(&mut self, labels: &[Label<'_>]) -> u32 {
        let mut recs = std::mem::take(&mut self.scratch_labels);
        recs.clear();
        for label in labels {
            let key = self.strings.intern(label.key);
            let rec = match label.value {
                LabelValue::Str(s) => LabelRec {
                    key,
                    str: self.strings.intern(s),
                    num: 0,
                },
                LabelValue::Num(num) => LabelRec {
                    key,
                    str: NONE,
                    num,
                },
            };
            recs.push(rec);
        }
        let id = match self.label_set_index.get(recs.as_slice()) {
            Some(&id) => id,
            None => {
                let id = self.label_set_index.len() as u32;
                self.label_set_index.insert(recs.as_slice().into(), id);
                id
            }
        };
        self.scratch_labels = recs;
        id
    }

    /// Adds one sample.
    ///
    /// * `frames`: leaf first.
    /// * `values`: the non-zero types (zeros and absent types are the same;
    ///   a type given twice is summed).
    /// * `labels`: in a stable order; "identical labels" means same keys and
    ///   values in the same order.
    /// * `timestamp_ns`: `Some(epoch ns)` keeps the sample separate
    ///   (timeline) and adds an `end_timestamp_ns` numeric label; `None`
    ///   sums it into an earlier untimestamped sample with the same stack
    ///   and labels, if any.
    pub fn add_sample(
        &mut self,
        frames: &[Frame<'_>],
        values: &[(SampleType, i64)],
        labels: &[Label<'_>],
        timestamp_ns: Option<i64>,
    ) {
        let stack = self.intern_stack_id(frames);
        self.add_sample_at(stack, values, labels, timestamp_ns);
    }

    /// [`add_sample`](Self::add_sample) for a stack interned before by
    /// [`intern_stack`](Self::intern_stack). An id this builder did not return is ignored.
    pub fn add_sample_with_stack(
        &mut self,
        stack: StackId,
        values: &[(SampleType, i64)],
        labels: &[Label<'_>],
        timestamp_ns: Option<i64>,
    ) {
        if (stack.0 as usize) < self.stack_index.len() {
            self.add_sample_at(stack.0, values, labels, timestamp_ns);
        }
    }

    fn add_sample_at(
        &mut self,
        stack: u32,
        values: &[(SampleType, i64)],
        labels: &[Label<'_>],
        timestamp_ns: Option<i64>,
    ) {
        let mut dense = [0i64; SAMPLE_TYPE_COUNT];
        let mut mask = 0u32;
        for &(t, v) in values {
            if let Some(slot) = dense.get_mut(t.index()) {
                *slot = slot.saturating_add(v);
            }
        }
        for (i, v) in dense.iter().enumerate() {
            if *v != 0 {
                mask |= 1 << i;
            }
        }
        let label_set = self.intern_labels(labels);

        if timestamp_ns.is_none() {
            if let Some(&idx) = self.aggregate_index.get(&(stack, label_set)) {
                self.merge_into(idx as usize, &dense, mask);
                return;
            }
            self.aggregate_index
                .insert((stack, label_set), self.samples.len() as u32);
        }
        let start = self.values.len();
        self.values
            .extend(dense.iter().copied().filter(|v| *v != 0));
        self.samples.push(SampleRec {
            stack,
            labels: label_set,
            mask,
            start,
            timestamp: timestamp_ns,
        });
    }

    fn merge_into(&mut self, idx: usize, dense: &[i64; SAMPLE_TYPE_COUNT], mask: u32) {
        let Some(rec) = self.samples.get_mut(idx) else {
            return;
        };
        if mask & !rec.mask == 0 {
            // Every new type already has a slot: add in place.
            let mut pos = rec.start;
            for (i, v) in dense.iter().enumerate() {
                if rec.mask & (1 << i) != 0 {
                    if let Some(slot) = self.values.get_mut(pos) {
                        *slot = slot.saturating_add(*v);
                    }
                    pos += 1;
                }
            }
        } else {
            // New types: re-lay the values at the end (the old block becomes
            // garbage; rare, and bounded by the number of types).
            let mut merged = rec.dense(&self.values);
            for (m, v) in merged.iter_mut().zip(dense) {
                *m = m.saturating_add(*v);
            }
            rec.mask |= mask;
            rec.start = self.values.len();
            for (i, m) in merged.iter().enumerate() {
                if rec.mask & (1 << i) != 0 {
                    self.values.push(*m);
                }
            }
        }
    }

    /// Builds the pprof message for the period `[start, end)`: all 19 sample
    /// types in order, `period_type` cpu-time/nanoseconds, `period` 1,
    /// `time_nanos` = start, `duration_nanos` = end − start (0 if the clock
    /// went backwards), string table with `""` first, no mappings.
    pub fn build(self, end: SystemTime) -> pprof::Profile {
        let ProfileBuilder {
            start,
            strings,
            functions,
            locations,
            stack_index,
            label_set_index,
            samples,
            values,
            sample_type_ids,
            end_timestamp_key,
            ..
        } = self;

        let sample_type = sample_type_ids
            .iter()
            .map(|&(t, u)| pprof::ValueType {
                r#type: i64::from(t),
                unit: i64::from(u),
            })
            .collect();

        let mut stacks: Vec<Vec<u64>> = vec![Vec::new(); stack_index.len()];
        for (locs, id) in stack_index {
            if let Some(slot) = stacks.get_mut(id as usize) {
                *slot = locs.iter().map(|&l| u64::from(l) + 1).collect();
            }
        }
        let mut label_sets: Vec<Vec<pprof::Label>> = vec![Vec::new(); label_set_index.len()];
        for (recs, id) in label_set_index {
            if let Some(slot) = label_sets.get_mut(id as usize) {
                *slot = recs
                    .iter()
                    .map(|r| pprof::Label {
                        key: i64::from(r.key),
                        str: if r.str == NONE { 0 } else { i64::from(r.str) },
                        num: if r.str == NONE { r.num } else { 0 },
                        num_unit: 0,
                    })
                    .collect();
            }
        }

        let sample = samples
            .iter()
            .map(|rec| {
                let value = rec.dense(&values).to_vec();
                let mut label = label_sets
                    .get(rec.labels as usize)
                    .cloned()
                    .unwrap_or_default();
                if let Some(ts) = rec.timestamp {
                    label.push(pprof::Label {
                        key: i64::from(end_timestamp_key),
                        str: 0,
                        num: ts,
                        num_unit: 0,
                    });
                }
                pprof::Sample {
                    location_id: stacks.get(rec.stack as usize).cloned().unwrap_or_default(),
                    value,
                    label,
                }
            })
            .collect();

        let native = strings.index.get(NATIVE_FILENAME).copied();
        let location = locations
            .iter()
            .enumerate()
            .map(|(i, l)| pprof::Location {
                id: i as u64 + 1,
                mapping_id: 0,
                address: location_address(&functions, native, l),
                line: vec![pprof::Line {
                    function_id: u64::from(l.function) + 1,
                    line: l.line,
                }],
                is_folded: false,
            })
            .collect();
        let function = functions
            .iter()
            .enumerate()
            .map(|(i, f)| pprof::Function {
                id: i as u64 + 1,
                name: i64::from(f.name),
                system_name: 0,
                filename: i64::from(f.filename),
                start_line: 0,
            })
            .collect();

        let (cpu_time, nanoseconds) = sample_type_ids[SampleType::CpuTime.index()];
        let time_nanos = epoch_nanos(start);
        let duration_nanos = duration_nanos(start, end);

        pprof::Profile {
            sample_type,
            sample,
            mapping: Vec::new(),
            location,
            function,
            string_table: strings.list.into_iter().map(String::from).collect(),
            drop_frames: 0,
            keep_frames: 0,
            time_nanos,
            duration_nanos,
            period_type: Some(pprof::ValueType {
                r#type: i64::from(cpu_time),
                unit: i64::from(nanoseconds),
            }),
            period: 1,
            comment: Vec::new(),
            default_sample_type: 0,
        }
    }
}

impl std::fmt::Debug for ProfileBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileBuilder")
            .field("start", &self.start)
            .field("samples", &self.samples.len())
            .field("stacks", &self.stack_index.len())
            .field("locations", &self.locations.len())
            .field("strings", &self.strings.list.len())
            .finish()
    }
}
