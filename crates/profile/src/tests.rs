//! Unit tests of the builder through the public API (build → encode → decode).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::*;

fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(1_764_009_408_605_662_892)
}

fn fr<'a>(name: &'a str, filename: &'a str, line: i64) -> Frame<'a> {
    Frame {
        name,
        filename,
        line,
    }
}

/// Builds `b`, checks that `ProfileBuilder::encode` writes exactly prost's bytes for the built
/// profile, and reads it back through gzip.
fn roundtrip(b: ProfileBuilder, end: SystemTime) -> (pprof::Profile, ProfileSummary) {
    let direct = b.clone().encode(end);
    let p = b.build(end);
    let raw = encode(&p);
    assert_eq!(direct, raw, "direct encoding differs from prost's");
    let decoded = decode(&gzip(&raw).unwrap()).unwrap();
    assert_eq!(decoded, p);
    let s = ProfileSummary::from_profile(&decoded).unwrap();
    (decoded, s)
}

#[test]
fn builder_is_send() {
    fn assert_send<T: Send>() {}
    assert_send::<ProfileBuilder>();
}

#[test]
fn empty_profile_header() {
    let b = ProfileBuilder::new(t0());
    assert!(b.is_empty());
    assert_eq!(b.sample_count(), 0);
    assert_eq!(b.start(), t0());
    let (p, s) = roundtrip(b, t0() + Duration::from_millis(5_013));
    assert_eq!(p.string_table[0], "");
    assert_eq!(s.sample_types.len(), 19);
    let got: Vec<(String, String)> = SampleType::ALL
        .iter()
        .map(|t| (t.name().to_owned(), t.unit().to_owned()))
        .collect();
    assert_eq!(s.sample_types, got);
    assert_eq!(s.sample_types[0], ("cpu-time".into(), "nanoseconds".into()));
    assert_eq!(
        s.sample_types[18],
        ("gpu-flops-samples".into(), "count".into())
    );
    assert_eq!(
        s.period_type,
        Some(("cpu-time".into(), "nanoseconds".into()))
    );
    assert_eq!(s.period, 1);
    assert_eq!(s.time_nanos, 1_764_009_408_605_662_892);
    assert_eq!(s.duration_nanos, 5_013_000_000);
    assert_eq!(s.mapping_count, 0);
    assert!(s.rows.is_empty());
    assert_eq!(p.default_sample_type, 0);
    assert!(p.comment.is_empty());
    assert!(p.string_table.iter().any(|x| x == "end_timestamp_ns"));
    assert!(p.string_table.iter().any(|x| x == "local root span id"));
}

#[test]
fn clock_going_backwards_gives_zero_duration() {
    let b = ProfileBuilder::new(t0());
    let direct = b.clone().encode(t0() - Duration::from_secs(1));
    let p = b.build(t0() - Duration::from_secs(1));
    assert_eq!(p.duration_nanos, 0);
    assert_eq!(direct, encode(&p));
}

