//! The configuration dict from the Python layer, read into typed settings.
//!
//! Validation and the one-line warnings about bad environment values live in Python
//! (`emberscope._config`); here a missing or mistyped key quietly takes its default so a
//! caller passing a partial dict still gets a working profiler.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// Settings of one profiling session.
#[derive(Debug, Clone)]
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
        }
    }

    /// The `profiler_config` tag value, in the reference's feature order.
    pub fn profiler_config(&self, exceptions_on: bool) -> String {
        let mut parts: Vec<String> = Vec::new();
        if self.stack {
            parts.push(if self.stack_v2 { "stack_v2" } else { "stack" }.into());
        }
        if exceptions_on {
            parts.push("exception".into());
        }
        parts.push(format!("MAXF{}", self.max_frames));
        parts.join("_")
    }
}
