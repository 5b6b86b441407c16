//! Intake -> store -> query over loopback against an in-process server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::type_complexity
)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use emberscope_agent::synth;
use emberscope_agent::{ApiConfig, StoreOptions};
use prost::Message;

fn q(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    let r = get(addr, path);
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()
}

#[test]
fn ddtrace_upload_roundtrip_and_queries() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::default_in(dir.path());
    let a = srv.addr;
    let t0 = now_ns() - 3_600_000_000_000;
    let t0 = t0 - t0.rem_euclid(60_000_000_000);
    // version 1.0: 5 uploads, version 2.0 (slow path x8): 5 uploads.
    let mut ids = Vec::new();
    for i in 0..10 {
        let (version, slow) = if i < 5 { ("1.0", 1) } else { ("2.0", 8) };
        let (b, body) = ddtrace_upload("web-app", version, t0 + i * 60_000_000_000, slow);
        let r = post_upload(
            a,
            "/profiling/v1/input",
            &[
                ("DD-EVP-ORIGIN", "dd-trace-py"),
                (
                    "X-Datadog-Additional-Tags",
                    "host:agent-host,default_env:staging,agent_version:7.0",
                ),
                ("X-Datadog-Container-Tags", "container_name:web"),
            ],
            &b,
            &body,
        );
        assert_eq!(r.status, 200, "{}", r.text());
        ids.push(r.json()["profile_id"].as_i64().unwrap());
    }
    let from = t0 / 1_000_000_000 - 60;
    let to = t0 / 1_000_000_000 + 700;
    let range = format!("from={from}&to={to}");

    let services = q(a, "/api/services");
    let s = &services[0];
    assert_eq!(s["service"], "web-app");
    assert_eq!(s["envs"], serde_json::json!(["prod"]));
    assert_eq!(s["versions"], serde_json::json!(["1.0", "2.0"]));
    // event host tag wins over the header's host tag
    assert_eq!(s["hosts"], serde_json::json!(["synth-host"]));
    assert_eq!(s["profiles"], 10);

    let profiles = q(a, &format!("/api/profiles?service=web-app&{range}"));
    let list = profiles.as_array().unwrap();
    assert_eq!(list.len(), 10);
    assert!(list[0]["totals"]["cpu-time"].as_i64().unwrap() > 0);
    assert!(list[0]["totals"]["wall-time"].as_i64().unwrap() > 0);
    assert_eq!(list[0]["tags"]["container_name"], "web");
    assert_eq!(list[0]["tags"]["agent_version"], "7.0");
    // tag filter
    let filtered = q(
        a,
        &format!("/api/profiles?service=web-app&{range}&container_name=web&version=2.0"),
    );
    assert_eq!(filtered.as_array().unwrap().len(), 5);
    let none = q(
        a,
        &format!("/api/profiles?service=web-app&{range}&container_name=nope"),
    );
    assert_eq!(none.as_array().unwrap().len(), 0);

    let one = q(a, &format!("/api/profiles/{}", ids[0]));
    assert_eq!(one["event"]["family"], "python");
    assert_eq!(one["attachments"].as_array().unwrap().len(), 2);

    let types = q(a, &format!("/api/types?service=web-app&{range}"));
    let names: Vec<&str> = types
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"cpu-time") && names.contains(&"alloc-space"));

    let fg = q(
        a,
        &format!("/api/flamegraph?service=web-app&type=cpu-time&{range}"),
    );
    assert_eq!(fg["profiles"], 10);
    assert_eq!(fg["type"], "cpu-time");
    let root = &fg["root"];
    assert_eq!(root["name"], "root");
    assert!(root["total"].as_i64().unwrap() > 0);
    assert_eq!(root["total"], fg["total"]);
    let cp = find(root, "compute_primes").expect("compute_primes in flame graph");
    assert_eq!(cp["file"], "/srv/app/app.py");
    assert!(cp["self"].as_i64().unwrap() > 0);
    assert_eq!(cp["kind"], "user");
    let enc = find(root, "JSONEncoder.iterencode").unwrap();
    assert_eq!(enc["kind"], "stdlib");
    // worker threads do no CPU in path 2 (Session.send) -> absent from cpu-time
    assert!(find(root, "Session.send").is_none());
    let wall = q(
        a,
        &format!("/api/flamegraph?service=web-app&type=wall-time&{range}"),
    );
    let send = find(&wall["root"], "Session.send").unwrap();
    assert_eq!(send["kind"], "library");
    assert_eq!(send["lib"], "requests");
    // children totals never exceed parent's
    fn check(n: &serde_json::Value) {
        let sum: i64 = n["children"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["total"].as_i64().unwrap())
            .sum();
        assert!(sum + n["self"].as_i64().unwrap() <= n["total"].as_i64().unwrap());
        n["children"].as_array().unwrap().iter().for_each(check);
    }
    check(root);
    // bounded size
    let small = q(
        a,
        &format!("/api/flamegraph?service=web-app&type=cpu-time&{range}&max_nodes=5"),
    );
    assert!(small["nodes"].as_u64().unwrap() <= 5);
    assert_eq!(small["truncated"], true);

    let top = q(
        a,
        &format!("/api/top?service=web-app&type=cpu-time&{range}"),
    );
    let funcs = top["functions"].as_array().unwrap();
    assert!(funcs.iter().any(|f| f["name"] == "compute_primes"));
    let main = funcs.iter().find(|f| f["name"] == "main").unwrap();
    assert_eq!(main["self"], 0);
    assert!(main["total"].as_i64().unwrap() > 0);
    // sorted by self
    let selfs: Vec<i64> = funcs.iter().map(|f| f["self"].as_i64().unwrap()).collect();
    assert!(selfs.windows(2).all(|w| w[0] >= w[1]));

    // diff by version: slow_path share grows in 2.0
    let d = q(
        a,
        &format!("/api/diff?service=web-app&type=cpu-time&{range}&a_version=1.0&b_version=2.0"),
    );
    let sp = find(&d["root"], "slow_path").unwrap();
    let share_b = sp["total"].as_f64().unwrap() / d["total"].as_f64().unwrap();
    let share_a = sp["base_total"].as_f64().unwrap() / d["base_total"].as_f64().unwrap();
    assert!(share_b > share_a * 1.5, "{share_a} -> {share_b}");
    // diff by time range gives the same answer
    let mid = t0 / 1_000_000_000 + 300;
    let d2 = q(
        a,
        &format!(
            "/api/diff?service=web-app&type=cpu-time&a_from={from}&a_to={mid}&b_from={mid}&b_to={to}"
        ),
    );
    assert_eq!(d2["profiles"], 5);
    assert_eq!(d2["base_profiles"], 5);
    assert_eq!(get(a, "/api/diff?service=web-app").status, 400);

    let ts = q(
        a,
        &format!("/api/timeseries?service=web-app&type=cpu-time&{range}&step=60"),
    );
    let pts = ts["points"].as_array().unwrap();
    let nonzero = pts
        .iter()
        .filter(|p| p["value"].as_i64().unwrap() > 0)
        .count();
    assert_eq!(nonzero, 10);
    let sum: i64 = pts.iter().map(|p| p["value"].as_i64().unwrap()).sum();
    assert_eq!(sum, fg["total"].as_i64().unwrap());

    let tl = q(a, &format!("/api/timeline?profile={}", ids[0]));
    assert_eq!(tl["type"], "wall-time");
    let lanes = tl["lanes"].as_array().unwrap();
    assert_eq!(lanes.len(), 4);
    assert!(lanes.iter().any(|l| l["thread_name"] == "MainThread"));
    let ev = &lanes[0]["events"][0];
    let si = ev[2].as_u64().unwrap() as usize;
    assert!(!tl["stacks"][si].as_array().unwrap().is_empty());

    // pprof: merged selection and single upload
    for path in [
        format!("/api/pprof?service=web-app&type=cpu-time&{range}"),
        format!("/api/pprof?profile={}", ids[0]),
        format!("/api/pprof?service=web-app&{range}"),
    ] {
        let r = get(a, &path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(&r.body[..2], &[0x1f, 0x8b]);
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&r.body[..])
            .read_to_end(&mut raw)
            .unwrap();
        let p = emberscope_agent::pprof::Profile::decode(&raw[..]).unwrap();
        assert!(!p.sample.is_empty());
        if path.contains("type=cpu-time") {
            let total: i64 = p.sample.iter().map(|s| s.value[0]).sum();
            assert_eq!(total, fg["total"].as_i64().unwrap());
        }
    }

    let tags = q(a, &format!("/api/tags?service=web-app&{range}"));
    assert!(tags
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["key"] == "container_name"));

    // RFC 3339 ranges work too
    let f3339 = emberscope_agent::timeparse::format_rfc3339(from * 1_000_000_000);
    let t3339 = emberscope_agent::timeparse::format_rfc3339(to * 1_000_000_000);
    let fg2 = q(
        a,
        &format!("/api/flamegraph?service=web-app&type=cpu-time&from={f3339}&to={t3339}"),
    );
    assert_eq!(fg2["total"], fg["total"]);

    // UI is served
    let ui = get(a, "/");
    assert_eq!(ui.status, 200);
    assert!(ui.text().contains("emberscope"));
    assert_eq!(get(a, "/assets/app.js").status, 200);
    srv.stop();
}

