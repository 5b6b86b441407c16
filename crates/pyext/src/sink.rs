//! Where finished profiles go: files (`DD_PROFILING_OUTPUT_PPROF`), an agent, or the
//! Datadog intake directly (agentless).
//!
//! Files win when a prefix is set, as in the reference. Otherwise profiles are uploaded by
//! an [`Uploader`], whose own thread sends them with retries and a bounded queue; the
//! scheduler only enqueues. Agentless without an API key is refused with one warning and
//! profiles then go nowhere: the application is never affected.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use emberscope_exporter::event::{process_tags, ProcessTagsInput};
use emberscope_exporter::provenance::{CodeProvenance, ProvenanceInput};
use emberscope_exporter::uploader::{
    agentless_url, ProfileUpload, UploadStats, Uploader, UploaderConfig, WarnSink,
};
use emberscope_exporter::{ApiKey, EventMeta, FileExporter, GitMetadata, GitSources};

use crate::config::NativeConfig;
use crate::log::warn;

/// The destination of this session's profiles.
pub enum Sink {
    File(FileExporter),
    Upload(Uploader),
    Discard,
}

fn warn_sink() -> WarnSink {
    Arc::new(|m: &str| warn(m))
}

/// Builds the sink for `config` (in a forked child too: a new uploader, our own pid).
pub fn make_sink(config: &NativeConfig) -> Sink {
    if let Some(prefix) = &config.output_pprof {
        return Sink::File(FileExporter::new(prefix.clone(), std::process::id()));
    }
    let timeout = std::time::Duration::from_millis(config.api_timeout_ms.clamp(1, 3_600_000));
    let built = if config.agentless {
        let Some(key) = config.api_key.clone().and_then(ApiKey::new) else {
            warn("DD_PROFILING_AGENTLESS is true but DD_API_KEY is not set; profiles will not be uploaded (set DD_API_KEY, or DD_PROFILING_OUTPUT_PPROF to write files)");
            return Sink::Discard;
        };
        let url = config
            .agentless_url
            .clone()
            .unwrap_or_else(|| agentless_url(&config.site));
        UploaderConfig::agentless(&url, key, warn_sink())
    } else {
        UploaderConfig::agent(&config.agent_url, warn_sink())
    };
    let mut up = match built {
        Ok(c) => c,
        Err(e) => {
            warn(&format!(
                "cannot upload profiles ({e}); check DD_TRACE_AGENT_URL / DD_AGENT_HOST / DD_TRACE_AGENT_PORT"
            ));
            return Sink::Discard;
        }
    };
    up.timeout = timeout;
    if config.code_provenance {
        up.provenance = Some(CodeProvenance::new(ProvenanceInput {
            site_packages: config
                .process
                .site_packages
                .iter()
                .map(PathBuf::from)
                .collect(),
            stdlib_dir: PathBuf::from(&config.process.stdlib_dir),
            python_version: config.process.python_version.clone(),
            main_package: config.main_package.clone(),
            frozen_modules: None,
        }));
    }
    match Uploader::new(up) {
        Ok(u) => Sink::Upload(u),
        Err(e) => {
            warn(&format!("cannot start the profile uploader: {e}"));
            Sink::Discard
        }
    }
}

/// User tags plus git metadata tags, resolved once per session.
pub fn resolve_tags(config: &NativeConfig) -> Vec<(String, String)> {
    let git = GitMetadata::resolve(&GitSources {
        repository_url: config.git_repository_url.clone(),
        commit_sha: config.git_commit_sha.clone(),
        main_package: config.main_package.clone(),
        dd_tags: config.tags.clone(),
        site_packages: config
            .process
            .site_packages
            .iter()
            .map(PathBuf::from)
            .collect(),
    });
    let git_tags = git.tags();
    let mut tags: Vec<(String, String)> = config
        .tags
        .iter()
        .filter(|(k, _)| !git_tags.iter().any(|(g, _)| g == k))
        .cloned()
        .collect();
    tags.extend(git_tags);
    tags
}

/// `process_tags` of the event (entry point of the process).
pub fn resolve_process_tags(config: &NativeConfig) -> String {
    process_tags(&ProcessTagsInput {
        argv: config.process.argv.clone(),
        orig_argv: config.process.orig_argv.clone(),
        cwd: PathBuf::from(&config.process.cwd),
        user_provided_service: config.service.is_some(),
        auto_service: None,
    })
}

impl Sink {
    /// Upload counters (zero for files).
    pub fn upload_stats(&self) -> Option<UploadStats> {
        match self {
            Sink::Upload(u) => Some(u.stats()),
            _ => None,
        }
    }

    /// Hands one finished period to its destination. Never blocks on the network.
    pub fn send(&mut self, raw: Vec<u8>, meta: EventMeta, info: &serde_json::Value) {
        match self {
            Sink::File(f) => match f.export_with_info(&raw, &meta.internal, info) {
                Ok(path) => crate::log::debug(&format!("wrote {}", path.display())),
                Err(err) => warn(&format!("could not write the profile: {err}")),
            },
            Sink::Upload(u) => u.enqueue(ProfileUpload { pprof: raw, meta }),
            Sink::Discard => {}
        }
    }

    /// At exit: pending uploads get one bounded attempt; returns by `deadline`.
    pub fn shutdown(self, deadline: Instant) {
        if let Sink::Upload(u) = self {
            // The uploader itself warns about what it could not deliver.
            let _ = u.shutdown(deadline);
        }
    }

    /// In a forked child: drop the parent's uploader thread without touching it.
    pub fn forget_after_fork(self) {
        if let Sink::Upload(u) = self {
            u.forget_after_fork();
        }
    }
}
