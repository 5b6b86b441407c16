//! `event.json`, the first part of every upload, built exactly like the
//! reference profiler's (ddtrace 4.16 / libdatadog 1.0).
//!
//! Top-level keys, in this order: `attachments`, `tags_profiler`, `start`,
//! `end`, `family` (`"python"`), `version` (`"4"`, the event schema),
//! `endpoint_counts` (`null` or `{resource: count}`), `process_tags` (omitted
//! when unknown), `internal` (self-telemetry object) and
//! `info.profiler.settings`.
//!
//! `tags_profiler` is one comma-joined string: `env`, `service` (default
//! [`DEFAULT_SERVICE`]), `version` (each omitted when unset), `language:python`,
//! `runtime:CPython`, `runtime-id`, `runtime_version`, `profiler_version`,
//! `process_id`, then the user tags sorted by key (`process_type`,
//! `profiler_config`, `DD_TAGS`/`DD_PROFILING_TAGS`, git metadata), then
//! `runtime_platform:<compile target triple>`.
//!
//! [`process_tags`] computes the `process_tags` string (`entrypoint.*`,
//! `svc.*`) from the script path, argv and working directory, the way the
//! reference does.
//!
//! Nothing here fails or panics; keys whose name mentions an API key are
//! removed from the settings dump.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// `service` tag when none is configured.
pub const DEFAULT_SERVICE: &str = "unnamed-python-service";
/// `family` field.
pub const FAMILY: &str = "python";
/// `version` field: the event schema version, not a library version.
pub const EVENT_VERSION: &str = "4";
/// Value of the `runtime_platform` tag: the Rust target triple this crate was
/// compiled for (libdatadog appends the same tag).
pub const RUNTIME_PLATFORM: &str = env!("EMBERSCOPE_TARGET_TRIPLE");
/// Attachment name of the profile.
pub const PPROF_ATTACHMENT: &str = "profile.pprof";
/// Attachment name of the code provenance document.
pub const PROVENANCE_ATTACHMENT: &str = "code-provenance.json";

/// Everything `event.json` says about one profile period.
#[derive(Debug, Clone)]
pub struct EventMeta {
    /// `DD_SERVICE`; `None` or empty gives [`DEFAULT_SERVICE`].
    pub service: Option<String>,
    /// `DD_ENV`; omitted when `None` or empty.
    pub env: Option<String>,
    /// `DD_VERSION`; omitted when `None` or empty.
    pub version: Option<String>,
    /// User tags: `DD_TAGS` + `DD_PROFILING_TAGS` + git metadata tags
    /// ([`crate::git::GitMetadata::tags`]). Sorted by key on output
    /// (stable: equal keys keep their order).
    pub tags: Vec<(String, String)>,
    /// 32 lowercase hex digits, no dashes; new after a fork.
    pub runtime_id: String,
    /// Python version, e.g. `3.11.7`.
    pub runtime_version: String,
    /// emberscope's version.
    pub profiler_version: String,
    /// Process id.
    pub pid: u32,
    /// `main` in a process that has forked, `worker` in a forked child,
    /// `None` otherwise.
    pub process_type: Option<String>,
    /// `profiler_config` tag, e.g. `stack_v2_lock_mem_exp_dd_CAP1.0_MAXF64`;
    /// omitted when empty.
    pub profiler_config: String,
    /// Start of the period (the previous flush, profiler start or fork).
    pub start: SystemTime,
    /// End of the period (this flush).
    pub end: SystemTime,
    /// `endpoint_counts`: `None` gives `null`.
    pub endpoint_counts: Option<BTreeMap<String, u64>>,
    /// `process_tags` (see [`process_tags`]); the key is omitted when `None`.
    pub process_tags: Option<String>,
    /// `internal` self-telemetry object.
    pub internal: Value,
    /// `info.profiler.settings`. Keys naming an API key are dropped.
    pub settings: Value,
}

impl EventMeta {
    /// A meta with the given identity fields, empty tags, no process type or
    /// config, `start == end == now`, empty `internal` and `settings`.
    pub fn new(
        runtime_id: impl Into<String>,
        runtime_version: impl Into<String>,
        profiler_version: impl Into<String>,
        pid: u32,
    ) -> Self {
        let now = SystemTime::now();
        EventMeta {
            service: None,
            env: None,
            version: None,
            tags: Vec::new(),
            runtime_id: runtime_id.into(),
            runtime_version: runtime_version.into(),
            profiler_version: profiler_version.into(),
            pid,
            process_type: None,
            profiler_config: String::new(),
            start: now,
            end: now,
            endpoint_counts: None,
            process_tags: None,
            internal: Value::Object(Default::default()),
            settings: Value::Object(Default::default()),
        }
    }
}

