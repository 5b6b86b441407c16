//! Prints a pprof file (raw, gzip or zstd) as JSON — header, per-type totals
//! and every sample with resolved frames and labels — for eyeballing and for
//! tests written in other languages:
//! `cargo run -p emberscope-profile --example dump -- FILE`.

use std::io::Write;
use std::process::ExitCode;

use emberscope_profile::{decode, ProfileSummary};

fn main() -> ExitCode {
    let Some(path) = std::env::args_os().nth(1) else {
        eprintln!("usage: dump FILE.pprof");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", path.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let summary = decode(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|p| ProfileSummary::from_profile(&p).map_err(|e| e.to_string()));
    match summary {
        Ok(s) => {
            // A closed pipe (`| head`) is not an error worth a panic.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{:#}", s.to_json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", path.to_string_lossy());
            ExitCode::FAILURE
        }
    }
}
