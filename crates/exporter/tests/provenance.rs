//! Code provenance and git metadata against a fake site-packages with 100
//! distributions of every supported shape. (Its speed is measured in
//! `benches/provenance.rs`, not here.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::TempDir;
use emberscope_exporter::provenance::{compute_json, CodeProvenance, ProvenanceInput};
use emberscope_exporter::{GitMetadata, GitSources};
use serde_json::Value;

fn dist(site: &Path, dir: &str, metadata: &str, record: Option<&str>) {
    let info = site.join(dir);
    fs::create_dir_all(&info).unwrap();
    fs::write(info.join("METADATA"), metadata).unwrap();
    if let Some(r) = record {
        fs::write(info.join("RECORD"), r).unwrap();
    }
}

/// 100 distributions: 94 regular packages, a single-module one, a
/// namespace pair, one without RECORD, one egg-info and the main package.
fn fake_site(site: &Path) {
    for i in 0..94 {
        let name = format!("pkg{i:02}");
        dist(
            site,
            &format!("{name}-1.{i}.dist-info"),
            &format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.{i}\nSummary: test\n\nBody: not a header\n"),
            Some(&format!(
                "{name}/__init__.py,sha256=a,1\n{name}/core.py,sha256=b,2\n\
                 {name}/__pycache__/core.cpython-311.pyc,,\n\
                 {name}-1.{i}.dist-info/METADATA,,\n../../../bin/{name},,\n"
            )),
        );
    }
    dist(
        site,
        "six-1.16.0.dist-info",
        "Name: six\nVersion: 1.16.0\n",
        Some(
            "six.py,sha256=x,1\n__pycache__/six.cpython-311.pyc,,\nsix-1.16.0.dist-info/RECORD,,\n",
        ),
    );
    dist(
        site,
        "google_api_core-2.0.dist-info",
        "Name: google-api-core\nVersion: 2.0\n",
        Some("google/api_core/__init__.py,,\ngoogle/api_core/retry.py,,\n"),
    );
    dist(
        site,
        "protobuf-4.25.1.dist-info",
        "Name: protobuf\nVersion: 4.25.1\n",
        Some("google/protobuf/__init__.py,,\ngoogle/_upb/_message.abi3.so,,\n"),
    );
    // No RECORD: top_level.txt, checked on disk.
    dist(
        site,
        "legacy-0.9.dist-info",
        "Name: Legacy\nVersion: 0.9\n",
        None,
    );
    fs::write(
        site.join("legacy-0.9.dist-info/top_level.txt"),
        "legacy\nmissing\n",
    )
    .unwrap();
    fs::create_dir_all(site.join("legacy")).unwrap();
    // An egg-info directory.
    let egg = site.join("oldegg-0.1-py3.11.egg-info");
    fs::create_dir_all(&egg).unwrap();
    fs::write(egg.join("PKG-INFO"), "Name: oldegg\nVersion: 0.1\n").unwrap();
    fs::write(egg.join("top_level.txt"), "oldegg\n").unwrap();
    fs::write(site.join("oldegg.py"), "").unwrap();
    // The main package, with git metadata in its METADATA.
    dist(
        site,
        "my_app-3.2.1.dist-info",
        "Metadata-Version: 2.1\nName: My-App\nVersion: 3.2.1\n\
         Project-URL: Homepage, https://example.com\n\
         Project-URL: source_code_link, https://user:token@github.com/acme/my-app#0123abcd&x=1\n\n",
        Some("my_app/__init__.py,,\nmy_app/__main__.py,,\n"),
    );
}

fn by_name<'a>(v1: &'a [Value], name: &str) -> &'a Value {
    v1.iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no entry {name}"))
}

