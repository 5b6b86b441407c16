//! Git metadata tags: `git.repository_url`, `git.commit.sha` and
//! `python_main_package`, like the reference's `gitmetadata`.
//!
//! Sources, first match wins for each field:
//! 1. `DD_GIT_REPOSITORY_URL` / `DD_GIT_COMMIT_SHA` (values passed in);
//! 2. the same keys in `DD_TAGS` (`git.repository_url:...`,
//!    `git.commit.sha:...`), the older convention;
//! 3. the installed distribution of the main package (`DD_MAIN_PACKAGE`):
//!    * its `METADATA` header `Project-URL: source_code_link, <url>#<sha>`
//!      (what ddtrace's setuptools hook writes; anything after `&` in the
//!      fragment is ignored);
//!    * else its PEP 610 `direct_url.json` when it was installed from git
//!      (`pip install git+https://...@ref`): `url` and
//!      `vcs_info.commit_id`.
//!
//! Credentials in a repository URL are always stripped
//! (`https://user:token@host/x` becomes `https://host/x`).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::provenance::{find_dist_info, read_metadata_headers};

/// Tag key of the repository URL.
pub const REPOSITORY_URL_TAG: &str = "git.repository_url";
/// Tag key of the commit sha.
pub const COMMIT_SHA_TAG: &str = "git.commit.sha";
/// Tag key of the main package.
pub const MAIN_PACKAGE_TAG: &str = "python_main_package";

/// Resolved git metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitMetadata {
    /// Repository URL without credentials.
    pub repository_url: Option<String>,
    /// Commit sha.
    pub commit_sha: Option<String>,
    /// `DD_MAIN_PACKAGE`.
    pub main_package: Option<String>,
}

/// Where [`GitMetadata::resolve`] looks.
#[derive(Debug, Clone, Default)]
pub struct GitSources {
    /// `DD_GIT_REPOSITORY_URL`.
    pub repository_url: Option<String>,
    /// `DD_GIT_COMMIT_SHA`.
    pub commit_sha: Option<String>,
    /// `DD_MAIN_PACKAGE`.
    pub main_package: Option<String>,
    /// Parsed `DD_TAGS`.
    pub dd_tags: Vec<(String, String)>,
    /// Where to find the main package's `*.dist-info` (site-packages dirs in
    /// `sys.path` order).
    pub site_packages: Vec<PathBuf>,
}

/// `url` without `user[:password]@` after the scheme. URLs without a
/// `scheme://` (e.g. `git@github.com:org/repo.git`) are returned unchanged.
pub fn strip_url_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{tail}"),
        None => url.to_string(),
    }
}

fn non_empty(s: Option<&str>) -> Option<String> {
    s.map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// `(url, sha)` from a `source_code_link` value `<url>#<sha>[&...]`.
pub fn parse_source_code_link(link: &str) -> Option<(String, String)> {
    let (url, frag) = link.trim().split_once('#')?;
    let sha = frag.split('&').next().unwrap_or("").trim();
    if url.is_empty() {
        return None;
    }
    Some((strip_url_credentials(url.trim()), sha.to_string()))
}

/// `(url, sha)` from the main package's distribution metadata, if it has
/// any (see the module doc).
pub fn from_distribution(dist_info: &Path) -> Option<(String, String)> {
    let headers = read_metadata_headers(&dist_info.join("METADATA"));
    for (name, value) in &headers {
        if !name.eq_ignore_ascii_case("Project-URL") {
            continue;
        }
        if let Some((label, link)) = value.split_once(',') {
            if label.trim() == "source_code_link" {
                if let Some(found) = parse_source_code_link(link) {
                    return Some(found);
                }
            }
        }
    }
    let text = std::fs::read_to_string(dist_info.join("direct_url.json")).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    let vcs = v.get("vcs_info")?;
    if vcs.get("vcs").and_then(Value::as_str) != Some("git") {
        return None;
    }
    let url = v.get("url").and_then(Value::as_str)?;
    let sha = vcs.get("commit_id").and_then(Value::as_str).unwrap_or("");
    let url = url.strip_prefix("git+").unwrap_or(url);
    Some((strip_url_credentials(url), sha.to_string()))
}

impl GitMetadata {
    /// Resolves the metadata from `sources` (see the module doc). Reads at
    /// most two small files; never fails.
    pub fn resolve(sources: &GitSources) -> GitMetadata {
        let tag = |key: &str| {
            sources
                .dd_tags
                .iter()
                .find(|(k, _)| k == key)
                .and_then(|(_, v)| non_empty(Some(v)))
        };
        let mut repository_url = non_empty(sources.repository_url.as_deref())
            .or_else(|| tag(REPOSITORY_URL_TAG))
            .map(|u| strip_url_credentials(&u));
        let mut commit_sha =
            non_empty(sources.commit_sha.as_deref()).or_else(|| tag(COMMIT_SHA_TAG));
        let main_package = non_empty(sources.main_package.as_deref());
        if let Some(pkg) = &main_package {
            if repository_url.is_none() || commit_sha.is_none() {
                let found =
                    find_dist_info(&sources.site_packages, pkg).and_then(|d| from_distribution(&d));
                if let Some((url, sha)) = found {
                    repository_url = repository_url.or_else(|| non_empty(Some(&url)));
                    commit_sha = commit_sha.or_else(|| non_empty(Some(&sha)));
                }
            }
        }
        GitMetadata {
            repository_url,
            commit_sha,
            main_package,
        }
    }

    /// The tags to add to `tags_profiler` (`git.repository_url`,
    /// `git.commit.sha`, `python_main_package`), each when known. Callers
    /// should drop those keys from `DD_TAGS` first, as the reference does.
    pub fn tags(&self) -> Vec<(String, String)> {
        let mut t = Vec::new();
        if let Some(u) = &self.repository_url {
            t.push((REPOSITORY_URL_TAG.to_string(), u.clone()));
        }
        if let Some(s) = &self.commit_sha {
            t.push((COMMIT_SHA_TAG.to_string(), s.clone()));
        }
        if let Some(p) = &self.main_package {
            t.push((MAIN_PACKAGE_TAG.to_string(), p.clone()));
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_stripped() {
        assert_eq!(
            strip_url_credentials("https://user:pass@host/x"),
            "https://host/x"
        );
        assert_eq!(
            strip_url_credentials("https://tok@host:8443/x@y"),
            "https://host:8443/x@y"
        );
        assert_eq!(
            strip_url_credentials("ssh://git@host/x.git"),
            "ssh://host/x.git"
        );
        assert_eq!(strip_url_credentials("https://host/x"), "https://host/x");
        assert_eq!(
            strip_url_credentials("git@github.com:o/r.git"),
            "git@github.com:o/r.git"
        );
    }

    #[test]
    fn source_code_link() {
        assert_eq!(
            parse_source_code_link(" https://u:p@github.com/o/r#abc123&x=1"),
            Some(("https://github.com/o/r".into(), "abc123".into()))
        );
        assert_eq!(parse_source_code_link("https://github.com/o/r"), None);
    }

    #[test]
    fn env_wins_and_is_cleaned() {
        let g = GitMetadata::resolve(&GitSources {
            repository_url: Some("https://x:y@github.com/o/r".into()),
            commit_sha: None,
            main_package: None,
            dd_tags: vec![("git.commit.sha".into(), "deadbeef".into())],
            site_packages: vec![],
        });
        assert_eq!(g.repository_url.as_deref(), Some("https://github.com/o/r"));
        assert_eq!(g.commit_sha.as_deref(), Some("deadbeef"));
        assert_eq!(g.tags().len(), 2);
    }
}
