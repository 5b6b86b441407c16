//! emberscope-exporter: ships finished profiles.
//!
//! The collector hands over the raw (uncompressed) pprof bytes of a finished
//! period plus its metadata; an exporter puts them where they belong.
//!
//! Module map:
//! * [`mod@file`]: [`FileExporter`], the `DD_PROFILING_OUTPUT_PPROF` mode — one
//!   gzip pprof file and one `internal_metadata.json` per period, written
//!   atomically.
//! * [`error`]: [`ExportError`], one-line messages naming the path and the OS
//!   error.
//! * [`uploader`]: [`Uploader`], the agent / agentless mode — a background
//!   thread with a bounded queue, retries with backoff, bounded shutdown.
//! * [`event`]: `event.json` ([`EventMeta`], `tags_profiler`,
//!   `process_tags`).
//! * [`multipart`]: the multipart body and the `DD-*` headers, [`ApiKey`].
//! * [`http`]: the small HTTP/1.1 client (`http://`, `https://`, `unix://`)
//!   with one deadline per attempt, [`Endpoint`].
//! * [`provenance`]: `code-provenance.json` from installed distributions,
//!   [`CodeProvenance`].
//! * [`git`]: `git.repository_url` / `git.commit.sha` tags, [`GitMetadata`].
//!
//! Nothing here panics; file export failures are an [`ExportError`] for the
//! caller to log once, upload problems go to the uploader's warning sink.

pub mod error;
pub mod event;
pub mod file;
pub mod git;
pub mod http;
pub mod multipart;
pub mod provenance;
mod rng;
pub mod uploader;

pub use error::ExportError;
pub use event::{EventMeta, ProcessTagsInput};
pub use file::FileExporter;
pub use git::{GitMetadata, GitSources};
pub use http::{Endpoint, HttpError};
pub use multipart::ApiKey;
pub use provenance::{CodeProvenance, ProvenanceInput};
pub use uploader::{
    ProfileUpload, ShutdownReport, UploadError, UploadStats, Uploader, UploaderConfig, WarnSink,
};
