//! Collectors: turn what the sampler reads out of the interpreter into profile samples.
//!
//! * [`stack`] owns the native sampling thread (CPU time, wall time, timeline) and its
//!   adaptive interval;
//! * [`exceptions`] decides which raised exceptions are recorded and how much each counts;
//! * [`recorder`] holds the profile being built for the current period, the thread names the
//!   Python layer reports and the self-telemetry, behind locks that fork handlers can hold;
//! * [`clock`] reads per-thread CPU clocks and wall time.
//!
//! Nothing here takes the GIL or calls into Python; the PyO3 layer (`emberscope-py`) feeds the
//! parts that need it (thread names, fallback stacks, exception types).
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod clock;
pub mod exceptions;
pub mod locks;
pub mod memalloc;
pub mod recorder;
pub mod stack;

pub use recorder::{OwnedFrame, Recorder, Telemetry, ThreadSnapshot};
pub use stack::{StackCollector, StackConfig};
