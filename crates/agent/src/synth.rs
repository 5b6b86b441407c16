//! Synthetic ddtrace-shaped uploads, for tests, benchmarks and demos.

use std::collections::HashMap;

use prost::Message;

use crate::pprof::{Function, Label, Line, Location, Profile, Sample, ValueType};

/// The 19 sample types ddtrace 4.x always declares, in its order.
pub const DDTRACE_TYPES: &[(&str, &str)] = &[
    ("cpu-time", "nanoseconds"),
    ("cpu-samples", "count"),
    ("wall-time", "nanoseconds"),
    ("wall-samples", "count"),
    ("exception-samples", "count"),
    ("lock-acquire-wait", "nanoseconds"),
    ("lock-acquire", "count"),
    ("lock-release-hold", "nanoseconds"),
    ("lock-release", "count"),
    ("alloc-space", "bytes"),
    ("alloc-samples", "count"),
    ("heap-space", "bytes"),
    ("heap-live-samples", "count"),
    ("gpu-time", "nanoseconds"),
    ("gpu-samples", "count"),
    ("gpu-space", "bytes"),
    ("gpu-alloc-samples", "count"),
    ("gpu-flops", "count"),
    ("gpu-flops-samples", "count"),
];

#[derive(Default)]
struct Builder {
    p: Profile,
    strings: HashMap<String, i64>,
    funcs: HashMap<(String, String), u64>,
    locs: HashMap<(u64, i64), u64>,
}

