//! kill -9 right after 2xx responses: every acknowledged upload survives.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn(dir: &std::path::Path, port: u16) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_emberscope-agent"))
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
            dir.to_str().unwrap(),
            "--log",
            "warn",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(addr).is_ok() {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("agent did not start");
}

#[test]
fn acknowledged_uploads_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = Vec::new();
    for round in 0..3 {
        let port = free_port();
        let mut child = spawn(dir.path(), port);
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        // Uploads from several threads at once so that group commit is exercised.
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    for i in 0..5 {
                        let start = now_ns() - (round * 100 + t * 10 + i) * 1_000_000_000;
                        let (b, body) = ddtrace_upload("durable", "1", start, 1);
                        let r = post_upload(addr, "/profiling/v1/input", &[], &b, &body);
                        assert_eq!(r.status, 200, "{}", r.text());
                        ids.push(r.json()["profile_id"].as_i64().unwrap());
                    }
                    ids
                })
            })
            .collect();
        for h in handles {
            acked.extend(h.join().unwrap());
        }
        // SIGKILL immediately after the last acknowledgement.
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let port = free_port();
    let mut child = spawn(dir.path(), port);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for id in &acked {
        let r = get(addr, &format!("/api/profiles/{id}"));
        assert_eq!(r.status, 200, "profile {id} lost after kill -9");
        let p = get(addr, &format!("/api/pprof?profile={id}"));
        assert_eq!(p.status, 200, "raw pprof of {id} lost");
    }
    let fg = get(
        addr,
        "/api/flamegraph?service=durable&type=cpu-time&from=now-1h",
    )
    .json();
    assert_eq!(fg["profiles"].as_u64().unwrap() as usize, acked.len());
    child.kill().unwrap();
    child.wait().unwrap();
}
