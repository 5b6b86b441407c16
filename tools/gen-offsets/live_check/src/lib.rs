//! C ABI over emberscope-sampler for `check.py` (loaded with ctypes).
//! Test-only code: panics here are acceptable.
#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, CString};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use emberscope_sampler::{Sampler, ThreadStack};

static SAMPLER: Mutex<Option<Sampler>> = Mutex::new(None);
static OUT: Mutex<Option<CString>> = Mutex::new(None);
static STOP: AtomicBool = AtomicBool::new(false);
static STRESS: Mutex<Option<std::thread::JoinHandle<String>>> = Mutex::new(None);

fn ret(s: String) -> *const c_char {
    let c = CString::new(s.replace('\0', "?")).unwrap();
    let mut g = OUT.lock().unwrap();
    *g = Some(c);
    g.as_ref().unwrap().as_ptr()
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for ch in s.chars() {
        match ch {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => write!(o, "\\u{:04x}", c as u32).unwrap(),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn stack_json(t: &ThreadStack) -> String {
    let mut o = String::new();
    write!(
        o,
        "{{\"thread_id\":{},\"native_id\":{},\"omitted\":{},\"holds_gil\":{},\"frames\":[",
        t.thread_id,
        t.native_id.map(|v| v.to_string()).unwrap_or("null".into()),
        t.omitted,
        t.holds_gil
    )
    .unwrap();
    for (i, f) in t.frames.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        write!(
            o,
            "[{},{},{},{}]",
            esc(&f.func.name),
            esc(&f.func.filename),
            f.line,
            f.func.firstlineno
        )
        .unwrap();
    }
    o.push_str("]}");
    o
}

/// Call with the GIL held (ctypes.PyDLL). Returns "" or an error message.
#[no_mangle]
pub unsafe extern "C" fn ember_init(major: u32, minor: u32, micro: u32) -> *const c_char {
    let kind = match std::env::var("EMBER_READER").as_deref() {
        Ok("procmem") => Some(emberscope_sampler::memory::ReaderKind::ProcSelfMem),
        Ok("vm") => Some(emberscope_sampler::memory::ReaderKind::ProcessVmReadv),
        _ => None,
    };
    match Sampler::discover_with((major, minor, micro), kind) {
        Ok(s) => {
            let msg = format!(
                "{{\"ok\":true,\"reader\":{},\"debug_offsets_checked\":{},\"warnings\":[{}]}}",
                esc(s.reader_kind()),
                s.debug_offsets_checked(),
                s.warnings().iter().map(|w| esc(w)).collect::<Vec<_>>().join(",")
            );
            *SAMPLER.lock().unwrap() = Some(s);
            ret(msg)
        }
        Err(e) => ret(format!("{{\"ok\":false,\"error\":{}}}", esc(&e.to_string()))),
    }
}

#[no_mangle]
pub extern "C" fn ember_probe(max_frames: u32) -> *const c_char {
    let mut g = SAMPLER.lock().unwrap();
    let s = g.as_mut().unwrap();
    let mut out = Vec::new();
    let st = s.sample_all(max_frames as usize, &mut out);
    let stacks: Vec<String> = out.iter().map(stack_json).collect();
    ret(format!(
        "{{\"stats\":{{\"threads\":{},\"frames\":{},\"read_errors\":{},\"dropped\":{}}},\"stacks\":[{}]}}",
        st.threads,
        st.frames,
        st.read_errors,
        st.dropped_stacks,
        stacks.join(",")
    ))
}

/// The calling thread's own stack (GIL held: call through PyDLL).
#[no_mangle]
pub unsafe extern "C" fn ember_self(max_frames: u32) -> *const c_char {
    let mut g = SAMPLER.lock().unwrap();
    let s = g.as_mut().unwrap();
    let ts = s.current_tstate();
    match s.sample_tstate(ts, max_frames as usize) {
        Some(t) => ret(stack_json(&t)),
        None => ret("null".into()),
    }
}

/// Times `iters` calls of sample_all (call through CDLL: GIL released).
#[no_mangle]
pub extern "C" fn ember_bench(iters: u32, max_frames: u32) -> *const c_char {
    let mut g = SAMPLER.lock().unwrap();
    let s = g.as_mut().unwrap();
    let mut out = Vec::new();
    let t0 = Instant::now();
    let first = s.sample_all(max_frames as usize, &mut out);
    let cold = t0.elapsed();
    let mut stacks = 0u64;
    let mut frames = 0u64;
    let mut dropped = 0u64;
    let errors0 = s.read_errors();
    let calls0 = s.read_calls();
    let mut best = Duration::MAX;
    let mut each: Vec<u64> = Vec::with_capacity(iters as usize);
    let t1 = Instant::now();
    for _ in 0..iters {
        let t = Instant::now();
        let st = s.sample_all(max_frames as usize, &mut out);
        let el = t.elapsed();
        best = best.min(el);
        each.push(el.as_nanos() as u64);
        stacks += u64::from(st.threads);
        frames += st.frames;
        dropped += u64::from(st.dropped_stacks);
    }
    let total = t1.elapsed();
    each.sort_unstable();
    let median_us = each.get(each.len() / 2).copied().unwrap_or(0) as f64 / 1e3;
    let per_stack_ns = total.as_nanos() as f64 / stacks.max(1) as f64;
    ret(format!(
        "{{\"cold_us\":{:.1},\"cold_threads\":{},\"iters\":{},\"stacks\":{},\"frames\":{},\"dropped\":{},\"read_errors\":{},\"total_ms\":{:.2},\"per_sample_us\":{:.2},\"best_sample_us\":{:.2},\"median_sample_us\":{:.2},\"per_stack_ns\":{:.0},\"calls_per_sample\":{:.2},\"frames_per_stack\":{:.1}}}",
        cold.as_secs_f64() * 1e6,
        first.threads,
        iters,
        stacks,
        frames,
        dropped,
        s.read_errors() - errors0,
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / iters.max(1) as f64,
        best.as_secs_f64() * 1e6,
        median_us,
        per_stack_ns,
        (s.read_calls() - calls0) as f64 / iters.max(1) as f64,
        frames as f64 / stacks.max(1) as f64
    ))
}

/// Starts a native (non-Python) thread that samples in a loop.
#[no_mangle]
pub extern "C" fn ember_stress_start(max_frames: u32) {
    STOP.store(false, Ordering::SeqCst);
    let max_frames = max_frames as usize;
    let h = std::thread::Builder::new()
        .name("ember-stress".into())
        .spawn(move || {
            let mut g = SAMPLER.lock().unwrap();
            let s = g.as_mut().unwrap();
            let mut out = Vec::new();
            let (mut samples, mut threads, mut frames, mut dropped, mut errs) = (0u64, 0u64, 0u64, 0u64, 0u64);
            let mut max_depth = 0usize;
            let mut omitted = 0u64;
            let mut worst = Duration::ZERO;
            let mut bad_lines = 0u64;
            let names = Arc::new(());
            let _ = names;
            let t0 = Instant::now();
            let cpu = || {
                let mut ts = libc_timespec { tv_sec: 0, tv_nsec: 0 };
                unsafe { clock_gettime(3, &mut ts) }; // CLOCK_THREAD_CPUTIME_ID
                ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
            };
            let mut worst_cpu = 0u64;
            while !STOP.load(Ordering::Relaxed) {
                let t = Instant::now();
                let c0 = cpu();
                let st = s.sample_all(max_frames, &mut out);
                worst_cpu = worst_cpu.max(cpu() - c0);
                worst = worst.max(t.elapsed());
                samples += 1;
                threads += u64::from(st.threads);
                frames += st.frames;
                dropped += u64::from(st.dropped_stacks);
                errs += st.read_errors;
                for ts in &out {
                    max_depth = max_depth.max(ts.frames.len() + ts.omitted as usize);
                    omitted += u64::from(ts.omitted);
                    for f in &ts.frames {
                        if f.line == 0 {
                            bad_lines += 1;
                        }
                    }
                }
            }
            let el = t0.elapsed();
            let cs = s.cache_stats();
            let reasons: Vec<String> = s.drop_counts().iter().map(|(n, c)| format!("\"{n}\":{c}")).collect();
            format!(
                "{{\"worst_sample_cpu_ms\":{:.2},\"drop_reasons\":{{{}}},\"seconds\":{:.1},\"samples\":{},\"thread_visits\":{},\"frames\":{},\"omitted\":{},\"dropped\":{},\"read_errors\":{},\"max_depth\":{},\"worst_sample_ms\":{:.2},\"avg_sample_us\":{:.1},\"zero_lines\":{},\"cache_hits\":{},\"cache_trusted\":{},\"cache_misses\":{},\"cache_invalidated\":{},\"cache_evicted\":{}}}",
                worst_cpu as f64 / 1e6, reasons.join(","), el.as_secs_f64(), samples, threads, frames, omitted, dropped, errs, max_depth,
                worst.as_secs_f64() * 1e3, el.as_secs_f64() * 1e6 / samples.max(1) as f64,
                bad_lines, cs.hits, cs.trusted, cs.misses, cs.invalidated, cs.evicted
            )
        })
        .unwrap();
    *STRESS.lock().unwrap() = Some(h);
}

#[no_mangle]
pub extern "C" fn ember_stress_stop() -> *const c_char {
    STOP.store(true, Ordering::SeqCst);
    let h = STRESS.lock().unwrap().take().unwrap();
    ret(h.join().unwrap())
}

#[repr(C)]
struct libc_timespec {
    tv_sec: i64,
    tv_nsec: i64,
}
extern "C" {
    fn clock_gettime(clk: i32, ts: *mut libc_timespec) -> i32;
}
