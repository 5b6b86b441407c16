//! Warnings from native code: one line on stderr prefixed `emberscope:`.
//!
//! Native threads cannot use Python's `logging` without the GIL, and taking the GIL from a
//! profiler thread is exactly what this crate avoids, so warnings go straight to stderr.

use std::io::Write;

/// Prints one warning line.
pub fn warn(msg: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "emberscope: {msg}");
}

/// Prints one line only when `EMBERSCOPE_DEBUG` is set.
pub fn debug(msg: &str) {
    if std::env::var_os("EMBERSCOPE_DEBUG").is_some_and(|v| !v.is_empty() && v != "0") {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "emberscope[debug]: {msg}");
    }
}
