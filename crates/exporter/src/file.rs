//! [`FileExporter`]: writes each finished profile to disk, the
//! `DD_PROFILING_OUTPUT_PPROF=<prefix>` mode of the reference profiler.
//!
//! Per period and process it writes `{prefix}.{pid}.{seq}.pprof` (gzip of the
//! pprof protobuf; `go tool pprof` reads it directly) and
//! `{prefix}.{pid}.{seq}.internal_metadata.json` (the `internal` object),
//! optionally `{prefix}.{pid}.{seq}.info.json`. `seq` counts from 1 per
//! process and restarts at 1 in a forked child.
//!
//! Every file is written atomically: to `{final}.tmp` in the same directory,
//! `fsync`ed, then renamed. The JSON files are renamed before the `.pprof`,
//! so a reader that sees a `.pprof` also finds its metadata. An export is all
//! or nothing: on any failure every temporary and already-renamed file of
//! that export is removed and `seq` does not advance.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::ExportError;

/// Suffix of the profile file.
pub const PPROF_SUFFIX: &str = ".pprof";
/// Suffix of the `internal` metadata file.
pub const INTERNAL_METADATA_SUFFIX: &str = ".internal_metadata.json";
/// Suffix of the `info` file.
pub const INFO_SUFFIX: &str = ".info.json";
/// Suffix appended to a final name while it is being written.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes profiles to `{prefix}.{pid}.{seq}.pprof`. Not shared between
/// threads: the exporter thread owns it.
#[derive(Debug, Clone)]
pub struct FileExporter {
    prefix: PathBuf,
    pid: u32,
    seq: u64,
}

/// One file of an export: its final path, its temporary path, its bytes.
struct Pending {
    path: PathBuf,
    tmp: PathBuf,
    bytes: Vec<u8>,
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

impl FileExporter {
    /// An exporter writing under `prefix` (the value of
    /// `DD_PROFILING_OUTPUT_PPROF`) for process `pid`; the first export gets
    /// `seq` 1.
    pub fn new(prefix: impl Into<PathBuf>, pid: u32) -> Self {
        FileExporter {
            prefix: prefix.into(),
            pid,
            seq: 1,
        }
    }

    /// After `fork`, in the child: new pid, `seq` back to 1.
    pub fn reset_for_child(&mut self, pid: u32) {
        self.pid = pid;
        self.seq = 1;
    }

    /// The prefix.
    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    /// The pid used in file names.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The `seq` of the next export.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    /// `{prefix}.{pid}.{seq}{suffix}` for the next export, e.g. with
    /// [`PPROF_SUFFIX`] the path [`export`](Self::export) will return.
    pub fn next_path(&self, suffix: &str) -> PathBuf {
        with_suffix(
            &self.prefix,
            &format!(".{}.{}{}", self.pid, self.seq, suffix),
        )
    }

    /// Writes the gzip-compressed profile and `internal` metadata of one
    /// period (see the module doc) and returns the `.pprof` path. Creates
    /// missing parent directories. On error nothing of this export is left
    /// on disk and the next call reuses the same `seq`.
    pub fn export(
        &mut self,
        pprof_raw: &[u8],
        internal: &serde_json::Value,
    ) -> Result<PathBuf, ExportError> {
        self.export_files(pprof_raw, internal, None)
    }

    /// Like [`export`](Self::export), plus `{prefix}.{pid}.{seq}.info.json`
    /// with `info` (the settings dump the reference profiler also writes).
    pub fn export_with_info(
        &mut self,
        pprof_raw: &[u8],
        internal: &serde_json::Value,
        info: &serde_json::Value,
    ) -> Result<PathBuf, ExportError> {
        self.export_files(pprof_raw, internal, Some(info))
    }

    fn export_files(
        &mut self,
        pprof_raw: &[u8],
        internal: &serde_json::Value,
        info: Option<&serde_json::Value>,
    ) -> Result<PathBuf, ExportError> {
        let pprof_path = self.next_path(PPROF_SUFFIX);

        // Everything that can fail without touching the disk comes first.
        let gz = emberscope_profile::gzip(pprof_raw).map_err(|source| ExportError::Compress {
            path: pprof_path.clone(),
            source,
        })?;
        let mut files = Vec::with_capacity(3);
        let mut json_files = vec![(INTERNAL_METADATA_SUFFIX, internal)];
        if let Some(info) = info {
            json_files.push((INFO_SUFFIX, info));
        }
        for (suffix, value) in json_files {
            let path = self.next_path(suffix);
            let bytes = serde_json::to_vec(value).map_err(|source| ExportError::Json {
                path: path.clone(),
                source,
            })?;
            files.push(Pending {
                tmp: with_suffix(&path, TMP_SUFFIX),
                path,
                bytes,
            });
        }
        // The profile last, so that its appearance means the export is done.
        files.push(Pending {
            tmp: with_suffix(&pprof_path, TMP_SUFFIX),
            path: pprof_path.clone(),
            bytes: gz,
        });

        let dir = pprof_path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(Path::to_path_buf);
        if let Some(dir) = &dir {
            if !dir.is_dir() {
                fs::create_dir_all(dir).map_err(|source| ExportError::CreateDir {
                    path: dir.clone(),
                    source,
                })?;
            }
        }

        // Phase 1: all temporaries written and synced.
        for (i, f) in files.iter().enumerate() {
            if let Err(source) = write_synced(&f.tmp, &f.bytes) {
                for g in files.iter().take(i + 1) {
                    let _ = fs::remove_file(&g.tmp);
                }
                return Err(ExportError::Write {
                    path: f.tmp.clone(),
                    source,
                });
            }
        }
        // Phase 2: rename in order; undo on failure.
        for (i, f) in files.iter().enumerate() {
            if let Err(source) = fs::rename(&f.tmp, &f.path) {
                for (j, g) in files.iter().enumerate() {
                    if j < i {
                        let _ = fs::remove_file(&g.path);
                    } else {
                        let _ = fs::remove_file(&g.tmp);
                    }
                }
                return Err(ExportError::Rename {
                    from: f.tmp.clone(),
                    to: f.path.clone(),
                    source,
                });
            }
        }
        // Make the renames durable (best effort: some file systems refuse
        // to fsync a directory, and the data itself is already synced).
        if let Ok(d) = File::open(dir.as_deref().unwrap_or(Path::new("."))) {
            let _ = d.sync_all();
        }

        self.seq += 1;
        Ok(pprof_path)
    }
}
