//! Load generator / demo seeder: posts synthetic ddtrace-shaped uploads.
//!
//! cargo run --release -p emberscope-agent --example loadgen -- \
//!     --addr 127.0.0.1:8126 --uploads 2000 --concurrency 4 --samples 8000
//!
//! Prints uploads/s. With `--spread-minutes N` the uploads are spread over the
//! last N minutes (one per process per minute), as a real fleet would send.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use emberscope_agent::synth;

struct Opts {
    addr: SocketAddr,
    uploads: usize,
    concurrency: usize,
    samples: usize,
    processes: usize,
    services: usize,
    spread_minutes: i64,
    paths: usize,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        addr: "127.0.0.1:8126".parse().map_err(|e| format!("{e}"))?,
        uploads: 200,
        concurrency: 4,
        samples: 8000,
        processes: 50,
        services: 2,
        spread_minutes: 0,
        paths: 40,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let v = args.get(i + 1).cloned().unwrap_or_default();
        let num = || v.parse::<usize>().map_err(|e| format!("{}: {e}", args[i]));
        match args[i].as_str() {
            "--addr" => o.addr = v.parse().map_err(|e| format!("--addr: {e}"))?,
            "--uploads" => o.uploads = num()?,
            "--concurrency" => o.concurrency = num()?.max(1),
            "--samples" => o.samples = num()?,
            "--processes" => o.processes = num()?.max(1),
            "--services" => o.services = num()?.max(1),
            "--spread-minutes" => o.spread_minutes = num()? as i64,
            "--paths" => o.paths = num()?,
            other => return Err(format!("unknown flag {other}")),
        }
        i += 2;
    }
    Ok(o)
}

fn post(addr: SocketAddr, boundary: &str, body: &[u8]) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(addr)?;
    let head = format!(
        "POST /profiling/v1/input HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out);
    Ok(text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0))
}

fn main() {
    let o = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let now = emberscope_agent::timeparse::now_ns();
    // Pre-build a pool of distinct bodies so that generation is not measured.
    let pool: Vec<(String, Vec<u8>)> = (0..o.uploads.min(64))
        .map(|i| {
            let svc = format!("demo-service-{}", i % o.services);
            let version = if i % 2 == 0 { "1.0" } else { "1.1" };
            let start = now - 60_000_000_000;
            let opts = synth::SynthOptions {
                seed: i as u64 + 1,
                samples: o.samples,
                start_ns: start,
                slow_weight: if version == "1.1" { 4 } else { 1 },
                paths: o.paths,
                ..Default::default()
            };
            let pprof = synth::profile_zstd(&opts);
            let ev = synth::event_json(&svc, "demo", version, start, start + 60_000_000_000);
            let prov = synth::provenance_json();
            synth::multipart(&ev, Some(prov.as_bytes()), &pprof)
        })
        .collect();
    let avg = pool.iter().map(|p| p.1.len()).sum::<usize>() / pool.len().max(1);
    eprintln!(
        "body size ~{avg} bytes, {} uploads, concurrency {}",
        o.uploads, o.concurrency
    );
    let pool = Arc::new(pool);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let spread = o.spread_minutes;
    let procs = o.processes;
    let total = o.uploads;
    let addr = o.addr;
    let threads: Vec<_> = (0..o.concurrency)
        .map(|_| {
            let (pool, next, failed) = (pool.clone(), next.clone(), failed.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                let (b, body) = &pool[i % pool.len()];
                let body = if spread > 0 {
                    // Rewrite start/end: upload i is process i%procs, minute i/procs.
                    let minute = (i / procs) as i64 % spread;
                    let start = now - (minute + 1) * 60_000_000_000;
                    let s_old =
                        emberscope_agent::timeparse::format_rfc3339_nanos(now - 60_000_000_000);
                    let e_old = emberscope_agent::timeparse::format_rfc3339_nanos(now);
                    let s_new = emberscope_agent::timeparse::format_rfc3339_nanos(start);
                    let e_new =
                        emberscope_agent::timeparse::format_rfc3339_nanos(start + 60_000_000_000);
                    replace(body, &s_old, &s_new, &e_old, &e_new)
                } else {
                    body.clone()
                };
                match post(addr, b, &body) {
                    Ok(200) => {}
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} uploads in {:.2} s = {:.1} uploads/s ({} failed)",
        total,
        secs,
        total as f64 / secs,
        failed.load(Ordering::Relaxed)
    );
}

fn replace(body: &[u8], a: &str, a2: &str, b: &str, b2: &str) -> Vec<u8> {
    // The event part is plain JSON at the start of the body; timestamps have equal length.
    let mut out = body.to_vec();
    for (from, to) in [(a, a2), (b, b2)] {
        if from.len() != to.len() {
            continue;
        }
        if let Some(pos) = out.windows(from.len()).position(|w| w == from.as_bytes()) {
            out[pos..pos + from.len()].copy_from_slice(to.as_bytes());
        }
    }
    out
}
