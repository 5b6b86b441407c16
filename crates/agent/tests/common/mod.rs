//! Shared helpers: an in-process server and a minimal blocking HTTP/1.1 client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use emberscope_agent::{ApiConfig, Server, StoreOptions};

pub struct TestServer {
    pub addr: SocketAddr,
    pub rt: tokio::runtime::Runtime,
    pub server: Option<Server>,
}

impl TestServer {
    pub fn start(dir: &Path, api: ApiConfig, opts: StoreOptions) -> TestServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(Server::start(
                "127.0.0.1:0".parse().unwrap(),
                dir,
                opts,
                api,
            ))
            .unwrap();
        TestServer {
            addr: server.addr,
            rt,
            server: Some(server),
        }
    }

    pub fn default_in(dir: &Path) -> TestServer {
        Self::start(dir, ApiConfig::default(), default_opts())
    }

    pub fn stop(mut self) {
        if let Some(s) = self.server.take() {
            self.rt.block_on(s.stop());
        }
    }
}

pub fn default_opts() -> StoreOptions {
    StoreOptions {
        retention: Duration::from_secs(7 * 86400),
        max_disk: None,
    }
}

pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {} body not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    // The server may answer (e.g. 413) before reading everything.
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Resp {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let n = usize::from_str_radix(std::str::from_utf8(&rest[..nl]).unwrap().trim(), 16)
                .unwrap();
            rest = &rest[nl + 2..];
            if n == 0 {
                break;
            }
            out.extend_from_slice(&rest[..n]);
            rest = &rest[n + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, path: &str) -> Resp {
    request(addr, "GET", path, &[], b"")
}

pub fn post_upload(
    addr: SocketAddr,
    path: &str,
    extra_headers: &[(&str, &str)],
    boundary: &str,
    body: &[u8],
) -> Resp {
    let ct = format!("multipart/form-data; boundary={boundary}");
    let mut h: Vec<(&str, &str)> = vec![("Content-Type", ct.as_str())];
    h.extend_from_slice(extra_headers);
    request(addr, "POST", path, &h, body)
}

/// A ddtrace-shaped upload for `service`/`version` covering `[start, start+60s)`.
pub fn ddtrace_upload(service: &str, version: &str, start_ns: i64, slow: u64) -> (String, Vec<u8>) {
    let o = emberscope_agent::synth::SynthOptions {
        seed: start_ns as u64 ^ slow,
        start_ns,
        slow_weight: slow,
        ..Default::default()
    };
    let pprof = emberscope_agent::synth::profile_zstd(&o);
    let ev = emberscope_agent::synth::event_json(
        service,
        "prod",
        version,
        start_ns,
        start_ns + o.duration_ns,
    );
    let prov = zstd::encode_all(emberscope_agent::synth::provenance_json().as_bytes(), 1).unwrap();
    emberscope_agent::synth::multipart(&ev, Some(&prov), &pprof)
}

pub fn now_ns() -> i64 {
    emberscope_agent::timeparse::now_ns()
}

/// Recursively finds a node by name in a flame graph tree.
pub fn find<'a>(n: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    if n["name"] == name {
        return Some(n);
    }
    n["children"].as_array()?.iter().find_map(|c| find(c, name))
}

pub fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                n += count_files(&e.path());
            } else {
                n += 1;
            }
        }
    }
    n
}
