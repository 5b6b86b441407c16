//! `code-provenance.json`: which files belong to the standard library, to
//! which installed distribution, and which are the user's own, so the UI can
//! colour and filter frames by "my code / libraries / stdlib".
//!
//! Schema `{"v1": [{"kind", "name", "version", "paths"}, ...]}`, entries in
//! this order:
//! * `stdlib` (`kind: "standard library"`, the Python version): the stdlib
//!   directory plus `<frozen X>` for the modules CPython ships frozen
//!   (fixed list per version, or the caller's list);
//! * `native` (`<native>`) and `runtime` (`<runtime>`), `kind: "library"`:
//!   the synthetic C-call and GC frames;
//! * one `kind: "library"` entry per installed distribution, sorted by
//!   normalized name, with the absolute paths of its top-level modules
//!   (`site-packages/pkg` directories and `site-packages/mod.py` files);
//!   the main package (`DD_MAIN_PACKAGE`) gets `kind: ""` (user code).
//!
//! Top-level modules come from `*.dist-info/RECORD` (first path component;
//! `__pycache__/x.cpython-311.pyc` maps back to `x.py`; `.so` files,
//! `.pth` files, scripts outside site-packages and `__editable__` hooks are
//! ignored). A namespace package directory (no `__init__.py` in the RECORD,
//! e.g. `google/`) is listed by its second-level entries
//! (`google/protobuf`), so two distributions sharing it stay apart. Without
//! a RECORD, `top_level.txt` is used; `*.egg-info` directories use
//! `PKG-INFO` and `top_level.txt`. When several site-packages directories
//! hold the same distribution, the first wins (`sys.path` order).
//!
//! Only directory listings and two small files per distribution are read,
//! no `stat` per file: 100 distributions take a few milliseconds (see
//! `benches/provenance.rs`). [`CodeProvenance`] computes the document once,
//! on the thread that first asks for it (the uploader's), and caches the
//! JSON and its zstd frame.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use emberscope_sync::Mutex;
use serde_json::{Map, Value};

/// Modules CPython 3.11+ ships frozen (`Tools/build/freeze_modules.py`,
/// minus the test modules).
const FROZEN_311: &[&str] = &[
    "importlib._bootstrap",
    "importlib._bootstrap_external",
    "zipimport",
    "abc",
    "codecs",
    "io",
    "_collections_abc",
    "_sitebuiltins",
    "genericpath",
    "ntpath",
    "posixpath",
    "os",
    "site",
    "stat",
    "importlib.util",
    "importlib.machinery",
    "runpy",
];
/// Modules CPython 3.8-3.10 ships frozen.
const FROZEN_38: &[&str] = &[
    "importlib._bootstrap",
    "importlib._bootstrap_external",
    "zipimport",
];
/// Lines of a `METADATA` header read at most.
const MAX_HEADER_LINES: usize = 2000;

/// What the provenance document is computed from.
#[derive(Debug, Clone, Default)]
pub struct ProvenanceInput {
    /// site-packages directories in `sys.path` order (absolute).
    pub site_packages: Vec<PathBuf>,
    /// `sysconfig.get_path("stdlib")`.
    pub stdlib_dir: PathBuf,
    /// `platform.python_version()`, e.g. `3.11.7`.
    pub python_version: String,
    /// `DD_MAIN_PACKAGE`: this distribution gets `kind: ""`.
    pub main_package: Option<String>,
    /// Frozen stdlib module names; `None` uses the list of the Python
    /// version.
    pub frozen_modules: Option<Vec<String>>,
}

/// One `v1` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Library {
    /// `standard library`, `library` or `""` (user code).
    pub kind: String,
    /// Distribution name as in its metadata.
    pub name: String,
    /// Version.
    pub version: String,
    /// Absolute paths (or pseudo-paths like `<native>`), sorted.
    pub paths: BTreeSet<String>,
}

impl Library {
    fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), Value::from(self.kind.as_str()));
        m.insert("name".into(), Value::from(self.name.as_str()));
        m.insert("version".into(), Value::from(self.version.as_str()));
        m.insert(
            "paths".into(),
            Value::Array(self.paths.iter().map(|p| Value::from(p.as_str())).collect()),
        );
        Value::Object(m)
    }
}

