//! Times the code provenance computation for a fake environment of 100
//! distributions (the target is < 50 ms cold in-process; the reference
//! takes seconds). Run with `cargo bench -p emberscope-exporter`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::time::Instant;

use emberscope_exporter::provenance::{compute_json, ProvenanceInput};

fn make_env(site: &Path, n: usize) -> std::io::Result<()> {
    for i in 0..n {
        let name = format!("pkg{i:03}");
        let info = site.join(format!("{name}-1.{i}.0.dist-info"));
        fs::create_dir_all(&info)?;
        fs::write(
            info.join("METADATA"),
            format!("Metadata-Version: 2.1\nName: {name}\nVersion: 1.{i}.0\nSummary: x\n\nlong description\n"),
        )?;
        let mut record = String::new();
        for f in 0..40 {
            let _ = writeln!(record, "{name}/mod{f}.py,sha256=abc,100");
            let _ = writeln!(record, "{name}/__pycache__/mod{f}.cpython-311.pyc,,");
        }
        let _ = writeln!(record, "{name}/__init__.py,sha256=abc,0");
        let _ = writeln!(record, "{name}-1.{i}.0.dist-info/METADATA,,");
        let _ = writeln!(record, "{name}-1.{i}.0.dist-info/RECORD,,");
        fs::write(info.join("RECORD"), record)?;
    }
    Ok(())
}

fn main() {
    let root = std::env::temp_dir().join(format!("emberscope-prov-bench-{}", std::process::id()));
    let site = root.join("site-packages");
    if let Err(e) = make_env(&site, 100) {
        eprintln!("cannot build the fake environment: {e}");
        return;
    }
    let input = ProvenanceInput {
        site_packages: vec![site.clone()],
        stdlib_dir: "/usr/lib/python3.11".into(),
        python_version: "3.11.7".into(),
        main_package: Some("pkg007".into()),
        frozen_modules: None,
    };
    let mut times = Vec::new();
    let mut size = 0;
    for _ in 0..20 {
        let t = Instant::now();
        size = compute_json(&input).len();
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "code provenance, 100 distributions x 81 RECORD lines: first {:?}, median {:?}, max {:?}, {} bytes JSON",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        size
    );
    let _ = fs::remove_dir_all(&root);
}
