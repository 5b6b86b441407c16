//! FileExporter against a real file system: names, sequence, content,
//! errors and cleanup.

// Test helpers outside #[test] functions may unwrap too.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use emberscope_exporter::{ExportError, FileExporter};
use emberscope_profile::{Frame, Label, ProfileBuilder, ProfileSummary, SampleType};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "emberscope-exporter-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn profile_bytes(marker: i64) -> Vec<u8> {
    let start = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let mut b = ProfileBuilder::new(start);
    b.add_sample(
        &[
            Frame {
                name: "work",
                filename: "/app/main.py",
                line: marker,
            },
            Frame {
                name: "<module>",
                filename: "/app/main.py",
                line: 1,
            },
        ],
        &[(SampleType::CpuTime, 1000), (SampleType::CpuSamples, 1)],
        &[
            Label::num("thread id", 1),
            Label::str("thread name", "MainThread"),
        ],
        None,
    );
    emberscope_profile::encode(&b.build(start + Duration::from_secs(60)))
}

#[test]
fn writes_named_sequenced_decodable_files() {
    let tmp = TempDir::new();
    let prefix = tmp.path().join("nested/deeper/prof");
    let mut ex = FileExporter::new(&prefix, 4242);
    assert_eq!(ex.next_seq(), 1);
    assert_eq!(ex.pid(), 4242);

    for seq in 1..=3i64 {
        let internal = serde_json::json!({"sample_count": seq, "libdatadog_version": null});
        let path = ex.export(&profile_bytes(seq), &internal).unwrap();
        assert_eq!(
            path,
            tmp.path()
                .join(format!("nested/deeper/prof.4242.{seq}.pprof"))
        );
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..2], &[0x1f, 0x8b], "gzip");
        let p = emberscope_profile::decode(&bytes).unwrap();
        let s = ProfileSummary::from_profile(&p).unwrap();
        assert_eq!(s.rows.len(), 1);
        assert_eq!(s.rows[0].frames[0].2, seq);
        assert_eq!(s.total("cpu-time"), 1000);
        let meta_path = tmp.path().join(format!(
            "nested/deeper/prof.4242.{seq}.internal_metadata.json"
        ));
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(meta_path).unwrap()).unwrap();
        assert_eq!(meta, internal);
    }
    assert_eq!(ex.next_seq(), 4);

    // Forked child: new pid, seq from 1 again.
    ex.reset_for_child(4343);
    let path = ex
        .export_with_info(
            &profile_bytes(9),
            &serde_json::json!({}),
            &serde_json::json!({"profiler": {"settings": {}}}),
        )
        .unwrap();
    assert_eq!(path, tmp.path().join("nested/deeper/prof.4343.1.pprof"));

    assert_eq!(
        listing(&tmp.path().join("nested/deeper")),
        vec![
            "prof.4242.1.internal_metadata.json",
            "prof.4242.1.pprof",
            "prof.4242.2.internal_metadata.json",
            "prof.4242.2.pprof",
            "prof.4242.3.internal_metadata.json",
            "prof.4242.3.pprof",
            "prof.4343.1.info.json",
            "prof.4343.1.internal_metadata.json",
            "prof.4343.1.pprof",
        ]
    );
}

#[test]
fn empty_profile_and_null_metadata() {
    let tmp = TempDir::new();
    let mut ex = FileExporter::new(tmp.path().join("p"), 1);
    let path = ex.export(&[], &serde_json::Value::Null).unwrap();
    assert_eq!(path, tmp.path().join("p.1.1.pprof"));
    // An empty raw profile is a valid (empty) pprof.
    let p = emberscope_profile::decode(&std::fs::read(&path).unwrap()).unwrap();
    assert!(p.sample.is_empty());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("p.1.1.internal_metadata.json")).unwrap(),
        "null"
    );
}

#[test]
fn parent_is_a_file_gives_clear_error() {
    let tmp = TempDir::new();
    let blocker = tmp.path().join("not-a-dir");
    std::fs::write(&blocker, b"x").unwrap();
    let mut ex = FileExporter::new(blocker.join("sub/prof"), 7);
    let err = ex
        .export(&profile_bytes(1), &serde_json::json!({}))
        .unwrap_err();
    assert!(matches!(err, ExportError::CreateDir { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("not-a-dir"), "{msg}");
    assert!(msg.contains("os error"), "{msg}");
    assert!(err.io_error().is_some());
    assert_eq!(ex.next_seq(), 1);
    assert_eq!(listing(tmp.path()), vec!["not-a-dir"]);
}

#[test]
fn unwritable_directory_gives_clear_error() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("skipped: root ignores directory permissions");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let tmp = TempDir::new();
    let dir = tmp.path().join("ro");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut ex = FileExporter::new(dir.join("prof"), 7);
    let err = ex
        .export(&profile_bytes(1), &serde_json::json!({}))
        .unwrap_err();
    let msg = err.to_string();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert!(matches!(err, ExportError::Write { .. }), "{err:?}");
    assert!(msg.contains("Permission denied"), "{msg}");
    assert!(msg.contains("prof.7.1"), "{msg}");
    assert!(listing(&dir).is_empty());
}

#[test]
fn write_failure_leaves_nothing_behind() {
    let tmp = TempDir::new();
    let prefix = tmp.path().join("prof");
    let mut ex = FileExporter::new(&prefix, 5);
    // Occupy the pprof temp name with a directory: creating it fails after
    // the metadata temp file was written.
    let obstacle = tmp.path().join("prof.5.1.pprof.tmp");
    std::fs::create_dir(&obstacle).unwrap();
    let err = ex
        .export(&profile_bytes(1), &serde_json::json!({"a": 1}))
        .unwrap_err();
    assert!(matches!(err, ExportError::Write { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("prof.5.1.pprof.tmp"), "{msg}");
    assert!(msg.contains("Is a directory"), "{msg}");
    assert_eq!(listing(tmp.path()), vec!["prof.5.1.pprof.tmp"]);
    assert_eq!(ex.next_seq(), 1);

    // Once the obstacle is gone the same seq is written.
    std::fs::remove_dir(&obstacle).unwrap();
    let path = ex
        .export(&profile_bytes(1), &serde_json::json!({"a": 1}))
        .unwrap();
    assert_eq!(path, tmp.path().join("prof.5.1.pprof"));
}

#[test]
fn rename_failure_leaves_nothing_behind() {
    let tmp = TempDir::new();
    let prefix = tmp.path().join("prof");
    let mut ex = FileExporter::new(&prefix, 6);
    // The final pprof name is a non-empty directory: the last rename fails
    // after the metadata file was already renamed into place.
    let obstacle = tmp.path().join("prof.6.1.pprof");
    std::fs::create_dir(&obstacle).unwrap();
    std::fs::write(obstacle.join("keep"), b"x").unwrap();
    let err = ex
        .export(&profile_bytes(1), &serde_json::json!({}))
        .unwrap_err();
    assert!(matches!(err, ExportError::Rename { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("prof.6.1.pprof.tmp"), "{msg}");
    assert!(msg.contains("os error"), "{msg}");
    assert_eq!(listing(tmp.path()), vec!["prof.6.1.pprof"]);
    assert_eq!(listing(&obstacle), vec!["keep"]);
    assert_eq!(ex.next_seq(), 1);
}

#[test]
fn prefix_below_a_device_is_an_error() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let mut ex = FileExporter::new("/dev/full/prof", 1);
    let err = ex
        .export(&profile_bytes(1), &serde_json::json!({}))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("/dev/full"), "{msg}");
    assert!(msg.contains("os error"), "{msg}");
}