#[test]
fn compressions_and_agentless_path() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::default_in(dir.path());
    let start = now_ns() - 120_000_000_000;
    let o = synth::SynthOptions {
        start_ns: start,
        ..Default::default()
    };
    let raw = synth::profile(&o).encode_to_vec();
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let lz4 = {
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let zst = zstd::encode_all(&raw[..], 3).unwrap();
    for (i, (name, data)) in [
        ("raw", raw.clone()),
        ("gzip", gz),
        ("lz4", lz4),
        ("zstd", zst),
    ]
    .into_iter()
    .enumerate()
    {
        let ev = synth::event_json(
            &format!("svc-{name}"),
            "dev",
            "1",
            start,
            start + 60_000_000_000,
        );
        let ev = ev.replace("\"code-provenance.json\",", "");
        let (b, body) = synth::multipart(&ev, None, &data);
        let path = if i % 2 == 0 {
            "/profiling/v1/input"
        } else {
            "/api/v2/profile"
        };
        let r = post_upload(srv.addr, path, &[], &b, &body);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
        let id = r.json()["profile_id"].as_i64().unwrap();
        let p = get(srv.addr, &format!("/api/profiles/{id}")).json();
        assert_eq!(p["attachments"][0]["encoding"], name);
        let fg = get(
            srv.addr,
            &format!("/api/flamegraph?service=svc-{name}&type=cpu-time&profile={id}"),
        )
        .json();
        assert!(fg["total"].as_i64().unwrap() > 0);
        assert_eq!(fg["provenance"], false);
    }
    srv.stop();
}