#[test]
fn round_trip_keeps_everything() {
    let mut b = ProfileBuilder::new(t0());
    let stack = [
        fr("time.sleep", "<native>", 0),
        fr("Worker.run", "/app/worker.py", 42),
        fr("<module>", "/app/main.py", 7),
    ];
    b.add_sample(
        &stack,
        &[
            (SampleType::CpuTime, 1_234),
            (SampleType::CpuSamples, 1),
            (SampleType::WallTime, 10_000_000),
            (SampleType::WallSamples, 1),
        ],
        &[
            Label::num("thread id", 140_000_123),
            Label::num("thread native id", 4242),
            Label::str("thread name", "MainThread"),
            Label::num("span id", -5),
        ],
        Some(1_764_009_410_000_000_000),
    );
    b.add_sample(
        &[fr("allocate", "/app/alloc.py", 3)],
        &[
            (SampleType::AllocSpace, 1 << 20),
            (SampleType::AllocSamples, 138_486),
        ],
        &[
            Label::num("thread id", 7),
            Label::str("thread name", "7"),
            Label::str("allocator domain", "obj"),
        ],
        None,
    );
    assert_eq!(b.sample_count(), 2);
    let (p, s) = roundtrip(b, t0() + Duration::from_secs(5));

    let r = &s.rows[0];
    assert_eq!(
        r.frames,
        vec![
            ("time.sleep".to_owned(), "<native>".to_owned(), 0),
            ("Worker.run".to_owned(), "/app/worker.py".to_owned(), 42),
            ("<module>".to_owned(), "/app/main.py".to_owned(), 7),
        ]
    );
    assert_eq!(r.num_label("thread id"), Some(140_000_123));
    assert_eq!(r.num_label("thread native id"), Some(4242));
    assert_eq!(r.str_label("thread name"), Some("MainThread"));
    assert_eq!(r.num_label("span id"), Some(-5));
    assert_eq!(
        r.num_label("end_timestamp_ns"),
        Some(1_764_009_410_000_000_000)
    );
    assert_eq!(r.labels.len(), 5);
    assert_eq!(r.value("cpu-time"), 1_234);
    assert_eq!(r.value("cpu-samples"), 1);
    assert_eq!(r.value("wall-time"), 10_000_000);
    assert_eq!(r.value("wall-samples"), 1);
    assert_eq!(r.values.iter().filter(|(_, v)| *v != 0).count(), 4);

    let r = &s.rows[1];
    assert_eq!(
        r.frames,
        vec![("allocate".into(), "/app/alloc.py".into(), 3)]
    );
    assert_eq!(r.str_label("allocator domain"), Some("obj"));
    assert_eq!(r.str_label("thread name"), Some("7"));
    assert_eq!(r.num_label("end_timestamp_ns"), None);
    assert_eq!(r.value("alloc-space"), 1 << 20);
    assert_eq!(r.value("alloc-samples"), 138_486);

    // Location shape: one line each, address 0 for Python, 1 for <native>,
    // no mapping; functions have no system name / start line.
    for loc in &p.location {
        assert_eq!(loc.line.len(), 1);
        assert_eq!(loc.mapping_id, 0);
        let f = &p.function[(loc.line[0].function_id - 1) as usize];
        let file = &p.string_table[f.filename as usize];
        assert_eq!(loc.address, u64::from(file == "<native>"));
        assert_eq!(f.system_name, 0);
        assert_eq!(f.start_line, 0);
    }
    // Every sample has 19 values.
    assert!(p.sample.iter().all(|x| x.value.len() == 19));
    // JSON view is consistent.
    let j = s.to_json();
    assert_eq!(j["samples"][0]["frames"][1][0], "Worker.run");
    assert_eq!(j["samples"][0]["labels"]["thread name"], "MainThread");
    assert_eq!(j["totals"]["alloc-samples"], 138_486);
    assert_eq!(j["period_type"], "cpu-time/nanoseconds");
}

#[test]
fn untimestamped_samples_aggregate() {
    let mut b = ProfileBuilder::new(t0());
    let stack = [fr("f", "/a.py", 1), fr("g", "/a.py", 10)];
    let labels = [Label::num("thread id", 1), Label::str("thread name", "T1")];
    for _ in 0..10 {
        b.add_sample(
            &stack,
            &[(SampleType::WallTime, 100), (SampleType::WallSamples, 1)],
            &labels,
            None,
        );
    }
    // New types on an existing sample (CPU appears later), duplicates summed.
    b.add_sample(
        &stack,
        &[
            (SampleType::CpuTime, 5),
            (SampleType::CpuTime, 6),
            (SampleType::WallSamples, 1),
        ],
        &labels,
        None,
    );
    // Zero values are the same as absent ones.
    b.add_sample(&stack, &[(SampleType::GpuTime, 0)], &labels, None);
    assert_eq!(b.sample_count(), 1);
    // Different labels, different line, different order of frames: separate.
    b.add_sample(
        &stack,
        &[(SampleType::WallSamples, 1)],
        &[Label::num("thread id", 2), Label::str("thread name", "T1")],
        None,
    );
    b.add_sample(
        &[fr("f", "/a.py", 2), fr("g", "/a.py", 10)],
        &[(SampleType::WallSamples, 1)],
        &labels,
        None,
    );
    b.add_sample(
        &[fr("g", "/a.py", 10), fr("f", "/a.py", 1)],
        &[(SampleType::WallSamples, 1)],
        &labels,
        None,
    );
    // Same function name, other file: separate.
    b.add_sample(
        &[fr("f", "/b.py", 1), fr("g", "/a.py", 10)],
        &[(SampleType::WallSamples, 1)],
        &labels,
        None,
    );
    assert_eq!(b.sample_count(), 5);
    let (p, s) = roundtrip(b, t0() + Duration::from_secs(1));
    let r = &s.rows[0];
    assert_eq!(r.value("wall-time"), 1000);
    assert_eq!(r.value("wall-samples"), 11);
    assert_eq!(r.value("cpu-time"), 11);
    assert_eq!(r.value("gpu-time"), 0);
    assert_eq!(s.total("wall-samples"), 15);
    // Locations and functions are shared.
    assert_eq!(p.location.len(), 4); // f:1, g:10, f:2, f(/b.py):1
    assert_eq!(p.function.len(), 3); // f /a.py, g /a.py, f /b.py
                                     // Strings are unique.
    let mut seen = std::collections::HashSet::new();
    assert!(p.string_table.iter().all(|x| seen.insert(x)));
}

