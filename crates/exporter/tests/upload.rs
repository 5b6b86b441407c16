//! The uploader against real loopback agents (TCP and Unix socket) that
//! answer 200, hang, refuse, fail with 503 then recover, reject with 400 and
//! throttle with 429 + Retry-After.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use emberscope_exporter::provenance::{CodeProvenance, ProvenanceInput};
use emberscope_exporter::{ApiKey, Uploader, UploaderConfig};

const FIXTURE_EVENT: &str = include_str!("fixtures/ddtrace-4.16-event.json");

#[test]
fn delivers_the_reference_wire_format() {
    let server = Server::tcp(|_| ok());
    let warnings = Warnings::default();
    let site = TempDir::new("site");
    let info = site.path().join("requests-2.31.0.dist-info");
    std::fs::create_dir_all(&info).unwrap();
    std::fs::write(info.join("METADATA"), "Name: requests\nVersion: 2.31.0\n\n").unwrap();
    std::fs::write(info.join("RECORD"), "requests/__init__.py,,\n").unwrap();
    let mut config = fast_config(&server.url(), &warnings);
    config.provenance = Some(CodeProvenance::new(ProvenanceInput {
        site_packages: vec![site.path().to_path_buf()],
        stdlib_dir: "/usr/lib/python3.11".into(),
        python_version: "3.11.7".into(),
        main_package: None,
        frozen_modules: None,
    }));
    let uploader = Uploader::new(config).unwrap();
    let sent = upload(0);
    uploader.enqueue(sent.clone());
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(5));
    assert_eq!(report.stats.ok, 1, "{report:?} {:?}", warnings.lines());
    assert!(!report.timed_out);
    assert!(warnings.lines().is_empty(), "{:?}", warnings.lines());

    let reqs = server.captured();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.request_line, "POST /profiling/v1/input HTTP/1.1");
    assert_eq!(r.header("DD-EVP-ORIGIN"), Some("emberscope"));
    assert_eq!(
        r.header("DD-EVP-ORIGIN-VERSION"),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        r.header("Host"),
        Some(format!("127.0.0.1:{}", server.port).as_str())
    );
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(r.header("DD-API-KEY").is_none());
    assert_eq!(
        r.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap(),
        r.body.len()
    );
    let ct = r.header("Content-Type").unwrap();
    let boundary = ct.strip_prefix("multipart/form-data; boundary=").unwrap();
    let groups: Vec<&str> = boundary.split('-').collect();
    assert_eq!(groups.len(), 4);
    assert!(groups.iter().all(|g| g.len() == 16));

    // The fixture sends the same header names (case aside), plus ours.
    let fixture_headers = include_str!("fixtures/ddtrace-4.16-request-headers.txt");
    for line in fixture_headers.lines().skip(1) {
        let name = line.split(':').next().unwrap();
        if name == "user-agent" {
            continue; // ours names emberscope
        }
        assert!(r.header(name).is_some(), "missing header {name}");
    }

    // Parts: event, code-provenance.json, profile.pprof.
    let parts = r.multipart();
    assert_eq!(parts.len(), 3);
    assert_eq!(
        parts[0].disposition(),
        "Content-Disposition: form-data; name=\"event\"; filename=\"event.json\""
    );
    assert_eq!(parts[0].content_type(), Some("application/json"));
    assert_eq!(
        parts[1].disposition(),
        "Content-Disposition: form-data; name=\"code-provenance.json\"; filename=\"code-provenance.json\""
    );
    assert_eq!(parts[1].content_type(), None);
    assert_eq!(
        parts[2].disposition(),
        "Content-Disposition: form-data; name=\"profile.pprof\"; filename=\"profile.pprof\""
    );
    assert_eq!(parts[2].content_type(), None);
    for p in &parts[1..] {
        assert_eq!(&p.data[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame");
    }
    let pprof = emberscope_profile::decompress(&parts[2].data).unwrap();
    assert_eq!(pprof.as_ref(), sent.pprof.as_slice());
    emberscope_profile::decode(&parts[2].data).unwrap();
    let prov: serde_json::Value =
        serde_json::from_slice(&emberscope_profile::decompress(&parts[1].data).unwrap()).unwrap();
    let v1 = prov["v1"].as_array().unwrap();
    assert_eq!(v1[0]["name"], "stdlib");
    assert_eq!(v1[3]["name"], "requests");
    assert_eq!(
        v1[3]["paths"][0],
        site.path().join("requests").to_string_lossy().as_ref()
    );

    // event.json: the fixture's keys in the fixture's order.
    let event_text = std::str::from_utf8(&parts[0].data).unwrap();
    assert_eq!(top_level_keys(event_text), top_level_keys(FIXTURE_EVENT));
    let event: serde_json::Value = serde_json::from_str(event_text).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(FIXTURE_EVENT).unwrap();
    assert_eq!(event["attachments"], fixture["attachments"]);
    for k in ["family", "version", "process_tags"] {
        assert_eq!(event[k], fixture[k], "{k}");
    }
    let ours = event["tags_profiler"].as_str().unwrap();
    let theirs = fixture["tags_profiler"].as_str().unwrap();
    assert_eq!(tag_keys(ours), tag_keys(theirs));
    // Same values too, except the versions that are ours.
    let strip = |s: &str| -> Vec<String> {
        s.split(',')
            .filter(|t| !t.starts_with("profiler_version:"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(strip(ours), strip(theirs));
    assert_eq!(event["start"], "2026-11-24T18:36:48.605662892Z");
    assert_eq!(event["end"], "2026-11-24T18:37:48.605662892Z");
    assert_eq!(event["endpoint_counts"], serde_json::Value::Null);
    assert_eq!(event["internal"]["sample_count"], 0);
    assert_eq!(event["internal"]["upload_ok_count"], 0);
    assert_eq!(event["internal"]["upload_retry_count"], 0);
    assert_eq!(
        event["info"]["profiler"]["settings"]["api_timeout_ms"],
        10000
    );
}

#[test]
fn recovers_after_503_and_delivers_everything_in_order() {
    let server = Server::tcp(|n| if n < 3 { status(503) } else { ok() });
    let warnings = Warnings::default();
    let uploader = Uploader::new(fast_config(&server.url(), &warnings)).unwrap();
    for i in 0..5 {
        uploader.enqueue(upload(i));
    }
    let t = Instant::now();
    while uploader.stats().ok < 5 && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = uploader.stats();
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(2));
    assert_eq!(report.stats, stats);
    assert_eq!(
        (stats.ok, stats.retried, stats.dropped, stats.failed),
        (5, 3, 0, 0)
    );

    let delivered: Vec<_> = server
        .captured()
        .into_iter()
        .filter(|c| c.answered == 200)
        .collect();
    let periods: Vec<u64> = delivered.iter().map(period_of).collect();
    assert_eq!(periods, [0, 1, 2, 3, 4]);
    // Consecutive profiles tile time.
    for w in delivered.windows(2) {
        assert_eq!(w[0].event()["end"], w[1].event()["start"]);
    }
    // The three failures were all for the oldest profile.
    let failed: Vec<u64> = server
        .captured()
        .iter()
        .filter(|c| c.answered == 503)
        .map(period_of)
        .collect();
    assert_eq!(failed, [0, 0, 0]);
    // One line when it broke, one when it recovered.
    let lines = warnings.lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].contains("HTTP 503") && lines[0].contains("will retry"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("succeeded again after 3 failed"),
        "{lines:?}"
    );
}

#[test]
fn backoff_limits_attempts_against_a_failing_agent() {
    let server = Server::tcp(|_| status(503));
    let warnings = Warnings::default();
    let mut config = fast_config(&server.url(), &warnings);
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(400);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    uploader.enqueue(upload(1));
    std::thread::sleep(Duration::from_millis(2000));
    let n = server.captured().len();
    // Delays are at least half of 100, 200, 400, 400, ... ms: attempts at
    // 0, 50, 150, 350, ... 1950 ms at the most, 12 in 2 s.
    assert!((3..=12).contains(&n), "{n} attempts");
    // Only the oldest profile is tried: one request at a time, in order.
    assert!(server.captured().iter().all(|c| period_of(c) == 0));
    assert_eq!(warnings.lines().len(), 1, "{:?}", warnings.lines());
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(3));
    // Each pending profile gets one more attempt at shutdown (plus, maybe,
    // the regular retry that was on the wire when shutdown was called).
    let extra = server.captured().len() - n;
    assert!((2..=3).contains(&extra), "{extra}");
    assert_eq!(
        (report.stats.ok, report.stats.failed, report.unsent),
        (0, 2, 0)
    );
    assert!(
        warnings
            .matching("at exit: 2 profile(s) not delivered")
            .len()
            == 1
    );
}

#[test]
fn refused_connections_are_retried_and_exit_is_quick() {
    let port = closed_port();
    let warnings = Warnings::default();
    let mut config = fast_config(&format!("http://127.0.0.1:{port}"), &warnings);
    config.backoff_initial = Duration::from_millis(100);
    config.backoff_max = Duration::from_millis(400);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    std::thread::sleep(Duration::from_millis(1000));
    let retried = uploader.stats().retried;
    assert!((2..=7).contains(&retried), "{retried} retries in 1 s");
    let lines = warnings.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("cannot connect"), "{lines:?}");
    let t = Instant::now();
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(2));
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    assert_eq!((report.stats.ok, report.stats.failed), (0, 1));
}

