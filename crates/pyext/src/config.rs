//! The configuration dict from the Python layer, read into typed settings.
//!
//! Validation and the one-line warnings about bad environment values live in Python
//! (`emberscope._config`); here a missing or mistyped key quietly takes its default so a
//! caller passing a partial dict still gets a working profiler.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Settings of one profiling session.
#[derive(Clone)]
pub struct NativeConfig {
    pub service: Option<String>,
    pub env: Option<String>,
    pub version: Option<String>,
    pub tags: Vec<(String, String)>,
    pub output_pprof: Option<String>,
    pub upload_interval: f64,
    pub max_frames: usize,
    pub max_time_usage_pct: f64,
    pub max_sampling_hz: f64,
    pub timeline: bool,
    pub stack: bool,
    pub stack_v2: bool,
    pub exception: bool,
    pub exception_sampling_interval: u64,
    pub agent_url: String,
    pub api_timeout_ms: u64,
    pub code_provenance: bool,
    pub agentless: bool,
    /// Never logged, never exported in settings.
    pub api_key: Option<String>,
    pub site: String,
    pub agentless_url: Option<String>,
    pub main_package: Option<String>,
    pub git_repository_url: Option<String>,
    pub git_commit_sha: Option<String>,
    pub process: ProcessInfo,
    // collectors (issue 5)
    pub memory: bool,
    pub heap: bool,
    pub heap_sample_size: u64,
    pub lock: bool,
    pub capture_pct: f64,
}

/// Facts about the interpreter gathered by the Python layer (`_process_info`).
#[derive(Debug, Clone, Default)]
pub struct ProcessInfo {
    pub argv: Vec<String>,
    pub orig_argv: Vec<String>,
    pub cwd: String,
    pub site_packages: Vec<String>,
    pub stdlib_dir: String,
    pub python_version: String,
}

impl ProcessInfo {
    fn from_dict(d: Option<Bound<'_, PyDict>>) -> ProcessInfo {
        let Some(d) = d else {
            return ProcessInfo::default();
        };
        ProcessInfo {
            argv: get(&d, "argv").unwrap_or_default(),
            orig_argv: get(&d, "orig_argv").unwrap_or_default(),
            cwd: get(&d, "cwd").unwrap_or_default(),
            site_packages: get(&d, "site_packages").unwrap_or_default(),
            stdlib_dir: get(&d, "stdlib_dir").unwrap_or_default(),
            python_version: get(&d, "python_version").unwrap_or_default(),
        }
    }
}

fn get<'py, T: pyo3::conversion::FromPyObjectOwned<'py>>(
    d: &Bound<'py, PyDict>,
    key: &str,
) -> Option<T> {
    d.get_item(key)
        .ok()
        .flatten()
        .filter(|v| !v.is_none())
        .and_then(|v| v.extract::<T>().ok())
}

impl NativeConfig {
    /// Reads the dict; unknown keys are ignored.
    pub fn from_dict(d: &Bound<'_, PyDict>) -> NativeConfig {
        let tags = d
            .get_item("tags")
            .ok()
            .flatten()
            .and_then(|t| {
                t.extract::<std::collections::BTreeMap<String, String>>()
                    .ok()
            })
            .map(|m| m.into_iter().collect())
            .unwrap_or_default();
        NativeConfig {
            service: get(d, "service"),
            env: get(d, "env"),
            version: get(d, "version"),
            tags,
            output_pprof: get::<String>(d, "output_pprof").filter(|s| !s.is_empty()),
            upload_interval: get::<f64>(d, "upload_interval")
                .filter(|v| v.is_finite() && *v > 0.0)
                .unwrap_or(60.0),
            max_frames: get::<usize>(d, "max_frames")
                .filter(|v| *v > 0)
                .unwrap_or(64)
                .min(599),
            max_time_usage_pct: get::<f64>(d, "max_time_usage_pct")
                .filter(|v| v.is_finite() && *v > 0.0)
                .unwrap_or(1.0),
            max_sampling_hz: get::<f64>(d, "max_sampling_hz")
                .filter(|v| v.is_finite() && *v > 0.0)
                .unwrap_or(100.0),
            timeline: get(d, "timeline").unwrap_or(true),
            stack: get(d, "stack").unwrap_or(true),
            stack_v2: get(d, "stack_v2").unwrap_or(true),
            exception: get(d, "exception").unwrap_or(true),
            exception_sampling_interval: get::<u64>(d, "exception_sampling_interval")
                .filter(|v| *v > 0)
                .unwrap_or(100),
            agent_url: get(d, "agent_url").unwrap_or_else(|| "http://localhost:8126".into()),
            api_timeout_ms: get(d, "api_timeout_ms").unwrap_or(10_000),
            code_provenance: get(d, "code_provenance").unwrap_or(true),
            agentless: get(d, "agentless").unwrap_or(false),
            api_key: get::<String>(d, "api_key").filter(|k| !k.trim().is_empty()),
            site: get::<String>(d, "site")
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "datadoghq.com".into()),
            agentless_url: get::<String>(d, "agentless_url").filter(|s| !s.is_empty()),
            main_package: get::<String>(d, "main_package").filter(|s| !s.is_empty()),
            git_repository_url: get::<String>(d, "git_repository_url").filter(|s| !s.is_empty()),
            git_commit_sha: get::<String>(d, "git_commit_sha").filter(|s| !s.is_empty()),
            process: ProcessInfo::from_dict(
                d.get_item("process")
                    .ok()
                    .flatten()
                    .and_then(|p| p.cast_into::<PyDict>().ok()),
            ),
            memory: get(d, "memory").unwrap_or(true),
            heap: get(d, "heap").unwrap_or(true),
            heap_sample_size: get::<u64>(d, "heap_sample_size")
                .filter(|v| *v > 0)
                .unwrap_or(1 << 20),
            lock: get(d, "lock").unwrap_or(true),
            capture_pct: get::<f64>(d, "capture_pct")
                .filter(|v| v.is_finite() && *v > 0.0)
                .unwrap_or(1.0)
                .min(100.0),
        }
    }

    /// The `profiler_config` tag value, in the reference's feature order
    /// (`stack_v2`, `lock`, `mem`, `heap`, `exception`, `CAP<pct>`, `MAXF<n>`), from what
    /// actually runs.
    pub fn profiler_config(&self, exceptions_on: bool) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.stack {
            parts.push(if self.stack_v2 { "stack_v2" } else { "stack" }.into());
        }
        // collectors (issue 5)
        let lock_on = crate::locks::enabled();
        let (mem_on, heap_on) = crate::memalloc::status();
        if lock_on {
            parts.push("lock".into());
        }
        if mem_on {
            parts.push("mem".into());
        }
        if heap_on {
            parts.push("heap".into());
        }
        if exceptions_on {
            parts.push("exception".into());
        }
        if lock_on {
            parts.push(format!("CAP{:?}", self.capture_pct));
        }
        parts.push(format!("MAXF{}", self.max_frames));
        parts.join("_")
    }
}