#[test]
fn timestamped_samples_stay_separate() {
    let mut b = ProfileBuilder::new(t0());
    let stack = [fr("f", "/a.py", 1)];
    let labels = [Label::num("thread id", 1)];
    for i in 0..5 {
        b.add_sample(
            &stack,
            &[(SampleType::WallTime, 100), (SampleType::WallSamples, 1)],
            &labels,
            Some(1_000 + i),
        );
    }
    // An untimestamped one with the same stack/labels doesn't merge into them.
    b.add_sample(&stack, &[(SampleType::WallSamples, 1)], &labels, None);
    b.add_sample(&stack, &[(SampleType::WallSamples, 1)], &labels, None);
    assert_eq!(b.sample_count(), 6);
    let (p, s) = roundtrip(b, t0() + Duration::from_secs(1));
    let ts: Vec<Option<i64>> = s
        .rows
        .iter()
        .map(|r| r.num_label("end_timestamp_ns"))
        .collect();
    assert_eq!(
        ts,
        vec![
            Some(1000),
            Some(1001),
            Some(1002),
            Some(1003),
            Some(1004),
            None
        ]
    );
    assert_eq!(s.rows[5].value("wall-samples"), 2);
    assert_eq!(p.location.len(), 1);
    // The end_timestamp_ns key is interned once.
    assert_eq!(
        p.string_table
            .iter()
            .filter(|x| *x == "end_timestamp_ns")
            .count(),
        1
    );
}

#[test]
fn stacks_interned_ahead_give_the_same_profile() {
    let stacks = [
        vec![fr("f", "/a.py", 1), fr("g", "/a.py", 10)],
        vec![fr("f", "/a.py", 2), fr("g", "/a.py", 10)],
        vec![],
    ];
    let labels = [
        vec![Label::num("thread id", 1), Label::str("thread name", "T1")],
        vec![Label::num("thread id", 2), Label::str("thread name", "T2")],
        vec![
            Label::str("thread id", "1"),
            Label::str("thread name", "T1"),
        ],
        vec![Label::num("thread id", 1)],
    ];
    let mut by_frames = ProfileBuilder::new(t0());
    let mut by_id = ProfileBuilder::new(t0());
    let ids: Vec<StackId> = stacks.iter().map(|s| by_id.intern_stack(s)).collect();
    assert_eq!(ids[0], by_id.intern_stack(&stacks[0]));
    for i in 0..40usize {
        let (s, l) = (i % stacks.len(), (i / 3) % labels.len());
        let ts = (i % 4 == 0).then_some(1_000 + i as i64);
        let v = [(SampleType::WallSamples, 1 + i as i64)];
        by_frames.add_sample(&stacks[s], &v, &labels[l], ts);
        by_id.add_sample_with_stack(ids[s], &v, &labels[l], ts);
    }
    // An id from another (bigger) builder is ignored.
    let mut other = ProfileBuilder::new(t0());
    for i in 0..10 {
        other.intern_stack(&[fr("h", "/b.py", i)]);
    }
    let foreign = other.intern_stack(&[fr("h", "/b.py", 99)]);
    by_id.add_sample_with_stack(foreign, &[(SampleType::WallSamples, 1)], &labels[0], None);
    assert_eq!(by_frames.sample_count(), by_id.sample_count());
    let end = t0() + Duration::from_secs(1);
    assert_eq!(by_frames.encode(end), by_id.clone().encode(end));
    let (_, s) = roundtrip(by_id, end);
    // Labels that differ only in kind (num 1 / str "1") stay apart.
    assert_eq!(s.total("wall-samples"), (1..=40).sum::<i64>());
    assert!(s.rows.iter().any(|r| r.num_label("thread id") == Some(1)));
    assert!(s.rows.iter().any(|r| r.str_label("thread id") == Some("1")));
}