#[test]
fn hanging_agent_never_delays_exit_past_the_deadline() {
    let server = Server::tcp(|_| Reply::Hang);
    let warnings = Warnings::default();
    let mut config = fast_config(&server.url(), &warnings);
    config.timeout = Duration::from_secs(10);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    uploader.enqueue(upload(1));
    assert!(server.wait_until(Duration::from_secs(5), |r| r.len() == 1));
    let t = Instant::now();
    let report = uploader.shutdown(t + Duration::from_millis(400));
    let took = t.elapsed();
    assert!(took >= Duration::from_millis(380), "{took:?}");
    assert!(took < Duration::from_millis(600), "{took:?}");
    assert!(report.timed_out);
    assert_eq!(report.unsent, 2);
    assert_eq!((report.stats.ok, report.stats.dropped), (0, 2));
    assert_eq!(
        warnings
            .matching("exit deadline reached: 2 profile(s)")
            .len(),
        1
    );
}

#[test]
fn each_attempt_is_bounded_by_the_timeout() {
    let server = Server::tcp(|_| Reply::Hang);
    let warnings = Warnings::default();
    let mut config = fast_config(&server.url(), &warnings);
    config.timeout = Duration::from_millis(200);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    let t = Instant::now();
    while uploader.stats().retried < 2 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = t.elapsed();
    // Two timed-out attempts of 200 ms plus one backoff of 25-50 ms.
    assert!(took >= Duration::from_millis(400), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert!(
        warnings.lines()[0].contains("timed out waiting for the response"),
        "{:?}",
        warnings.lines()
    );
    // At exit the pending profile's single attempt is bounded by the
    // timeout, well before this generous deadline.
    let t = Instant::now();
    let report = uploader.shutdown(t + Duration::from_secs(5));
    // At most the attempt in flight plus the one at exit: 2 x 200 ms.
    assert!(
        t.elapsed() < Duration::from_millis(700),
        "{:?}",
        t.elapsed()
    );
    assert!(!report.timed_out);
    assert_eq!((report.stats.failed, report.unsent), (1, 0));
}

#[test]
fn rejected_upload_logs_once_without_the_api_key() {
    const KEY: &str = "0123456789abcdef0123456789abcdef";
    let body = format!(
        "{{\"errors\":[\"Forbidden: bad key {KEY}\"]}} {}",
        "padding ".repeat(100)
    );
    let server = Server::tcp(move |_| Reply::Status(400, vec![], body.clone()));
    let warnings = Warnings::default();
    let key = ApiKey::new(KEY).unwrap();
    let mut config = UploaderConfig::agentless(
        &format!("http://127.0.0.1:{}/api/v2/profile", server.port),
        key,
        warnings.sink(),
    )
    .unwrap();
    config.backoff_initial = Duration::from_millis(20);
    assert!(!format!("{config:?}").contains(KEY));
    let uploader = Uploader::new(config).unwrap();
    assert!(!format!("{uploader:?}").contains(KEY));
    let mut u = upload(0);
    u.meta.settings = serde_json::json!({"api_key": KEY, "echo": format!("key={KEY}")});
    uploader.enqueue(u);
    assert!(server.wait_until(Duration::from_secs(5), |r| r.len() == 1));
    std::thread::sleep(Duration::from_millis(300));
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(2));
    assert_eq!(server.captured().len(), 1, "a 400 is not retried");
    assert_eq!((report.stats.failed, report.stats.retried), (1, 0));

    let r = &server.captured()[0];
    assert_eq!(r.request_line, "POST /api/v2/profile HTTP/1.1");
    assert_eq!(r.header("DD-API-KEY"), Some(KEY));
    let event_text = String::from_utf8(r.multipart()[0].data.clone()).unwrap();
    assert!(!event_text.contains(KEY), "{event_text}");

    let lines = warnings.lines();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert!(!line.contains(KEY), "{line}");
    assert!(line.contains("HTTP 400"), "{line}");
    assert!(line.contains("Forbidden: bad key <redacted>"), "{line}");
    let excerpt = line.split("Status400: ").nth(1).unwrap();
    assert!(excerpt.chars().count() <= 200, "{}", excerpt.len());
}