/// A tag value safe inside the comma-joined `tags_profiler`: trimmed, commas
/// replaced by `_`.
fn clean_tag_part(s: &str) -> String {
    s.trim().replace(',', "_")
}

fn non_empty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The `tags_profiler` string (see the module doc for the order).
pub fn tags_profiler(meta: &EventMeta) -> String {
    let mut out: Vec<String> = Vec::with_capacity(12 + meta.tags.len());
    if let Some(env) = non_empty(&meta.env) {
        out.push(format!("env:{}", clean_tag_part(env)));
    }
    let service = non_empty(&meta.service).unwrap_or(DEFAULT_SERVICE);
    out.push(format!("service:{}", clean_tag_part(service)));
    if let Some(version) = non_empty(&meta.version) {
        out.push(format!("version:{}", clean_tag_part(version)));
    }
    out.push("language:python".to_string());
    out.push("runtime:CPython".to_string());
    out.push(format!("runtime-id:{}", clean_tag_part(&meta.runtime_id)));
    out.push(format!(
        "runtime_version:{}",
        clean_tag_part(&meta.runtime_version)
    ));
    out.push(format!(
        "profiler_version:{}",
        clean_tag_part(&meta.profiler_version)
    ));
    out.push(format!("process_id:{}", meta.pid));

    let mut user: Vec<(String, String)> = meta
        .tags
        .iter()
        .map(|(k, v)| (clean_tag_part(k), clean_tag_part(v)))
        .collect();
    if let Some(pt) = non_empty(&meta.process_type) {
        user.push(("process_type".to_string(), clean_tag_part(pt)));
    }
    if !meta.profiler_config.trim().is_empty() {
        user.push((
            "profiler_config".to_string(),
            clean_tag_part(&meta.profiler_config),
        ));
    }
    user.retain(|(k, v)| !k.is_empty() && !v.is_empty());
    user.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(user.into_iter().map(|(k, v)| format!("{k}:{v}")));

    out.push(format!("runtime_platform:{RUNTIME_PLATFORM}"));
    out.join(",")
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month as u32, day as u32)
}

/// RFC 3339 UTC with nanoseconds, e.g. `2026-11-24T18:36:48.605662892Z`.
/// Times before 1970 are clamped to the epoch.
pub fn rfc3339_nanos(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
    let secs = d.as_secs();
    let (y, mo, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '.'], "_");
    k.contains("api_key") || k.contains("apikey") || k == "dd_api_key"
}

/// `value` without object keys that name an API key (recursively).
pub fn scrub_secrets(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| !is_secret_key(k))
                .map(|(k, v)| (k.clone(), scrub_secrets(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(scrub_secrets).collect()),
        other => other.clone(),
    }
}

fn json_str(s: &str) -> String {
    Value::from(s).to_string()
}

/// The `event.json` document for one period. `attachments` lists the
/// attachment part names in the order they follow in the multipart body
/// (normally [`PROVENANCE_ATTACHMENT`] then [`PPROF_ATTACHMENT`]).
pub fn event_json(meta: &EventMeta, attachments: &[&str]) -> String {
    let attachments = Value::Array(attachments.iter().map(|a| Value::from(*a)).collect());
    let endpoint_counts = match &meta.endpoint_counts {
        None => Value::Null,
        Some(m) => Value::Object(
            m.iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect(),
        ),
    };
    let mut out = String::with_capacity(2048);
    out.push_str("{\"attachments\":");
    out.push_str(&attachments.to_string());
    out.push_str(",\"tags_profiler\":");
    out.push_str(&json_str(&tags_profiler(meta)));
    out.push_str(",\"start\":");
    out.push_str(&json_str(&rfc3339_nanos(meta.start)));
    out.push_str(",\"end\":");
    out.push_str(&json_str(&rfc3339_nanos(meta.end)));
    out.push_str(",\"family\":");
    out.push_str(&json_str(FAMILY));
    out.push_str(",\"version\":");
    out.push_str(&json_str(EVENT_VERSION));
    out.push_str(",\"endpoint_counts\":");
    out.push_str(&endpoint_counts.to_string());
    if let Some(pt) = &meta.process_tags {
        out.push_str(",\"process_tags\":");
        out.push_str(&json_str(pt));
    }
    out.push_str(",\"internal\":");
    out.push_str(&meta.internal.to_string());
    out.push_str(",\"info\":{\"profiler\":{\"settings\":");
    out.push_str(&scrub_secrets(&meta.settings).to_string());
    out.push_str("}}}");
    out
}