/// PEP 503 normalized distribution name: lowercase, runs of `-`, `_`, `.`
/// replaced by one `-`.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut sep = false;
    for c in name.trim().chars() {
        if matches!(c, '-' | '_' | '.') {
            sep = true;
        } else {
            if sep && !out.is_empty() {
                out.push('-');
            }
            sep = false;
            out.extend(c.to_lowercase());
        }
    }
    out
}

/// The headers of an email-style metadata file (`METADATA`, `PKG-INFO`):
/// `(name, value)` pairs up to the first blank line, continuation lines
/// folded. Missing or unreadable files give an empty list.
pub fn read_metadata_headers(path: &Path) -> Vec<(String, String)> {
    let Ok(f) = fs::File::open(path) else {
        return Vec::new();
    };
    let mut out: Vec<(String, String)> = Vec::new();
    for line in BufReader::new(f).lines().take(MAX_HEADER_LINES) {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
            continue;
        }
        if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// `(name, version)` from a `*.dist-info` / `*.egg-info` directory name.
fn name_version_from_dir(dir_name: &str) -> (String, String) {
    let stem = dir_name
        .strip_suffix(".dist-info")
        .or_else(|| dir_name.strip_suffix(".egg-info"))
        .unwrap_or(dir_name);
    match stem.split_once('-') {
        Some((n, rest)) => (
            n.to_string(),
            rest.split('-').next().unwrap_or("").to_string(),
        ),
        None => (stem.to_string(), String::new()),
    }
}

fn is_dir(entry: &fs::DirEntry) -> bool {
    match entry.file_type() {
        Ok(t) if t.is_dir() => true,
        Ok(t) if t.is_symlink() => entry.path().is_dir(),
        _ => false,
    }
}

/// The `*.dist-info` (or `*.egg-info`) directory of distribution `name` in
/// the first of `site_packages` that has one.
pub fn find_dist_info(site_packages: &[PathBuf], name: &str) -> Option<PathBuf> {
    let wanted = normalize_name(name);
    for site in site_packages {
        let Ok(rd) = fs::read_dir(site) else { continue };
        let mut hits: Vec<PathBuf> = rd
            .flatten()
            .filter(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                (n.ends_with(".dist-info") || n.ends_with(".egg-info"))
                    && normalize_name(&name_version_from_dir(&n).0) == wanted
                    && is_dir(e)
            })
            .map(|e| e.path())
            .collect();
        hits.sort();
        // Prefer .dist-info over .egg-info.
        if let Some(p) = hits
            .iter()
            .find(|p| p.to_string_lossy().ends_with(".dist-info"))
            .or(hits.first())
        {
            return Some(p.clone());
        }
    }
    None
}

/// First CSV field of a `RECORD` line (the path).
fn record_path(line: &str) -> Option<String> {
    let line = line.trim_end_matches('\r');
    if line.is_empty() {
        return None;
    }
    if let Some(rest) = line.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    out.push('"');
                    chars.next();
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return Some(out);
    }
    // path,hash,size: neither hash nor size contains a comma.
    line.rsplitn(3, ',').last().map(str::to_string)
}

fn pyc_to_py(name: &str) -> Option<String> {
    let stem = name.split('.').next().filter(|s| !s.is_empty())?;
    Some(format!("{stem}.py"))
}

#[derive(Default)]
struct TopDir {
    has_init: bool,
    children: BTreeSet<String>,
}