#[test]
fn retry_after_is_honoured() {
    let server = Server::tcp(|n| {
        if n == 0 {
            Reply::Status(429, vec![("Retry-After".into(), "1".into())], String::new())
        } else {
            ok()
        }
    });
    let warnings = Warnings::default();
    let mut config = fast_config(&server.url(), &warnings);
    config.backoff_initial = Duration::from_millis(10);
    config.backoff_max = Duration::from_secs(5);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    assert!(server.wait_until(Duration::from_secs(5), |r| r.len() == 2));
    let r = server.captured();
    let gap = r[1].at - r[0].at;
    assert!(gap >= Duration::from_millis(990), "{gap:?}");
    assert!(gap < Duration::from_millis(1500), "{gap:?}");
    assert_eq!(period_of(&r[1]), 0);
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(2));
    assert_eq!((report.stats.ok, report.stats.retried), (1, 1));
    assert!(
        warnings.lines()[0].contains("HTTP 429"),
        "{:?}",
        warnings.lines()
    );
}

#[test]
fn unix_socket_agent() {
    let dir = TempDir::new("uds");
    let path = dir.path().join("apm.socket");
    let server = Server::unix(&path, |_| ok());
    let warnings = Warnings::default();
    let uploader = Uploader::new(fast_config(&server.url(), &warnings)).unwrap();
    assert_eq!(
        uploader.endpoint_url(),
        format!("unix://{}", path.display())
    );
    uploader.enqueue(upload(0));
    uploader.enqueue(upload(1));
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(5));
    assert_eq!(report.stats.ok, 2, "{:?}", warnings.lines());
    let reqs = server.captured();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].request_line, "POST /profiling/v1/input HTTP/1.1");
    assert_eq!(reqs[0].header("Host"), Some("localhost"));
    assert_eq!(reqs.iter().map(period_of).collect::<Vec<_>>(), [0, 1]);
    assert_eq!(reqs[0].multipart().len(), 2, "no provenance configured");
    assert_eq!(
        reqs[0].event()["attachments"],
        serde_json::json!(["profile.pprof"])
    );
}