/// What [`process_tags`] needs to know about the process.
#[derive(Debug, Clone, Default)]
pub struct ProcessTagsInput {
    /// `sys.argv` (its first element is the script path, `-m` or `-c`).
    pub argv: Vec<String>,
    /// `sys.orig_argv` (3.10+), used to find the module of `python -m mod`;
    /// may be empty.
    pub orig_argv: Vec<String>,
    /// Current working directory.
    pub cwd: PathBuf,
    /// Whether the service name was set by the user (`DD_SERVICE` or
    /// `Profiler(service=...)`): adds `svc.user:true`, otherwise
    /// `svc.auto:<auto_service or entrypoint name>`.
    pub user_provided_service: bool,
    /// Inferred service name, when the caller has one.
    pub auto_service: Option<String>,
}

/// Longest process tag value kept (checked before normalization, like the
/// agent does).
const PROCESS_TAG_MAX: usize = 100;

/// Normalizes a process tag value: at most 100 characters, lowercase,
/// anything but letters, digits and `/._-` replaced by `_`, runs of `_`
/// collapsed, leading and trailing `_` removed.
pub fn normalize_process_tag_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut last_underscore = false;
    for c in value
        .chars()
        .take(PROCESS_TAG_MAX)
        .flat_map(char::to_lowercase)
    {
        let c = if c.is_alphanumeric() || matches!(c, '/' | '.' | '_' | '-') {
            c
        } else {
            '_'
        };
        if c == '_' {
            if last_underscore {
                continue;
            }
            last_underscore = true;
        } else {
            last_underscore = false;
        }
        out.push(c);
    }
    out.trim_matches('_').to_string()
}

fn file_stem(s: &str) -> String {
    let base = Path::new(s)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    match base.rfind('.') {
        Some(i) if i > 0 => base[..i].to_string(),
        _ => base,
    }
}

fn entrypoint_name(input: &ProcessTagsInput) -> String {
    let argv0 = input.argv.first().map(String::as_str).unwrap_or("");
    if argv0 == "-m" {
        for w in input.orig_argv.windows(2) {
            if w[0] == "-m" && !w[1].is_empty() {
                return w[1].clone();
            }
        }
        return "__main__".to_string();
    }
    if argv0.contains(' ') {
        let parts: Vec<&str> = argv0.split_whitespace().collect();
        for w in parts.windows(2) {
            if w[0] == "-m" {
                return w[1].to_string();
            }
        }
        let non_flags: Vec<&str> = parts
            .iter()
            .copied()
            .filter(|p| !p.starts_with('-'))
            .collect();
        if non_flags.len() > 1 {
            return file_stem(non_flags[1]);
        }
    }
    file_stem(argv0)
}

fn entrypoint_type(input: &ProcessTagsInput) -> &'static str {
    let argv0 = input.argv.first().map(String::as_str).unwrap_or("");
    if argv0 == "-m" {
        return "module";
    }
    if argv0.contains(' ') {
        for part in argv0.split_whitespace().skip(1) {
            if part == "-m" {
                return "module";
            }
            if !part.starts_with('-') {
                break;
            }
        }
    }
    "script"
}

