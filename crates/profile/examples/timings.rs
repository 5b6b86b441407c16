//! Prints timings of the hot paths (run with `--release`):
//! `cargo run --release -p emberscope-profile --example timings`.
//!
//! A criterion-free micro check; criterion benches come later.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use emberscope_profile::{decode, encode, gzip, zstd, Frame, Label, ProfileBuilder, SampleType};

const DEPTH: usize = 30;

fn names(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("Module{}.Class{}.method_{i}", i % 7, i % 13),
                format!(
                    "/usr/lib/python3.11/site-packages/pkg{}/module_{}.py",
                    i % 5,
                    i % 17
                ),
            )
        })
        .collect()
}

fn per_call(label: &str, iters: u32, d: Duration) {
    println!(
        "{label:<58} {:>8.0} ns/call ({iters} calls)",
        d.as_nanos() as f64 / f64::from(iters)
    );
}

fn main() {
    let pool = names(200);
    let stack: Vec<Frame<'_>> = (0..DEPTH)
        .map(|i| Frame {
            name: &pool[i].0,
            filename: &pool[i].1,
            line: 10 + i as i64,
        })
        .collect();
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

    // 1. Seen 30-frame stack, aggregated.
    let mut b = ProfileBuilder::new(SystemTime::now());
    b.add_sample(&stack, &values, &labels, None);
    let iters = 200_000;
    let t = Instant::now();
    for _ in 0..iters {
        b.add_sample(black_box(&stack), &values, &labels, None);
    }
    per_call(
        "add_sample, seen 30-frame stack, aggregated",
        iters,
        t.elapsed(),
    );

    // 2. Seen stack, timeline (one pprof sample per call).
    let mut b = ProfileBuilder::new(SystemTime::now());
    b.add_sample(&stack, &values, &labels, None);
    let iters = 100_000;
    let t = Instant::now();
    for i in 0..iters {
        b.add_sample(black_box(&stack), &values, &labels, Some(i64::from(i)));
    }
    per_call(
        "add_sample, seen 30-frame stack, timeline",
        iters,
        t.elapsed(),
    );
    let t = Instant::now();
    let p = b.build(SystemTime::now());
    let build = t.elapsed();
    let t = Instant::now();
    let raw = encode(&p);
    let enc = t.elapsed();
    println!(
        "  100k timeline samples: build {:.1} ms, encode {:.1} ms, {} KiB raw",
        build.as_secs_f64() * 1e3,
        enc.as_secs_f64() * 1e3,
        raw.len() / 1024
    );

    // 3. First sight of a 30-frame stack (all new frames) — worst case.
    let fresh = names(30 * 2000);
    let mut b = ProfileBuilder::new(SystemTime::now());
    let t = Instant::now();
    for k in 0..2000 {
        let s: Vec<Frame<'_>> = (0..DEPTH)
            .map(|i| Frame {
                name: &fresh[k * DEPTH + i].0,
                filename: &fresh[k * DEPTH + i].1,
                line: i as i64,
            })
            .collect();
        b.add_sample(&s, &values, &labels, None);
    }
    per_call(
        "add_sample, 30 never-seen frames (worst case)",
        2000,
        t.elapsed(),
    );

    // 4. 10 000 distinct 30-frame stacks over 200 functions.
    let mut b = ProfileBuilder::new(SystemTime::now());
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut stacks = Vec::new();
    for _ in 0..10_000 {
        let s: Vec<(usize, i64)> = (0..DEPTH)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                ((x % 200) as usize, (x >> 40) as i64 % 50)
            })
            .collect();
        stacks.push(s);
    }
    let t = Instant::now();
    for s in &stacks {
        let frames: Vec<Frame<'_>> = s
            .iter()
            .map(|&(f, line)| Frame {
                name: &pool[f].0,
                filename: &pool[f].1,
                line,
            })
            .collect();
        b.add_sample(&frames, &values, &labels, None);
    }
    let add = t.elapsed();
    let n = b.sample_count();
    let locs = b.location_count();
    let t = Instant::now();
    let p = b.build(SystemTime::now());
    let build = t.elapsed();
    let t = Instant::now();
    let raw = encode(&p);
    let enc = t.elapsed();
    let t = Instant::now();
    let gz = gzip(&raw).unwrap_or_default();
    let gzt = t.elapsed();
    let t = Instant::now();
    let zs = zstd(&raw).unwrap_or_default();
    let zst = t.elapsed();
    let t = Instant::now();
    let back = decode(&gz).map(|p| p.sample.len()).unwrap_or(0);
    let dect = t.elapsed();
    println!(
        "10k distinct 30-frame stacks ({n} samples, {locs} locations):\n  \
         add {:.1} ms, build {:.1} ms, encode {:.1} ms (build+encode {:.1} ms), \
         gzip {:.1} ms, zstd {:.1} ms, decode(gzip) {:.1} ms [{back} samples]\n  \
         sizes: raw {} KiB, gzip {} KiB, zstd {} KiB",
        add.as_secs_f64() * 1e3,
        build.as_secs_f64() * 1e3,
        enc.as_secs_f64() * 1e3,
        (build + enc).as_secs_f64() * 1e3,
        gzt.as_secs_f64() * 1e3,
        zst.as_secs_f64() * 1e3,
        dect.as_secs_f64() * 1e3,
        raw.len() / 1024,
        gz.len() / 1024,
        zs.len() / 1024,
    );
}