#[test]
fn remembered_label_sets_follow_a_renamed_string() {
    let mut b = ProfileBuilder::new(t0());
    let stack = [fr("f", "/a.py", 1)];
    let placeholder = [
        Label::num("thread id", 7),
        Label::str("thread name", "Thread-7"),
    ];
    b.add_sample(&stack, &[(SampleType::WallSamples, 1)], &placeholder, None);
    assert!(b.replace_string("Thread-7", "worker"));
    // The placeholder text is new again; the real name is the renamed set.
    b.add_sample(&stack, &[(SampleType::WallSamples, 2)], &placeholder, None);
    let named = [
        Label::num("thread id", 7),
        Label::str("thread name", "worker"),
    ];
    b.add_sample(&stack, &[(SampleType::WallSamples, 4)], &named, None);
    let (_, s) = roundtrip(b, t0() + Duration::from_secs(1));
    let by_name = |n: &str| -> i64 {
        s.rows
            .iter()
            .filter(|r| r.str_label("thread name") == Some(n))
            .map(|r| r.value("wall-samples"))
            .sum()
    };
    assert_eq!(by_name("worker"), 5);
    assert_eq!(by_name("Thread-7"), 2);
}

#[test]
fn omitted_frames_marker() {
    assert_eq!(omitted_frames_name(1), "<1 frame omitted>");
    assert_eq!(omitted_frames_name(39), "<39 frames omitted>");
    let name = omitted_frames_name(3);
    let mut b = ProfileBuilder::new(t0());
    b.add_sample(
        &[fr("leaf", "/a.py", 1), fr(&name, "", 0)],
        &[(SampleType::CpuSamples, 1)],
        &[],
        None,
    );
    let (_, s) = roundtrip(b, t0());
    assert_eq!(
        s.rows[0].frames[1],
        ("<3 frames omitted>".into(), String::new(), 0)
    );
    assert!(s.rows[0].labels.is_empty());
}

#[test]
fn extreme_values_do_not_panic() {
    let mut b = ProfileBuilder::new(UNIX_EPOCH - Duration::from_secs(10));
    let stack = [fr("", "", i64::MIN), fr("x", "", i64::MAX)];
    b.add_sample(&stack, &[(SampleType::CpuTime, i64::MAX)], &[], None);
    b.add_sample(&stack, &[(SampleType::CpuTime, i64::MAX)], &[], None);
    b.add_sample(
        &stack,
        &[(SampleType::CpuTime, -5)],
        &[Label::str("", "")],
        None,
    );
    b.add_sample(&[], &[], &[], Some(i64::MIN));
    let (p, s) = roundtrip(b, UNIX_EPOCH);
    assert_eq!(p.time_nanos, -10_000_000_000);
    assert_eq!(s.rows[0].value("cpu-time"), i64::MAX);
    assert_eq!(s.rows.len(), 3);
    assert_eq!(s.rows[1].value("cpu-time"), -5);
    assert!(s.rows[2].frames.is_empty());
    assert_eq!(s.rows[2].num_label("end_timestamp_ns"), Some(i64::MIN));
}

/// xorshift64*: deterministic randomness for the property test.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Key = (Vec<(String, String, i64)>, Vec<(String, OwnedLabelValue)>);

