//! emberscope-exporter: ships finished profiles.
//!
//! The collector hands over the raw (uncompressed) pprof bytes of a finished
//! period plus its `internal` self-telemetry object; an exporter puts them
//! where they belong.
//!
//! Module map:
//! * [`mod@file`]: [`FileExporter`], the `DD_PROFILING_OUTPUT_PPROF` mode — one
//!   gzip pprof file and one `internal_metadata.json` per period, written
//!   atomically.
//! * [`error`]: [`ExportError`], one-line messages naming the path and the OS
//!   error.
//! * `http` (later): multipart upload to an agent (`/profiling/v1/input`,
//!   zstd attachments), sharing [`ExportError`].
//!
//! Nothing here panics; every failure is an [`ExportError`] for the caller to
//! log once.

pub mod error;
pub mod file;

pub use error::ExportError;
pub use file::FileExporter;