#[test]
fn tracer_traffic_is_accepted_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::default_in(dir.path());
    let a = srv.addr;
    let info = get(a, "/info").json();
    assert!(info["endpoints"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("/profiling/v1/input")));
    for (m, p) in [
        ("PUT", "/v0.4/traces"),
        ("POST", "/v0.5/traces"),
        ("POST", "/telemetry/proxy/api/v2/apmtelemetry"),
        ("POST", "/v0.7/config"),
    ] {
        let r = request(a, m, p, &[("Content-Type", "application/msgpack")], b"\x90");
        assert!((200..300).contains(&r.status), "{m} {p}: {}", r.status);
    }
    assert_eq!(get(a, "/api/services").json(), serde_json::json!([]));
    assert_eq!(get(a, "/nope").status, 404);
    srv.stop();
}

#[test]
fn bad_input_is_rejected_with_reasons_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(
        dir.path(),
        ApiConfig {
            max_body: 2 << 20,
            max_decompressed: 1 << 20,
            max_parts: 8,
            ..Default::default()
        },
        default_opts(),
    );
    let a = srv.addr;
    let start = now_ns();
    let good_ev = synth::event_json("svc", "e", "v", start, start + 1);
    let pprof = synth::profile_zstd(&synth::SynthOptions {
        samples: 50,
        ..Default::default()
    });
    let prov = synth::provenance_json();
    let cases: Vec<(&str, Vec<u8>, Option<String>, u16, &str)> = {
        let mk = |ev: &str, prov: Option<&[u8]>, pp: &[u8]| synth::multipart(ev, prov, pp);
        let mut v = Vec::new();
        let (b, body) = mk("{not json", Some(prov.as_bytes()), &pprof);
        v.push((
            "invalid event JSON",
            body,
            Some(b),
            400,
            "invalid event JSON",
        ));
        let (b, body) = mk("[1,2]", Some(prov.as_bytes()), &pprof);
        v.push(("event not object", body, Some(b), 400, "JSON object"));
        let (b, body) = mk(&good_ev, Some(prov.as_bytes()), b"\x28\xb5\x2f\xfdgarbage");
        v.push(("corrupt zstd", body, Some(b), 400, "corrupt zstd"));
        let (b, body) = mk(&good_ev, Some(prov.as_bytes()), b"\x0a\xff\xff\xff\xff\x0f");
        v.push(("corrupt pprof", body, Some(b), 400, "corrupt pprof"));
        let (b, body) = mk(&good_ev, Some(b"{oops"), &pprof);
        v.push(("bad provenance", body, Some(b), 400, "code-provenance"));
        let bomb = zstd::encode_all(&vec![0u8; 8 << 20][..], 19).unwrap();
        let (b, body) = mk(&good_ev, Some(prov.as_bytes()), &bomb);
        v.push(("zip bomb", body, Some(b), 413, "exceeds"));
        let ev_missing = good_ev.replace(
            "[\"code-provenance.json\",\"profile.pprof\"]",
            "[\"code-provenance.json\",\"profile.pprof\",\"extra.pprof\"]",
        );
        let (b, body) = mk(&ev_missing, Some(prov.as_bytes()), &pprof);
        v.push(("missing attachment", body, Some(b), 400, "extra.pprof"));
        // no event part
        let (b, body) = mk(&good_ev, Some(prov.as_bytes()), &pprof);
        let body = String::from_utf8_lossy(&body).replace("name=\"event\"", "name=\"evnt\"");
        v.push((
            "missing event",
            body.into_bytes(),
            Some(b),
            400,
            "missing `event`",
        ));
        // truncated multipart
        let (b, body) = mk(&good_ev, Some(prov.as_bytes()), &pprof);
        v.push((
            "truncated multipart",
            body[..body.len() / 2].to_vec(),
            Some(b),
            400,
            "multipart",
        ));
        // not multipart at all
        v.push(("garbage", b"hello".to_vec(), None, 400, "multipart"));
        // too many parts
        let mut body = Vec::new();
        for i in 0..20 {
            body.extend_from_slice(
                format!("--XX\r\nContent-Disposition: form-data; name=\"p{i}\"\r\n\r\nx\r\n")
                    .as_bytes(),
            );
        }
        body.extend_from_slice(b"--XX--\r\n");
        v.push((
            "too many parts",
            body,
            Some("XX".into()),
            400,
            "too many parts",
        ));
        // body over the limit
        let big = vec![7u8; 3 << 20];
        let (b, body) = mk(&good_ev, Some(prov.as_bytes()), &big);
        v.push(("body too large", body, Some(b), 413, ""));
        v
    };
    for (what, body, boundary, status, reason) in cases {
        let r = match &boundary {
            Some(b) => post_upload(a, "/profiling/v1/input", &[], b, &body),
            None => request(
                a,
                "POST",
                "/profiling/v1/input",
                &[("Content-Type", "application/octet-stream")],
                &body,
            ),
        };
        assert_eq!(r.status, status, "{what}: {}", r.text());
        assert!(r.text().contains(reason), "{what}: {}", r.text());
    }
    // Nothing partial: no profiles, no stacks, no files.
    assert_eq!(get(a, "/api/services").json(), serde_json::json!([]));
    let st = get(a, "/api/status").json();
    assert_eq!(st["profiles"], 0);
    assert_eq!(count_files(&dir.path().join("blobs")), 0);
    // And a good upload still works afterwards.
    let (b, body) = synth::multipart(&good_ev, Some(prov.as_bytes()), &pprof);
    assert_eq!(
        post_upload(a, "/profiling/v1/input", &[], &b, &body).status,
        200
    );
    assert_eq!(count_files(&dir.path().join("blobs")), 2);
    // Bad query parameters are 400s too.
    assert_eq!(get(a, "/api/flamegraph?from=yesterday").status, 400);
    assert_eq!(get(a, "/api/flamegraph?from=10&to=5").status, 400);
    assert_eq!(get(a, "/api/timeline").status, 400);
    assert_eq!(get(a, "/api/timeline?profile=999").status, 404);
    assert_eq!(get(a, "/api/profiles/abc").status, 400);
    srv.stop();
}