/// Top-level modules (relative to site-packages) listed in a `RECORD`.
fn modules_from_record(record: &str) -> BTreeSet<String> {
    let mut files: BTreeSet<String> = BTreeSet::new();
    let mut dirs: BTreeMap<String, TopDir> = BTreeMap::new();
    for line in record.lines() {
        let Some(path) = record_path(line) else {
            continue;
        };
        if path.starts_with('/') {
            continue;
        }
        let comps: Vec<&str> = path
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let Some(&first) = comps.first() else {
            continue;
        };
        if first == ".."
            || first.ends_with(".dist-info")
            || first.ends_with(".egg-info")
            || first.ends_with(".data")
            || first.starts_with("__editable__")
        {
            continue;
        }
        if first == "__pycache__" {
            if comps.len() == 2 {
                files.extend(pyc_to_py(comps[1]));
            }
            continue;
        }
        if comps.len() == 1 {
            if first.ends_with(".py") {
                files.insert(first.to_string());
            }
            continue;
        }
        let d = dirs.entry(first.to_string()).or_default();
        let second = comps[1];
        if comps.len() == 2 {
            if second == "__init__.py" {
                d.has_init = true;
            }
            if second.ends_with(".py") {
                d.children.insert(format!("{first}/{second}"));
            }
        } else if second == "__pycache__" {
            if comps.len() == 3 {
                if let Some(py) = pyc_to_py(comps[2]) {
                    if py == "__init__.py" {
                        d.has_init = true;
                    }
                    d.children.insert(format!("{first}/{py}"));
                }
            }
        } else {
            d.children.insert(format!("{first}/{second}"));
        }
    }
    for (name, d) in dirs {
        if d.has_init || d.children.is_empty() {
            files.insert(name);
        } else {
            // Namespace package: list its members.
            files.extend(d.children);
        }
    }
    files
}

/// Top-level modules from `top_level.txt` (checked on disk).
fn modules_from_top_level(site: &Path, info_dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let Ok(text) = fs::read_to_string(info_dir.join("top_level.txt")) else {
        return out;
    };
    for name in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if site.join(name).is_dir() {
            out.insert(name.to_string());
        } else if site.join(format!("{name}.py")).is_file() {
            out.insert(format!("{name}.py"));
        }
    }
    out
}

fn scan_distribution(site: &Path, info_dir: &Path, dir_name: &str) -> Option<Library> {
    let egg = dir_name.ends_with(".egg-info");
    let headers = read_metadata_headers(&info_dir.join(if egg { "PKG-INFO" } else { "METADATA" }));
    let header = |key: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    };
    let (dir_name_part, dir_version) = name_version_from_dir(dir_name);
    let name = header("Name").unwrap_or(dir_name_part);
    let version = header("Version").unwrap_or(dir_version);
    let modules = match (egg, fs::read_to_string(info_dir.join("RECORD"))) {
        (false, Ok(record)) => modules_from_record(&record),
        _ => modules_from_top_level(site, info_dir),
    };
    if modules.is_empty() {
        return None;
    }
    let paths = modules
        .iter()
        .map(|m| site.join(m).to_string_lossy().into_owned())
        .collect();
    Some(Library {
        kind: "library".to_string(),
        name,
        version,
        paths,
    })
}

fn python_minor(version: &str) -> (u32, u32) {
    let mut it = version.split('.').map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<u32>()
            .unwrap_or(0)
    });
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// All `v1` entries for `input` (see the module doc).
pub fn libraries(input: &ProvenanceInput) -> Vec<Library> {
    let mut stdlib_paths = BTreeSet::new();
    if !input.stdlib_dir.as_os_str().is_empty() {
        stdlib_paths.insert(input.stdlib_dir.to_string_lossy().into_owned());
    }
    let frozen: Vec<String> = match &input.frozen_modules {
        Some(list) => list.clone(),
        None => {
            let list = if python_minor(&input.python_version) >= (3, 11) {
                FROZEN_311
            } else {
                FROZEN_38
            };
            list.iter().map(|s| s.to_string()).collect()
        }
    };
    stdlib_paths.extend(frozen.iter().map(|m| format!("<frozen {m}>")));
    let synthetic = |name: &str, path: &str| Library {
        kind: "library".to_string(),
        name: name.to_string(),
        version: String::new(),
        paths: std::iter::once(path.to_string()).collect(),
    };
    let mut out = vec![
        Library {
            kind: "standard library".to_string(),
            name: "stdlib".to_string(),
            version: input.python_version.clone(),
            paths: stdlib_paths,
        },
        synthetic("native", "<native>"),
        synthetic("runtime", "<runtime>"),
    ];

    let main = input.main_package.as_deref().map(normalize_name);
    let mut seen: HashSet<String> = HashSet::new();
    let mut dists: Vec<(String, Library)> = Vec::new();
    for site in &input.site_packages {
        let Ok(rd) = fs::read_dir(site) else { continue };
        let mut infos: Vec<(String, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                ((n.ends_with(".dist-info") || n.ends_with(".egg-info")) && is_dir(&e))
                    .then(|| (n, e.path()))
            })
            .collect();
        infos.sort();
        for (dir_name, path) in infos {
            let Some(mut lib) = scan_distribution(site, &path, &dir_name) else {
                continue;
            };
            let key = normalize_name(&lib.name);
            if !seen.insert(key.clone()) {
                continue;
            }
            if main.as_deref() == Some(key.as_str()) {
                lib.kind = String::new();
            }
            dists.push((key, lib));
        }
    }
    dists.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(dists.into_iter().map(|(_, l)| l));
    out
}