fn paths(e: &Value) -> Vec<String> {
    e["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn provenance_of_100_distributions() {
    let tmp = TempDir::new("prov");
    let site = tmp.path().join("site-packages");
    fake_site(&site);
    // A second, later site dir with another six: the first one wins.
    let user_site = tmp.path().join("user-site");
    dist(
        &user_site,
        "six-1.0.0.dist-info",
        "Name: six\nVersion: 1.0.0\n",
        Some("six.py,,\n"),
    );
    dist(
        &user_site,
        "extra-1.0.dist-info",
        "Name: extra\nVersion: 1.0\n",
        Some("extra/__init__.py,,\n"),
    );

    let input = ProvenanceInput {
        site_packages: vec![site.clone(), user_site.clone(), tmp.path().join("missing")],
        stdlib_dir: "/usr/lib/python3.11".into(),
        python_version: "3.11.7".into(),
        main_package: Some("my_app".into()),
        frozen_modules: None,
    };
    let v: Value = serde_json::from_str(&compute_json(&input)).unwrap();
    let v1 = v["v1"].as_array().unwrap();
    assert_eq!(v1.len(), 3 + 100 + 1);

    assert_eq!(v1[0]["kind"], "standard library");
    assert_eq!(v1[0]["name"], "stdlib");
    assert_eq!(v1[0]["version"], "3.11.7");
    let std_paths = paths(&v1[0]);
    assert!(std_paths.contains(&"/usr/lib/python3.11".to_string()));
    assert!(std_paths.contains(&"<frozen importlib._bootstrap>".to_string()));
    assert!(std_paths.contains(&"<frozen posixpath>".to_string()));
    assert_eq!(
        (&v1[1]["name"], &v1[1]["kind"]),
        (&Value::from("native"), &Value::from("library"))
    );
    assert_eq!(paths(&v1[1]), ["<native>"]);
    assert_eq!(v1[2]["name"], "runtime");
    assert_eq!(paths(&v1[2]), ["<runtime>"]);

    // Distributions sorted by normalized name.
    let names: Vec<&str> = v1[3..]
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort_by_key(|n| n.to_lowercase().replace('_', "-"));
    assert_eq!(names, sorted);

    let s = |rel: &str| site.join(rel).to_string_lossy().into_owned();
    let pkg = by_name(v1, "pkg42");
    assert_eq!(pkg["kind"], "library");
    assert_eq!(pkg["version"], "1.42");
    assert_eq!(paths(pkg), [s("pkg42")]);
    assert_eq!(paths(by_name(v1, "six")), [s("six.py")]);
    assert_eq!(by_name(v1, "six")["version"], "1.16.0");
    assert_eq!(
        paths(by_name(v1, "google-api-core")),
        [s("google/api_core")]
    );
    assert_eq!(
        paths(by_name(v1, "protobuf")),
        [s("google/_upb"), s("google/protobuf")]
    );
    assert_eq!(paths(by_name(v1, "Legacy")), [s("legacy")]);
    assert_eq!(paths(by_name(v1, "oldegg")), [s("oldegg.py")]);
    let main = by_name(v1, "My-App");
    assert_eq!(main["kind"], "");
    assert_eq!(paths(main), [s("my_app")]);
    let extra = by_name(v1, "extra");
    assert_eq!(
        paths(extra),
        [user_site.join("extra").to_string_lossy().into_owned()]
    );
    for e in &v1[3..] {
        for p in paths(e) {
            assert!(Path::new(&p).is_absolute(), "{p}");
            assert!(
                !p.contains("__pycache__") && !p.contains("dist-info") && !p.contains("bin"),
                "{p}"
            );
        }
    }
}

#[test]
fn provenance_is_computed_once_and_shared_by_clones() {
    let tmp = TempDir::new("prov-cache");
    fake_site(tmp.path());
    let p = CodeProvenance::new(ProvenanceInput {
        site_packages: vec![tmp.path().to_path_buf()],
        stdlib_dir: "/usr/lib/python3.9".into(),
        python_version: "3.9.18".into(),
        main_package: None,
        frozen_modules: None,
    });
    assert!(p.cached().is_none());
    let a = p.get().unwrap();
    // Later changes on disk are not seen: the document is cached.
    fs::remove_dir_all(tmp.path().join("six-1.16.0.dist-info")).unwrap();
    let b = p.clone().get().unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    let v: Value = serde_json::from_str(&a.json).unwrap();
    let stdlib = paths(&v["v1"][0]);
    assert!(
        !stdlib.contains(&"<frozen posixpath>".to_string()),
        "3.9 freezes only importlib"
    );
    assert!(stdlib.contains(&"<frozen zipimport>".to_string()));
    assert_eq!(
        emberscope_profile::decompress(&a.zstd).unwrap().as_ref(),
        a.json.as_bytes()
    );
}

#[test]
fn git_metadata_from_the_main_package() {
    let tmp = TempDir::new("git");
    fake_site(tmp.path());
    let sources = GitSources {
        main_package: Some("my-app".into()),
        site_packages: vec![tmp.path().to_path_buf()],
        ..Default::default()
    };
    let g = GitMetadata::resolve(&sources);
    assert_eq!(
        g.repository_url.as_deref(),
        Some("https://github.com/acme/my-app")
    );
    assert_eq!(g.commit_sha.as_deref(), Some("0123abcd"));
    assert_eq!(
        g.tags(),
        [
            (
                "git.repository_url".to_string(),
                "https://github.com/acme/my-app".to_string()
            ),
            ("git.commit.sha".to_string(), "0123abcd".to_string()),
            ("python_main_package".to_string(), "my-app".to_string()),
        ]
    );

    // DD_GIT_* win over the package.
    let g = GitMetadata::resolve(&GitSources {
        commit_sha: Some("feedface".into()),
        ..sources.clone()
    });
    assert_eq!(g.commit_sha.as_deref(), Some("feedface"));
    assert_eq!(
        g.repository_url.as_deref(),
        Some("https://github.com/acme/my-app")
    );

    // PEP 610 direct_url.json of a `pip install git+https://...` install.
    dist(
        tmp.path(),
        "tool-1.0.dist-info",
        "Name: tool\nVersion: 1.0\n",
        Some("tool/__init__.py,,\n"),
    );
    fs::write(
        tmp.path().join("tool-1.0.dist-info/direct_url.json"),
        r#"{"url": "https://ci:secret@gitlab.example.com/acme/tool.git", "vcs_info": {"vcs": "git", "commit_id": "89abcdef", "requested_revision": "main"}}"#,
    )
    .unwrap();
    let g = GitMetadata::resolve(&GitSources {
        main_package: Some("tool".into()),
        site_packages: vec![tmp.path().to_path_buf()],
        ..Default::default()
    });
    assert_eq!(
        g.repository_url.as_deref(),
        Some("https://gitlab.example.com/acme/tool.git")
    );
    assert_eq!(g.commit_sha.as_deref(), Some("89abcdef"));

    // Unknown package: only the package tag.
    let g = GitMetadata::resolve(&GitSources {
        main_package: Some("nope".into()),
        site_packages: vec![tmp.path().to_path_buf()],
        ..Default::default()
    });
    assert_eq!(
        g.tags(),
        [("python_main_package".to_string(), "nope".to_string())]
    );
}