impl Builder {
    fn s(&mut self, v: &str) -> i64 {
        if self.p.string_table.is_empty() {
            self.p.string_table.push(String::new());
            self.strings.insert(String::new(), 0);
        }
        if let Some(i) = self.strings.get(v) {
            return *i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(v.to_string());
        self.strings.insert(v.to_string(), i);
        i
    }

    fn loc(&mut self, name: &str, file: &str, line: i64) -> u64 {
        let key = (name.to_string(), file.to_string());
        let fid = match self.funcs.get(&key) {
            Some(f) => *f,
            None => {
                let id = self.p.function.len() as u64 + 1;
                let n = self.s(name);
                let f = self.s(file);
                self.p.function.push(Function {
                    id,
                    name: n,
                    system_name: 0,
                    filename: f,
                    start_line: 0,
                });
                self.funcs.insert(key, id);
                id
            }
        };
        if let Some(l) = self.locs.get(&(fid, line)) {
            return *l;
        }
        let id = self.p.location.len() as u64 + 1;
        self.p.location.push(Location {
            id,
            mapping_id: 0,
            address: 0,
            line: vec![Line {
                function_id: fid,
                line,
                column: 0,
            }],
            is_folded: false,
        });
        self.locs.insert((fid, line), id);
        id
    }
}

/// A tiny deterministic PRNG (xorshift64*), so tests need no extra crates.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Options for [`profile`].
#[derive(Debug, Clone)]
pub struct SynthOptions {
    pub seed: u64,
    /// Number of pprof samples (timeline on: one per event).
    pub samples: usize,
    pub threads: usize,
    pub start_ns: i64,
    pub duration_ns: i64,
    /// Weight multiplier for the `slow_path` hot spot (to make diffs visible).
    pub slow_weight: u64,
    /// Number of distinct synthetic call paths.
    pub paths: usize,
}

impl Default for SynthOptions {
    fn default() -> Self {
        SynthOptions {
            seed: 1,
            samples: 2000,
            threads: 4,
            start_ns: 1_700_000_000_000_000_000,
            duration_ns: 60_000_000_000,
            slow_weight: 1,
            paths: 40,
        }
    }
}

/// (function, file, line)
type SynthFrame = (String, String, i64);

/// A ddtrace-shaped pprof: a web app with a few hot paths, threads, allocations.
pub fn profile(o: &SynthOptions) -> Profile {
    let mut b = Builder::default();
    let mut rng = Rng::new(o.seed);
    let types: Vec<ValueType> = DDTRACE_TYPES
        .iter()
        .map(|(t, u)| ValueType {
            r#type: b.s(t),
            unit: b.s(u),
        })
        .collect();
    b.p.sample_type = types;
    b.p.period_type = b.p.sample_type.first().copied();
    b.p.period = 1;
    b.p.time_nanos = o.start_ns;
    b.p.duration_nanos = o.duration_ns;
    let k_tid = b.s("thread id");
    let k_tname = b.s("thread name");
    let k_end = b.s("end_timestamp_ns");
    let app = "/srv/app/app.py";
    let lib = "/venv/lib/python3.11/site-packages/requests/sessions.py";
    let std_ = "/usr/lib/python3.11/json/encoder.py";
    let thr = "/usr/lib/python3.11/threading.py";
    // Call paths: (frames root first, weight).
    let mut paths: Vec<(Vec<SynthFrame>, u64)> = vec![
        (
            vec![
                ("<module>".into(), app.into(), 90),
                ("main".into(), app.into(), 80),
                ("handle_request".into(), app.into(), 40),
                ("render_json".into(), app.into(), 22),
                ("JSONEncoder.encode".into(), std_.into(), 200),
                ("JSONEncoder.iterencode".into(), std_.into(), 258),
            ],
            30,
        ),
        (
            vec![
                ("<module>".into(), app.into(), 90),
                ("main".into(), app.into(), 80),
                ("handle_request".into(), app.into(), 41),
                ("slow_path".into(), app.into(), 12),
                ("compute_primes".into(), app.into(), 5),
            ],
            25 * o.slow_weight,
        ),
        (
            vec![
                ("Thread._bootstrap".into(), thr.into(), 995),
                ("Thread.run".into(), thr.into(), 975),
                ("worker_loop".into(), app.into(), 60),
                ("Session.request".into(), lib.into(), 589),
                ("Session.send".into(), lib.into(), 703),
            ],
            20,
        ),
        (
            vec![
                ("Thread._bootstrap".into(), thr.into(), 995),
                ("Thread.run".into(), thr.into(), 975),
                ("worker_loop".into(), app.into(), 62),
                ("allocate_buffers".into(), app.into(), 30),
            ],
            15,
        ),
    ];
    for i in 0..o.paths {
        paths.push((
            vec![
                ("<module>".into(), app.into(), 90),
                ("main".into(), app.into(), 80),
                (format!("handler_{}", i % 13), app.into(), 100 + i as i64),
                (format!("helper_{i}"), app.into(), 200 + i as i64),
            ],
            1 + (i as u64 % 3),
        ));
    }
    let wsum: u64 = paths.iter().map(|p| p.1).sum();
    let path_locs: Vec<Vec<u64>> = paths
        .iter()
        .map(|(frames, _)| {
            frames
                .iter()
                .rev()
                .map(|(n, f, l)| b.loc(n, f, *l))
                .collect()
        })
        .collect();
    let tick = o.duration_ns / (o.samples.max(1) as i64).max(1) * o.threads.max(1) as i64;
    for i in 0..o.samples {
        let mut r = rng.below(wsum);
        let mut idx = 0;
        for (j, p) in paths.iter().enumerate() {
            if r < p.1 {
                idx = j;
                break;
            }
            r -= p.1;
        }
        let thread = (i % o.threads.max(1)) as i64;
        let mut value = vec![0i64; DDTRACE_TYPES.len()];
        let wall = tick.max(1);
        value[2] = wall;
        value[3] = 1;
        if idx != 2 {
            value[0] = wall * (60 + rng.below(40) as i64) / 100;
            value[1] = 1;
        }
        if idx == 3 {
            value[9] = 1_048_576;
            value[10] = 1 + rng.below(100) as i64;
        }
        let tname = if thread == 0 {
            "MainThread".to_string()
        } else {
            format!("worker-{thread}")
        };
        let tname_i = b.s(&tname);
        let end = o.start_ns + (i as i64 * o.duration_ns) / o.samples.max(1) as i64;
        b.p.sample.push(Sample {
            location_id: path_locs.get(idx).cloned().unwrap_or_default(),
            value,
            label: vec![
                Label {
                    key: k_tid,
                    num: 140_000 + thread,
                    ..Default::default()
                },
                Label {
                    key: k_tname,
                    str: tname_i,
                    ..Default::default()
                },
                Label {
                    key: k_end,
                    num: end,
                    ..Default::default()
                },
            ],
        });
    }
    b.p
}

/// zstd-compressed encoded pprof (what ddtrace sends).
pub fn profile_zstd(o: &SynthOptions) -> Vec<u8> {
    let raw = profile(o).encode_to_vec();
    zstd::encode_all(raw.as_slice(), 1).unwrap_or_default()
}

/// An event.json like ddtrace 4.16's.
pub fn event_json(service: &str, env: &str, version: &str, start_ns: i64, end_ns: i64) -> String {
    serde_json::json!({
        "attachments": ["code-provenance.json", "profile.pprof"],
        "tags_profiler": format!(
            "env:{env},service:{service},version:{version},language:python,runtime:CPython,\
             runtime-id:0123456789abcdef0123456789abcdef,runtime_version:3.11.7,\
             profiler_version:4.16.0,process_id:4242,host:synth-host"
        ),
        "start": crate::timeparse::format_rfc3339_nanos(start_ns),
        "end": crate::timeparse::format_rfc3339_nanos(end_ns),
        "family": "python",
        "version": "4",
        "endpoint_counts": {"GET /users/{id}": 10},
    })
    .to_string()
}

/// A code-provenance.json matching the synthetic paths.
pub fn provenance_json() -> String {
    serde_json::json!({"v1": [
        {"kind": "standard library", "name": "stdlib", "version": "3.11.7", "paths": ["/usr/lib/python3.11"]},
        {"kind": "library", "name": "requests", "version": "2.32.0", "paths": ["/venv/lib/python3.11/site-packages/requests"]},
    ]})
    .to_string()
}

/// A complete multipart body (boundary, bytes) in ddtrace's layout.
pub fn multipart(event: &str, provenance: Option<&[u8]>, pprof: &[u8]) -> (String, Vec<u8>) {
    let boundary =
        "dfee302bc60b9a37-729723bd7d6bb1b3-3cb1ecdcac2132b3-3f870eccc497fa2b".to_string();
    let mut body = Vec::new();
    let mut part = |name: &str, filename: &str, ct: Option<&str>, data: &[u8]| {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(
            format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\n")
                .as_bytes(),
        );
        if let Some(ct) = ct {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    };
    part(
        "event",
        "event.json",
        Some("application/json"),
        event.as_bytes(),
    );
    if let Some(p) = provenance {
        part("code-provenance.json", "code-provenance.json", None, p);
    }
    part("profile.pprof", "profile.pprof", None, pprof);
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (boundary, body)
}