/// The `code-provenance.json` document for `input`.
pub fn compute_json(input: &ProvenanceInput) -> String {
    let v1: Vec<Value> = libraries(input).iter().map(Library::to_value).collect();
    let mut m = Map::new();
    m.insert("v1".into(), Value::Array(v1));
    Value::Object(m).to_string()
}

/// A computed document: the JSON and its zstd frame (the upload part).
#[derive(Debug)]
pub struct ProvenanceDoc {
    /// `code-provenance.json`.
    pub json: String,
    /// zstd frame of `json`.
    pub zstd: Vec<u8>,
}

/// Lazily computed, cached provenance. Clones share the cache, so a
/// forked child's new uploader can reuse what the parent computed.
#[derive(Debug, Clone)]
pub struct CodeProvenance {
    input: Arc<ProvenanceInput>,
    cache: Arc<Mutex<Option<Arc<ProvenanceDoc>>>>,
}

impl CodeProvenance {
    /// Nothing is computed until [`get`](Self::get).
    pub fn new(input: ProvenanceInput) -> Self {
        CodeProvenance {
            input: Arc::new(input),
            cache: Arc::default(),
        }
    }

    /// The document, computed on the first call; `None` only if zstd
    /// compression fails.
    pub fn get(&self) -> Option<Arc<ProvenanceDoc>> {
        // A lock held by a thread that no longer exists (after fork) must
        // not block: compute without caching then.
        match self.cache.try_lock_for(Duration::from_millis(200)) {
            Some(mut slot) => {
                if let Some(doc) = slot.as_ref() {
                    return Some(doc.clone());
                }
                let doc = Arc::new(self.compute()?);
                *slot = Some(doc.clone());
                Some(doc)
            }
            None => self.compute().map(Arc::new),
        }
    }

    /// The cached document, if already computed.
    pub fn cached(&self) -> Option<Arc<ProvenanceDoc>> {
        self.cache.try_lock().and_then(|s| s.clone())
    }

    fn compute(&self) -> Option<ProvenanceDoc> {
        let json = compute_json(&self.input);
        let zstd = emberscope_profile::zstd(json.as_bytes()).ok()?;
        Some(ProvenanceDoc { json, zstd })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_parsing() {
        let record = "\
requests/__init__.py,sha256=x,123
requests/api.py,sha256=y,10
requests-2.31.0.dist-info/METADATA,,
six.py,sha256=z,1
__pycache__/six.cpython-311.pyc,,
_cffi_backend.cpython-311-x86_64-linux-gnu.so,,
../../../bin/normalizer,,
\"weird,name.py\",sha256=q,1
google/protobuf/__init__.py,,
google/protobuf/message.py,,
google/_upb/_message.abi3.so,,
distutils-precedence.pth,,
__editable___foo_finder.py,,
";
        let m: Vec<String> = modules_from_record(record).into_iter().collect();
        assert_eq!(
            m,
            [
                "google/_upb",
                "google/protobuf",
                "requests",
                "six.py",
                "weird,name.py"
            ]
        );
    }

    #[test]
    fn names() {
        assert_eq!(normalize_name("Foo_Bar.baz"), "foo-bar-baz");
        assert_eq!(normalize_name("foo--bar"), "foo-bar");
        assert_eq!(
            name_version_from_dir("typing_extensions-4.9.0.dist-info"),
            ("typing_extensions".into(), "4.9.0".into())
        );
        assert_eq!(python_minor("3.11.7"), (3, 11));
        assert_eq!(python_minor("3.13.0rc1"), (3, 13));
    }
}
