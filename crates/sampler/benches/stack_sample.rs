//! One 30-frame stack sample, the parts that need no live interpreter.
//!
//! A real sample walks a thread's frame chain inside a running CPython; that
//! end-to-end cost (per stack, with the code cache warm) is measured by
//! `bench/core.py` ("capture cost per stack, 10 threads x 30 frames"). Here,
//! without an interpreter, criterion times the two pieces a 30-frame walk
//! repeats per frame:
//!
//! * `copy_30_frames`: 30 copies of a 72-byte `_PyInterpreterFrame`-sized
//!   block out of our own memory through [`MemoryReader`] (the
//!   `process_vm_readv` the sampler uses), one call per frame, and one
//!   vectored call for all 30;
//! * `line_30_frames`: 30 line-number lookups in a 3.11+ location table of
//!   400 entries (a long function), at the start, middle and end of the table
//!   (the decode the code cache memoises per `lasti`).
//!
//! Run with `cargo bench -p emberscope-sampler`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use emberscope_sampler::linetable::{line_for, LineFormat};
use emberscope_sampler::memory::MemoryReader;

const FRAMES: usize = 30;
const FRAME_BYTES: usize = 72;

/// A 3.11+ location table: `n` entries of the "one line" short forms
/// (codes 10-12: line delta 0..=2, one column byte), 2 code units each.
fn location_table(n: usize) -> Vec<u8> {
    let mut t = Vec::with_capacity(n * 2);
    for i in 0..n {
        let code = 10 + (i % 3) as u8;
        t.push(0x80 | (code << 3) | 1);
        t.push((i % 40) as u8);
    }
    t
}

fn copy_frames(c: &mut Criterion) {
    let Ok(reader) = MemoryReader::new() else {
        eprintln!("no memory reader on this machine: copy_30_frames skipped");
        return;
    };
    // 30 separate heap blocks, like frames scattered over the data stack.
    let blocks: Vec<Box<[u8; FRAME_BYTES]>> = (0..FRAMES)
        .map(|i| Box::new([i as u8; FRAME_BYTES]))
        .collect();
    let addrs: Vec<usize> = blocks.iter().map(|b| b.as_ptr() as usize).collect();
    let mut bufs = vec![[0u8; FRAME_BYTES]; FRAMES];
    c.bench_function("sampler/copy_30_frames/one_read_per_frame", |b| {
        b.iter(|| {
            for (addr, buf) in addrs.iter().zip(bufs.iter_mut()) {
                let _ = reader.read(black_box(*addr), buf);
            }
            black_box(&bufs);
        })
    });
    c.bench_function("sampler/copy_30_frames/one_vectored_read", |b| {
        b.iter(|| {
            let mut reqs: Vec<(usize, &mut [u8])> = addrs
                .iter()
                .zip(bufs.iter_mut())
                .map(|(a, buf)| (*a, &mut buf[..]))
                .collect();
            let _ = reader.read_many(black_box(&mut reqs));
        })
    });
    drop(blocks);
}

fn line_tables(c: &mut Criterion) {
    let table = location_table(400);
    let units = 400 * 2;
    for (name, at) in [("start", 4i64), ("middle", units / 2), ("end", units - 3)] {
        c.bench_function(&format!("sampler/line_30_frames/{name}"), |b| {
            b.iter(|| {
                let mut sum = 0i64;
                for k in 0..FRAMES as i64 {
                    let lasti = (at + k).min(units - 1);
                    sum += i64::from(
                        line_for(LineFormat::Locations, black_box(&table), 100, lasti).unwrap_or(0),
                    );
                }
                black_box(sum)
            })
        });
    }
}

criterion_group!(benches, copy_frames, line_tables);
criterion_main!(benches);
