//! The start-up self-check of the native sampler.
//!
//! Before trusting its layout tables, the sampler reads the calling thread's stack through
//! its own memory reader and compares it, frame by frame, with what the interpreter reports
//! through `sys._getframe()`. Any difference (name, file or line) means the layout does not
//! match this interpreter, and the session uses the fallback sampler instead of risking wrong
//! profiles.
//!
//! The event collectors' capture walker ([`crate::capture`]) is checked once more
//! ([`verify_direct`]): its walk of the calling thread with plain loads must return exactly
//! what its copy-based walk returns before it is used.

use emberscope_sampler::Sampler;
use pyo3::prelude::*;

use crate::fallback::python_stack;

/// Frames compared at most.
const CHECKED_FRAMES: usize = 16;

/// Compares the sampler's reading of the current thread with the interpreter's own view.
pub fn verify(py: Python<'_>, sampler: &mut Sampler) -> Result<(), String> {
    // SAFETY: the GIL is held by the caller (we have `py`).
    let tstate = unsafe { sampler.current_tstate() };
    if tstate == 0 {
        return Err("could not find the current thread state".into());
    }
    let ours = sampler
        .sample_tstate(tstate, CHECKED_FRAMES)
        .ok_or_else(|| "could not read the current thread's frames".to_string())?;
    let qualname = sampler.version() >= (3, 11, 0);
    let (theirs, _) = python_stack(py, None, CHECKED_FRAMES, qualname)
        .map_err(|e| format!("sys._getframe() failed: {e}"))?;
    if theirs.is_empty() {
        // Started from a C thread with no Python frames: nothing to compare.
        return Ok(());
    }
    if ours.frames.len() != theirs.len() {
        return Err(format!(
            "read {} frames where the interpreter has {}",
            ours.frames.len(),
            theirs.len()
        ));
    }
    for (i, (a, b)) in ours.frames.iter().zip(theirs.iter()).enumerate() {
        if a.func.name != b.func.name || a.func.filename != b.func.filename || a.line != b.line {
            return Err(format!(
                "frame {i}: read {}:{}:{} where the interpreter has {}:{}:{}",
                a.func.filename, a.line, a.func.name, b.func.filename, b.line, b.func.name
            ));
        }
    }
    Ok(())
}

/// `max_frames` values the direct walk is compared at: truncation with an omitted count
/// (1, 2, 4), the usual depth, and the whole stack.
const DIRECT_CHECKS: [usize; 5] = [1, 2, 4, CHECKED_FRAMES, usize::MAX];

/// Enables the sampler's direct walk of the calling thread
/// ([`Sampler::sample_current`]) after proving it equal to the copy-based walk
/// (`sample_tstate`) on the current stack, frame by frame, with the omitted count, thread
/// ids and GIL flag, at several `max_frames`. The check itself probes every load with a copy
/// first, so a wrong layout fails it instead of faulting. Call after [`verify`].
pub fn verify_direct(_py: Python<'_>, sampler: &mut Sampler) -> Result<(), String> {
    // SAFETY: the GIL is held by the caller (we have `_py`), on the thread whose stack is read.
    unsafe { sampler.verify_current(&DIRECT_CHECKS) }
}