/// Property: for random stacks/labels/values, the decoded profile holds
/// exactly what a naive model (a map keyed by stack + labels for untimestamped
/// samples, a list for timestamped ones) holds.
#[test]
fn property_random_stacks_match_model() {
    for seed in 1..=40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let names: Vec<String> = (0..12).map(|i| format!("fn_{i}.<locals>.λ")).collect();
        let files: Vec<String> = (0..4).map(|i| format!("/src/mod{i}.py")).collect();
        let mut b = ProfileBuilder::new(t0());
        let mut agg: BTreeMap<Key, [i64; 19]> = BTreeMap::new();
        let mut agg_order: Vec<Key> = Vec::new();
        let mut timeline: Vec<(Key, [i64; 19], i64)> = Vec::new();
        let n = 1 + rng.below(300);
        for _ in 0..n {
            let depth = rng.below(40) as usize;
            let frames_owned: Vec<(String, String, i64)> = (0..depth)
                .map(|_| {
                    (
                        names[rng.below(12) as usize].clone(),
                        files[rng.below(4) as usize].clone(),
                        rng.below(5) as i64,
                    )
                })
                .collect();
            let frames: Vec<Frame<'_>> =
                frames_owned.iter().map(|(n, f, l)| fr(n, f, *l)).collect();
            let tid = rng.below(3) as i64;
            let tname = format!("T{}", rng.below(2));
            let labels = [
                Label::num("thread id", tid),
                Label::str("thread name", &tname),
            ];
            let label_key = vec![
                ("thread id".to_owned(), OwnedLabelValue::Num(tid)),
                (
                    "thread name".to_owned(),
                    OwnedLabelValue::Str(tname.clone()),
                ),
            ];
            let mut values = Vec::new();
            let mut dense = [0i64; 19];
            for _ in 0..rng.below(5) {
                let t = SampleType::ALL[rng.below(19) as usize];
                let v = rng.below(1000) as i64 - 100;
                values.push((t, v));
                dense[t.index()] += v;
            }
            let key = (frames_owned.clone(), label_key);
            if rng.below(3) == 0 {
                let ts = rng.next() as i64;
                b.add_sample(&frames, &values, &labels, Some(ts));
                timeline.push((key, dense, ts));
            } else {
                b.add_sample(&frames, &values, &labels, None);
                let e = agg.entry(key.clone()).or_insert_with(|| {
                    agg_order.push(key);
                    [0; 19]
                });
                for (a, d) in e.iter_mut().zip(dense) {
                    *a += d;
                }
            }
        }
        assert_eq!(b.sample_count(), agg.len() + timeline.len(), "seed {seed}");
        let (p, s) = roundtrip(b, t0() + Duration::from_secs(60));

        let mut got_agg: BTreeMap<Key, [i64; 19]> = BTreeMap::new();
        let mut got_timeline = Vec::new();
        for r in &s.rows {
            let mut labels: Vec<(String, OwnedLabelValue)> = r
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let ts = labels
                .iter()
                .position(|(k, _)| k == "end_timestamp_ns")
                .map(|i| labels.remove(i).1);
            let mut vals = [0i64; 19];
            for (i, (_, v)) in r.values.iter().enumerate() {
                vals[i] = *v;
            }
            let key = (r.frames.clone(), labels);
            match ts {
                Some(OwnedLabelValue::Num(ts)) => got_timeline.push((key, vals, ts)),
                Some(OwnedLabelValue::Str(_)) => panic!("string timestamp"),
                None => assert!(got_agg.insert(key, vals).is_none(), "duplicate aggregate"),
            }
        }
        // Timeline samples are emitted in insertion order.
        assert_eq!(got_timeline, timeline, "seed {seed}");
        assert_eq!(got_agg, agg, "seed {seed}");
        // No duplicated strings, functions or locations.
        let mut strs = std::collections::HashSet::new();
        assert!(p.string_table.iter().all(|x| strs.insert(x)), "seed {seed}");
        let mut funcs = std::collections::HashSet::new();
        assert!(p
            .function
            .iter()
            .all(|f| funcs.insert((f.name, f.filename))));
        let mut locs = std::collections::HashSet::new();
        assert!(p.location.iter().all(|l| locs.insert(l.line[0])));
        assert!(p.location.len() <= 12 * 4 * 5);
    }
}