#[test]
fn full_queue_drops_the_oldest_and_delivers_the_rest_after_recovery() {
    let up = Arc::new(AtomicBool::new(false));
    let flag = up.clone();
    let server = Server::tcp(move |_| {
        if flag.load(Ordering::SeqCst) {
            ok()
        } else {
            status(503)
        }
    });
    let warnings = Warnings::default();
    let mut config = fast_config(&server.url(), &warnings);
    config.max_queue_len = 3;
    config.backoff_initial = Duration::from_millis(1500);
    config.backoff_max = Duration::from_millis(1500);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    // Wait until the first attempt failed: the worker is now backing off.
    let t = Instant::now();
    while uploader.stats().retried == 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    for i in 1..6 {
        uploader.enqueue(upload(i));
    }
    assert_eq!(uploader.queued(), 3);
    assert_eq!(uploader.stats().dropped, 3);
    up.store(true, Ordering::SeqCst);
    assert!(server.wait_until(Duration::from_secs(10), |r| {
        r.iter().filter(|c| c.answered == 200).count() == 3
    }));
    let report = uploader.shutdown(Instant::now() + Duration::from_secs(2));
    assert_eq!(
        (report.stats.ok, report.stats.dropped, report.stats.failed),
        (3, 3, 0)
    );
    let delivered: Vec<u64> = server
        .captured()
        .iter()
        .filter(|c| c.answered == 200)
        .map(period_of)
        .collect();
    assert_eq!(delivered, [3, 4, 5]);
    let drops = warnings.matching("upload queue full");
    assert_eq!(drops.len(), 3, "{:?}", warnings.lines());
    assert!(
        drops[0].contains("2026-11-24T18:36:48.605662892Z"),
        "{drops:?}"
    );
}