/// `path` made absolute against `cwd` with `.`/`..` removed lexically.
fn lexical_absolute(cwd: &Path, path: &Path) -> PathBuf {
    let joined = cwd.join(path);
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn entrypoint_basedir(input: &ProcessTagsInput) -> String {
    let argv0 = input.argv.first().map(String::as_str).unwrap_or("");
    let path = Path::new(argv0);
    let resolved = std::fs::canonicalize(input.cwd.join(path))
        .unwrap_or_else(|_| lexical_absolute(&input.cwd, path));
    resolved
        .parent()
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `process_tags` string: sorted `key:value` pairs joined by `,`, from
/// `entrypoint.basedir` (directory of the resolved script), `entrypoint.name`
/// (script stem, or the module of `python -m`), `entrypoint.type` (`script`
/// or `module`), `entrypoint.workdir` (last component of the cwd) and
/// `svc.user:true` or `svc.auto:<name>`. Values are normalized with
/// [`normalize_process_tag_value`]; empty values and `/`, `\`, `bin` are left
/// out.
pub fn process_tags(input: &ProcessTagsInput) -> String {
    let workdir = input
        .cwd
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = entrypoint_name(input);
    let mut pairs: Vec<(&str, String)> = vec![
        ("entrypoint.workdir", workdir),
        ("entrypoint.basedir", entrypoint_basedir(input)),
        ("entrypoint.name", name.clone()),
        ("entrypoint.type", entrypoint_type(input).to_string()),
    ];
    if input.user_provided_service {
        pairs.push(("svc.user", "true".to_string()));
    } else {
        let auto = input
            .auto_service
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or(name);
        pairs.push(("svc.auto", auto));
    }
    let mut tags: Vec<String> = pairs
        .into_iter()
        .filter(|(_, v)| !v.is_empty() && !matches!(v.as_str(), "/" | "\\" | "bin"))
        .map(|(k, v)| format!("{k}:{}", normalize_process_tag_value(&v)))
        .collect();
    tags.sort();
    tags.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> EventMeta {
        let mut m = EventMeta::new("421a6c478d31466f8f05078cdf84f834", "3.11.7", "0.1.0", 11800);
        m.service = Some("my-web-app".into());
        m.env = Some("prod".into());
        m.version = Some("1.0.3".into());
        m.profiler_config = "stack_v2_exp_dd_CAP1.0_MAXF64".into();
        m.tags = vec![
            ("team".into(), "perf".into()),
            ("ptag".into(), "pval".into()),
            ("region".into(), "eu".into()),
        ];
        m
    }

    #[test]
    fn tags_follow_the_reference_order() {
        let t = tags_profiler(&meta());
        assert_eq!(
            t,
            format!(
                "env:prod,service:my-web-app,version:1.0.3,language:python,runtime:CPython,\
                 runtime-id:421a6c478d31466f8f05078cdf84f834,runtime_version:3.11.7,\
                 profiler_version:0.1.0,process_id:11800,\
                 profiler_config:stack_v2_exp_dd_CAP1.0_MAXF64,ptag:pval,region:eu,team:perf,\
                 runtime_platform:{RUNTIME_PLATFORM}"
            )
        );
    }

    #[test]
    fn unset_identity_tags_are_omitted_and_service_defaults() {
        let mut m = meta();
        m.env = None;
        m.version = Some(String::new());
        m.service = None;
        m.tags.clear();
        m.process_type = Some("worker".into());
        m.tags.push(("bad".into(), "a,b".into()));
        let t = tags_profiler(&m);
        assert!(t.starts_with("service:unnamed-python-service,language:python,"));
        assert!(t.contains(",bad:a_b,process_type:worker,profiler_config:"));
    }

    #[test]
    fn rfc3339_formats_with_nanoseconds() {
        let t = UNIX_EPOCH + Duration::new(1_795_545_408, 605_662_892);
        assert_eq!(rfc3339_nanos(t), "2026-11-24T18:36:48.605662892Z");
        assert_eq!(rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_nanos(leap), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn event_json_has_the_reference_keys_in_order_and_no_api_key() {
        let mut m = meta();
        m.process_tags = Some("entrypoint.name:x".into());
        m.settings =
            serde_json::json!({"api_key": "secret", "nested": {"DD_API_KEY": "secret", "ok": 1}});
        let s = event_json(&m, &[PROVENANCE_ATTACHMENT, PPROF_ATTACHMENT]);
        assert!(!s.contains("secret"));
        let keys: Vec<&str> = [
            "\"attachments\"",
            "\"tags_profiler\"",
            "\"start\"",
            "\"end\"",
            "\"family\"",
            "\"version\"",
            "\"endpoint_counts\"",
            "\"process_tags\"",
            "\"internal\"",
            "\"info\"",
        ]
        .to_vec();
        let mut last = 0;
        for k in keys {
            let at = s.find(k).unwrap_or(usize::MAX);
            assert!(at != usize::MAX && at >= last, "{k} out of order in {s}");
            last = at;
        }
        let v: Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["endpoint_counts"], Value::Null);
        assert_eq!(v["info"]["profiler"]["settings"]["nested"]["ok"], 1);
    }

    #[test]
    fn process_tags_like_the_reference() {
        let dir = std::env::temp_dir().join(format!("emberscope-ptags-{}", std::process::id()));
        let _ = std::fs::create_dir_all(dir.join("ddtrace"));
        let input = ProcessTagsInput {
            argv: vec!["ddtrace/workload.py".into()],
            orig_argv: vec![],
            cwd: dir.join("ddtrace"),
            user_provided_service: true,
            auto_service: None,
        };
        // The script does not exist: resolved lexically against cwd.
        assert_eq!(
            process_tags(&input),
            "entrypoint.basedir:ddtrace,entrypoint.name:workload,entrypoint.type:script,\
             entrypoint.workdir:ddtrace,svc.user:true"
        );
        let module = ProcessTagsInput {
            argv: vec!["-m".into()],
            orig_argv: vec!["python3".into(), "-m".into(), "My App".into()],
            cwd: PathBuf::from("/srv/Web  Root"),
            user_provided_service: false,
            auto_service: None,
        };
        let t = process_tags(&module);
        assert!(t.contains("entrypoint.name:my_app"), "{t}");
        assert!(t.contains("entrypoint.type:module"), "{t}");
        assert!(t.contains("entrypoint.workdir:web_root"), "{t}");
        assert!(t.contains("svc.auto:my_app"), "{t}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn normalization() {
        assert_eq!(
            normalize_process_tag_value("__Hello  World!__"),
            "hello_world"
        );
        assert_eq!(normalize_process_tag_value("a/b.c-d"), "a/b.c-d");
        assert_eq!(normalize_process_tag_value(&"x".repeat(150)).len(), 100);
    }
}
