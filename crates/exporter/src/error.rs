//! [`ExportError`]: why a profile could not be shipped. Each message names
//! the path (or, later, the endpoint) and the OS error, so the caller can log
//! a single warning line such as
//! `cannot write /var/prof/app.123.4.pprof.tmp: No space left on device (os error 28)`.

use std::path::PathBuf;

/// Why an export failed. No partial output is left behind in any case.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output directory could not be created.
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        /// Directory that could not be created.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A temporary file could not be created, written or synced.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// File being written.
        path: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// A finished temporary file could not be moved to its final name.
    #[error("cannot rename {} to {}: {source}", from.display(), to.display())]
    Rename {
        /// Temporary file.
        from: PathBuf,
        /// Final name.
        to: PathBuf,
        /// OS error.
        #[source]
        source: std::io::Error,
    },
    /// The profile could not be compressed.
    #[error("cannot compress profile for {}: {source}", path.display())]
    Compress {
        /// File it was meant for.
        path: PathBuf,
        /// Compressor error.
        #[source]
        source: std::io::Error,
    },
    /// The metadata could not be serialized.
    #[error("cannot serialize metadata for {}: {source}", path.display())]
    Json {
        /// File it was meant for.
        path: PathBuf,
        /// Serializer error.
        #[source]
        source: serde_json::Error,
    },
}

impl ExportError {
    /// The OS error behind this failure, if any (e.g. to tell a full disk,
    /// `ENOSPC`, from a missing permission, `EACCES`).
    pub fn io_error(&self) -> Option<&std::io::Error> {
        match self {
            ExportError::CreateDir { source, .. }
            | ExportError::Write { source, .. }
            | ExportError::Rename { source, .. }
            | ExportError::Compress { source, .. } => Some(source),
            ExportError::Json { .. } => None,
        }
    }
}
