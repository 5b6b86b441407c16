//! Serialising one upload: `event.json`, zstd of the pprof (a 10 000-stack
//! profile built with emberscope-profile) and the multipart body, i.e. all the
//! uploader does before the bytes reach the socket. Run with
//! `cargo bench -p emberscope-exporter --bench upload`.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, Criterion};
use emberscope_exporter::event::{event_json, PPROF_ATTACHMENT};
use emberscope_exporter::multipart::profile_body;
use emberscope_exporter::EventMeta;
use emberscope_profile::{encode, zstd, Frame, Label, ProfileBuilder, SampleType};

fn raw_profile() -> Vec<u8> {
    let pool: Vec<(String, String)> = (0..200)
        .map(|i| {
            (
                format!("mod{}.func_{i}", i % 9),
                format!("/srv/app/m{}.py", i % 17),
            )
        })
        .collect();
    let labels = [
        Label::num("thread id", 1),
        Label::str("thread name", "MainThread"),
    ];
    let values = [
        (SampleType::CpuTime, 9_000_000),
        (SampleType::WallTime, 10_000_000),
    ];
    let mut b = ProfileBuilder::new(SystemTime::now());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..10_000 {
        let frames: Vec<Frame<'_>> = (0..30)
            .filter_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                pool.get((x % 200) as usize).map(|(name, filename)| Frame {
                    name,
                    filename,
                    line: (x >> 40) as i64 % 50,
                })
            })
            .collect();
        b.add_sample(&frames, &values, &labels, None);
    }
    encode(&b.build(SystemTime::now()))
}

fn meta() -> EventMeta {
    let mut m = EventMeta::new("0123456789abcdef0123456789abcdef", "3.11.7", "0.1.0", 4242);
    m.service = Some("my-web-app".into());
    m.env = Some("prod".into());
    m.version = Some("1.0.3".into());
    m.tags = vec![
        ("team".into(), "perf".into()),
        ("region".into(), "eu".into()),
    ];
    m.profiler_config = "stack_v2_lock_mem_heap_exp_dd_CAP1.0_MAXF64".into();
    m
}

fn bench(c: &mut Criterion) {
    let raw = raw_profile();
    let meta = meta();
    let provenance = zstd(br#"{"v1":[{"kind":"standard library","name":"stdlib","version":"3.11.7","paths":["/usr/lib/python3.11"]}]}"#)
        .unwrap_or_default();
    let mut g = c.benchmark_group("exporter/upload_10k_stacks");
    g.sample_size(20);
    g.bench_function("event_json", |b| {
        b.iter(|| {
            black_box(event_json(
                black_box(&meta),
                &["code-provenance.json", PPROF_ATTACHMENT],
            ))
        })
    });
    let pprof = zstd(&raw).unwrap_or_default();
    g.bench_function("multipart_body", |b| {
        b.iter(|| {
            let ev = event_json(&meta, &["code-provenance.json", PPROF_ATTACHMENT]);
            black_box(
                profile_body(ev.as_bytes(), Some(&provenance), black_box(&pprof))
                    .body
                    .len(),
            )
        })
    });
    g.bench_function("zstd_pprof_and_multipart", |b| {
        b.iter(|| {
            let z = zstd(black_box(&raw)).unwrap_or_default();
            let ev = event_json(&meta, &["code-provenance.json", PPROF_ATTACHMENT]);
            black_box(
                profile_body(ev.as_bytes(), Some(&provenance), &z)
                    .body
                    .len(),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