#[test]
fn auth_token_protects_intake_and_api() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(
        dir.path(),
        ApiConfig {
            auth_token: Some("s3cret".into()),
            ..Default::default()
        },
        default_opts(),
    );
    let a = srv.addr;
    let (b, body) = ddtrace_upload("svc", "1", now_ns(), 1);
    assert_eq!(
        post_upload(a, "/profiling/v1/input", &[], &b, &body).status,
        401
    );
    assert_eq!(
        post_upload(
            a,
            "/profiling/v1/input",
            &[("DD-API-KEY", "wrong")],
            &b,
            &body
        )
        .status,
        401
    );
    assert_eq!(
        post_upload(
            a,
            "/profiling/v1/input",
            &[("DD-API-KEY", "s3cret")],
            &b,
            &body
        )
        .status,
        200
    );
    assert_eq!(get(a, "/api/services").status, 401);
    let r = request(
        a,
        "GET",
        "/api/services",
        &[("Authorization", "Bearer s3cret")],
        b"",
    );
    assert_eq!(r.status, 200);
    // basic auth: any user, token as password ("x:s3cret")
    let r = request(
        a,
        "GET",
        "/api/services",
        &[("Authorization", "Basic eDpzM2NyZXQ=")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(get(a, "/info").status, 200);
    assert_eq!(get(a, "/").status, 200);
    srv.stop();
}

#[test]
fn retention_and_disk_cap_delete_old_data() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::start(
        dir.path(),
        ApiConfig::default(),
        StoreOptions {
            retention: Duration::from_secs(86400),
            max_disk: None,
        },
    );
    let a = srv.addr;
    let old = now_ns() - 3 * 86_400_000_000_000;
    let (b, body) = ddtrace_upload("old-svc", "1", old, 1);
    assert_eq!(
        post_upload(a, "/profiling/v1/input", &[], &b, &body).status,
        200
    );
    let (b, body) = ddtrace_upload("new-svc", "1", now_ns() - 60_000_000_000, 3);
    assert_eq!(
        post_upload(a, "/profiling/v1/input", &[], &b, &body).status,
        200
    );
    // The agent also runs maintenance by itself at start and every minute, so
    // the pass below may find that one already did the work: assert what the
    // store holds afterwards, not what this one pass deleted.
    request(a, "POST", "/api/maintain", &[], b"").json();
    assert_eq!(get(a, "/api/status").json()["profiles"], 1);
    let services = get(a, "/api/services").json();
    assert_eq!(services.as_array().unwrap().len(), 1);
    assert_eq!(services[0]["service"], "new-svc");
    assert_eq!(count_files(&dir.path().join("blobs")), 2);
    // the remaining profile still queries fine after GC
    let fg = get(
        a,
        "/api/flamegraph?service=new-svc&type=cpu-time&from=now-1d",
    )
    .json();
    assert!(find(&fg["root"], "compute_primes").is_some());
    srv.stop();

    // Disk cap: 20 uploads, cap at roughly half of what they use.
    let dir2 = tempfile::tempdir().unwrap();
    let srv = TestServer::default_in(dir2.path());
    for i in 0..20 {
        let (b, body) = ddtrace_upload("capped", "1", now_ns() - (30 - i) * 60_000_000_000, 1);
        assert_eq!(
            post_upload(srv.addr, "/profiling/v1/input", &[], &b, &body).status,
            200
        );
    }
    let used = get(srv.addr, "/api/status").json()["disk_bytes"]
        .as_u64()
        .unwrap();
    srv.stop();
    let srv = TestServer::start(
        dir2.path(),
        ApiConfig::default(),
        StoreOptions {
            retention: Duration::from_secs(86400),
            max_disk: Some(used * 6 / 10),
        },
    );
    // The start-up pass races this one; either may have done the deleting.
    let r = request(srv.addr, "POST", "/api/maintain", &[], b"").json();
    assert!(
        r["disk_bytes"].as_u64().unwrap() <= used * 6 / 10,
        "{r} vs {used}"
    );
    let status = get(srv.addr, "/api/status").json();
    assert!(status["profiles"].as_i64().unwrap() <= 16, "{status}");
    assert!(
        status["disk_bytes"].as_u64().unwrap() <= used * 6 / 10,
        "{status}"
    );
    let list = get(srv.addr, "/api/profiles?service=capped&from=now-1d").json();
    let n = list.as_array().unwrap().len();
    assert!(n < 20 && n > 0);
    // the newest survive
    let newest = list[0]["start_ns"].as_i64().unwrap();
    assert!(newest > now_ns() - 12 * 60_000_000_000);
    srv.stop();
}

#[test]
fn data_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let srv = TestServer::default_in(dir.path());
    let (b, body) = ddtrace_upload("persist", "1", now_ns() - 60_000_000_000, 1);
    let id = post_upload(srv.addr, "/profiling/v1/input", &[], &b, &body).json()["profile_id"]
        .as_i64()
        .unwrap();
    srv.stop();
    // an orphan file (as after a crash before commit) is swept at start
    let orphan_dir = dir.path().join("blobs/1999-01-01");
    std::fs::create_dir_all(&orphan_dir).unwrap();
    std::fs::write(orphan_dir.join("999-profile.pprof"), b"x").unwrap();
    let srv = TestServer::default_in(dir.path());
    let p = get(srv.addr, &format!("/api/profiles/{id}"));
    assert_eq!(p.status, 200);
    assert!(!orphan_dir.exists());
    srv.stop();
}
