//! emberscope-profile: aggregation of samples into pprof profiles.
//!
//! The collector feeds [`ProfileBuilder::add_sample`] with leaf-first
//! [`Frame`]s, non-zero `(SampleType, value)` pairs and [`Label`]s, and at the
//! end of each period calls [`ProfileBuilder::build`] to get a
//! [`pprof::Profile`] shaped like the reference profiler's (ddtrace 4.x): all
//! 19 [`SampleType`]s in a fixed order, `period_type` cpu-time/nanoseconds,
//! one `Line` per location, Python frames at address 0, no mappings.
//! [`encode`] / [`gzip`] / [`zstd()`] serialize it; [`decode`] reads any of the
//! three back; [`summary`] resolves a decoded profile for assertions. The
//! exporters skip the intermediate message: [`ProfileBuilder::encode`] writes
//! the same bytes straight from the builder.
//!
//! Module map: [`pprof`] (wire messages), [`sample_type`] (the 19 types),
//! [`builder`] (interning and aggregation), [`codec`] (bytes),
//! [`summary`] (test/tool views), [`fxhash`] (the tables' hasher).

pub mod builder;
pub mod codec;
pub mod fxhash;
pub mod pprof;
pub mod sample_type;
pub mod summary;

pub use builder::{
    omitted_frames_name, Frame, Label, LabelValue, ProfileBuilder, StackId, END_TIMESTAMP_NS,
    NATIVE_FILENAME,
};
pub use codec::{decode, decompress, encode, gzip, zstd, DecodeError};
pub use sample_type::{SampleType, SAMPLE_TYPE_COUNT};
pub use summary::{
    rows, totals, FrameRow, OwnedLabelValue, ProfileSummary, SampleRow, SummaryError,
};

#[cfg(test)]
mod tests;
