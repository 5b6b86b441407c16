//! Building and encoding a profile of 10 000 distinct 30-frame stacks (over
//! 200 functions), the size of a busy 60-s period: `add_sample` for every
//! stack, then `build` + `encode` or the direct `ProfileBuilder::encode` (+ gzip
//! as the file exporter writes it, + zstd as the uploader sends it). Run with
//! `cargo bench -p emberscope-profile`.

use std::hint::black_box;
use std::time::SystemTime;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use emberscope_profile::{encode, gzip, zstd, Frame, Label, ProfileBuilder, SampleType};

const DEPTH: usize = 30;
const STACKS: usize = 10_000;

fn names(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("Module{}.Class{}.method_{i}", i % 7, i % 13),
                format!("/srv/app/pkg{}/module_{}.py", i % 5, i % 17),
            )
        })
        .collect()
}

/// 10 000 distinct stacks as (function index, line) pairs (xorshift, fixed seed).
fn stacks() -> Vec<Vec<(usize, i64)>> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    (0..STACKS)
        .map(|_| {
            (0..DEPTH)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ((x % 200) as usize, (x >> 40) as i64 % 50)
                })
                .collect()
        })
        .collect()
}

fn fill(pool: &[(String, String)], stacks: &[Vec<(usize, i64)>]) -> ProfileBuilder {
    let labels = [
        Label::num("thread id", 140_234_567_890),
        Label::num("thread native id", 12345),
        Label::str("thread name", "MainThread"),
    ];
    let values = [
        (SampleType::CpuTime, 9_000_000),
        (SampleType::CpuSamples, 1),
        (SampleType::WallTime, 10_000_000),
        (SampleType::WallSamples, 1),
    ];
    let mut b = ProfileBuilder::new(SystemTime::now());
    let mut frames: Vec<Frame<'_>> = Vec::with_capacity(DEPTH);
    for s in stacks {
        frames.clear();
        frames.extend(s.iter().filter_map(|&(f, line)| {
            pool.get(f).map(|(name, filename)| Frame {
                name,
                filename,
                line,
            })
        }));
        b.add_sample(&frames, &values, &labels, None);
    }
    b
}

fn bench(c: &mut Criterion) {
    let pool = names(200);
    let stacks = stacks();
    let mut g = c.benchmark_group("profile/10k_distinct_stacks");
    g.sample_size(20);
    g.bench_function("add_samples", |b| {
        b.iter(|| black_box(fill(&pool, &stacks)))
    });
    g.bench_function("build_encode", |b| {
        b.iter_batched(
            || fill(&pool, &stacks),
            |builder| black_box(encode(&builder.build(SystemTime::now()))),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("encode_direct", |b| {
        b.iter_batched(
            || fill(&pool, &stacks),
            |builder| black_box(builder.encode(SystemTime::now())),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("add_build_encode_gzip", |b| {
        b.iter(|| {
            let raw = encode(&fill(&pool, &stacks).build(SystemTime::now()));
            black_box(gzip(&raw).map(|v| v.len()).unwrap_or(0))
        })
    });
    let raw = encode(&fill(&pool, &stacks).build(SystemTime::now()));
    g.bench_function("gzip_only", |b| {
        b.iter(|| black_box(gzip(black_box(&raw)).map(|v| v.len()).unwrap_or(0)))
    });
    g.bench_function("zstd_only", |b| {
        b.iter(|| black_box(zstd(black_box(&raw)).map(|v| v.len()).unwrap_or(0)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