#[test]
fn queue_is_bounded_by_bytes_too() {
    let port = closed_port();
    let warnings = Warnings::default();
    let mut config = fast_config(&format!("http://127.0.0.1:{port}"), &warnings);
    config.backoff_initial = Duration::from_secs(5);
    config.backoff_max = Duration::from_secs(5);
    config.max_queue_bytes = 250_000;
    let uploader = Uploader::new(config).unwrap();
    let big = |i| {
        let mut u = upload(i);
        u.pprof = vec![0u8; 100_000];
        u
    };
    uploader.enqueue(big(0));
    let t = Instant::now();
    while uploader.stats().retried == 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    for i in 1..5 {
        uploader.enqueue(big(i));
    }
    assert_eq!(uploader.queued(), 2);
    assert_eq!(uploader.stats().dropped, 3);
    // One profile larger than the bound is still accepted on its own.
    let mut huge = upload(9);
    huge.pprof = vec![0u8; 1_000_000];
    uploader.enqueue(huge);
    assert_eq!(uploader.queued(), 1);
    drop(uploader);
}

#[cfg(feature = "tls")]
#[test]
fn https_endpoints_speak_tls() {
    use std::io::Read;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = std::thread::spawn(move || {
        let (mut c, _) = listener.accept().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 5];
        c.read_exact(&mut buf).unwrap();
        buf
    });
    let warnings = Warnings::default();
    let mut config = fast_config(&format!("https://127.0.0.1:{port}"), &warnings);
    config.backoff_initial = Duration::from_secs(5);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    let hello = seen.join().unwrap();
    assert_eq!(hello[0], 0x16, "TLS handshake record");
    assert_eq!(hello[1], 0x03);
    let t = Instant::now();
    while uploader.stats().retried == 0 && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(uploader.stats().retried, 1);
    drop(uploader);
}

#[test]
fn drop_without_shutdown_does_not_wait() {
    let server = Server::tcp(|_| Reply::Hang);
    let warnings = Warnings::default();
    let mut config = fast_config(&server.url(), &warnings);
    config.timeout = Duration::from_secs(30);
    let uploader = Uploader::new(config).unwrap();
    uploader.enqueue(upload(0));
    assert!(server.wait_until(Duration::from_secs(5), |r| r.len() == 1));
    let t = Instant::now();
    drop(uploader);
    assert!(t.elapsed() < Duration::from_millis(100));
}

/// In a forked child the inherited uploader is forgotten and a new one
/// works; the parent's keeps working.
#[test]
fn forked_child_starts_a_fresh_uploader() {
    let server = Server::tcp(|_| ok());
    let url = server.url();
    let warnings = Warnings::default();
    let parent = Uploader::new(fast_config(&url, &warnings)).unwrap();
    parent.enqueue(upload(0));
    assert!(server.wait_until(Duration::from_secs(5), |r| r.len() == 1));

    // SAFETY: the child only runs the code below and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            parent.forget_after_fork();
            let sink: emberscope_exporter::WarnSink = Arc::new(|_: &str| {});
            let mut config = UploaderConfig::agent(&url, sink).unwrap();
            config.timeout = Duration::from_secs(5);
            let child = Uploader::new(config).unwrap();
            let mut u = upload(1);
            u.meta.pid = std::process::id();
            u.meta.process_type = Some("worker".into());
            child.enqueue(u);
            let report = child.shutdown(Instant::now() + Duration::from_secs(5));
            i32::from(report.stats.ok != 1)
        }))
        .unwrap_or(2);
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    let t = Instant::now();
    loop {
        // SAFETY: waiting for our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            break;
        }
        if t.elapsed() > Duration::from_secs(15) {
            // SAFETY: killing our own stuck child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("child did not finish");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "status {status}"
    );

    parent.enqueue(upload(2));
    let report = parent.shutdown(Instant::now() + Duration::from_secs(5));
    assert_eq!(report.stats.ok, 2);
    let reqs = server.captured();
    assert_eq!(reqs.len(), 3);
    let child_req = reqs.iter().find(|c| period_of(c) == 1).unwrap();
    let tags = child_req.event()["tags_profiler"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(tags.contains(&format!("process_id:{pid},")), "{tags}");
    assert!(tags.contains(",process_type:worker,"), "{tags}");
}
