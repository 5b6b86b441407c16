//! `emberscope._native`: the PyO3 module that the thin Python layer drives.
//!
//! It owns the process-wide profiling [`session`]: starting the native sampler (or choosing
//! the fallback), the scheduler thread that ends a period every upload interval and hands the
//! profile to the exporter, the exception hook, fork handling and shutdown. Every entry point
//! catches its own failures: the host application never sees an exception from here.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod capture; // the calling thread's stack for event collectors
mod config;
mod exc_hook;
mod exceptions;
mod fallback;
mod lock_methods; // collectors (issue 5): direct lock methods
mod lock_types; // collectors (issue 5)
mod locks; // collectors (issue 5)
mod log;
mod memalloc; // collectors (issue 5)
mod scheduler;
mod selfcheck;
mod session;
mod sink;

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Starts profiling with the configuration dict built by `emberscope._config`.
#[pyfunction]
fn start<'py>(py: Python<'py>, config: &Bound<'py, PyDict>) -> PyResult<Bound<'py, PyDict>> {
    session::start(py, config)
}

/// Stops profiling; with `flush`, writes the final partial profile. Waits at most `timeout_s`.
#[pyfunction]
#[pyo3(signature = (flush=true, timeout_s=5.0))]
fn stop(py: Python<'_>, flush: bool, timeout_s: f64) {
    session::stop(py, flush, timeout_s)
}

/// Whether a profiling session is running in this process.
#[pyfunction]
fn is_running() -> bool {
    session::is_running()
}

/// Called by `os.register_at_fork(before=...)`.
#[pyfunction]
fn fork_prepare() {
    session::fork_prepare()
}

/// Called by `os.register_at_fork(after_in_parent=...)`.
#[pyfunction]
fn fork_parent() {
    session::fork_parent()
}

/// Called by `os.register_at_fork(after_in_child=...)`: restarts profiling in the child.
#[pyfunction]
fn fork_child(py: Python<'_>) {
    session::fork_child(py)
}

/// Records the name (and kernel id) of a Python thread.
#[pyfunction]
#[pyo3(signature = (ident, name, native_id=None))]
fn set_thread_name(ident: u64, name: &str, native_id: Option<u32>) {
    session::set_thread_name(ident, name, native_id)
}

/// One tick of the fallback sampler; returns the seconds to wait before the next one.
#[pyfunction]
fn fallback_tick(py: Python<'_>) -> f64 {
    fallback::tick(py)
}

/// `sys.monitoring` RAISE callback (Python 3.12+).
#[pyfunction]
fn on_raise(
    py: Python<'_>,
    code: &Bound<'_, PyAny>,
    offset: &Bound<'_, PyAny>,
    exc: &Bound<'_, PyAny>,
) -> Py<PyAny> {
    let _ = (code, offset);
    exceptions::on_raise(py, exc);
    py.None()
}

/// Version of the native extension.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Counters of the running session (for tests and `--info`).
#[pyfunction]
fn stats<'py>(py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
    session::stats(py)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(start, m)?)?;
    m.add_function(wrap_pyfunction!(stop, m)?)?;
    m.add_function(wrap_pyfunction!(is_running, m)?)?;
    m.add_function(wrap_pyfunction!(fork_prepare, m)?)?;
    m.add_function(wrap_pyfunction!(fork_parent, m)?)?;
    m.add_function(wrap_pyfunction!(fork_child, m)?)?;
    m.add_function(wrap_pyfunction!(set_thread_name, m)?)?;
    m.add_function(wrap_pyfunction!(fallback_tick, m)?)?;
    m.add_function(wrap_pyfunction!(on_raise, m)?)?;
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(stats, m)?)?;
    m.add_function(wrap_pyfunction!(capture::capture_compare, m)?)?;
    // collectors (issue 5)
    memalloc::register(m)?;
    locks::register(m)?;
    Ok(())
}
