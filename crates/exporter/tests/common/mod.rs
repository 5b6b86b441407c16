//! Loopback capture servers (TCP and Unix socket) with scripted answers,
//! a multipart parser and helpers shared by the upload tests. Every server
//! thread stops when the server is dropped, and after 60 s at the latest.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use emberscope_exporter::{EventMeta, ProfileUpload, UploaderConfig, WarnSink};
use emberscope_profile::{Frame, Label, ProfileBuilder, SampleType};

/// Longest a server thread lives.
const SERVER_LIFETIME: Duration = Duration::from_secs(60);

/// What the server does with request number `n` (0-based).
#[derive(Debug, Clone)]
pub enum Reply {
    /// Status, extra headers, body.
    Status(u16, Vec<(String, String)>, String),
    /// Keep the connection open without answering until the server stops.
    Hang,
    /// Close the connection without answering.
    Close,
}

pub fn ok() -> Reply {
    Reply::Status(200, vec![], "{}".into())
}

pub fn status(code: u16) -> Reply {
    Reply::Status(code, vec![], String::new())
}

/// One captured request.
#[derive(Debug, Clone)]
pub struct Captured {
    /// When the full request had arrived.
    pub at: Instant,
    pub request_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status answered (0 for hang/close).
    pub answered: u16,
}

impl Captured {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn multipart(&self) -> Vec<Part> {
        let ct = self.header("content-type").unwrap();
        let boundary = ct.split("boundary=").nth(1).unwrap();
        parse_multipart(&self.body, boundary)
    }

    /// `event.json` of the request.
    pub fn event(&self) -> serde_json::Value {
        let parts = self.multipart();
        serde_json::from_slice(&parts[0].data).unwrap()
    }
}

type Behaviour = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

pub struct Server {
    pub port: u16,
    pub socket_path: Option<PathBuf>,
    pub requests: Arc<Mutex<Vec<Captured>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

trait Conn: Read + Write + Send {}
impl<T: Read + Write + Send> Conn for T {}

/// Request line, headers, body.
type Request = (String, Vec<(String, String)>, Vec<u8>);

fn read_request(conn: &mut dyn Conn) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let n = conn.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some((request_line, headers, body))
}

fn handle(
    conn: &mut dyn Conn,
    behaviour: &Behaviour,
    requests: &Mutex<Vec<Captured>>,
    stop: &AtomicBool,
) {
    let Some((request_line, headers, body)) = read_request(conn) else {
        return;
    };
    let n = requests.lock().unwrap().len();
    let reply = behaviour(n);
    let answered = match &reply {
        Reply::Status(s, _, _) => *s,
        _ => 0,
    };
    requests.lock().unwrap().push(Captured {
        at: Instant::now(),
        request_line,
        headers,
        body,
        answered,
    });
    match reply {
        Reply::Status(code, extra, body) => {
            let mut out = format!(
                "HTTP/1.1 {code} Status{code}\r\nContent-Length: {}\r\nConnection: close\r\n",
                body.len()
            );
            for (k, v) in extra {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            let _ = conn.write_all(out.as_bytes());
            let _ = conn.flush();
        }
        Reply::Hang => {
            let t = Instant::now();
            while !stop.load(Ordering::SeqCst) && t.elapsed() < SERVER_LIFETIME {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Reply::Close => {}
    }
}

impl Server {
    /// A TCP server on 127.0.0.1 (ephemeral port).
    pub fn tcp(behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let behaviour: Behaviour = Arc::new(behaviour);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let born = Instant::now();
            while !s.load(Ordering::SeqCst) && born.elapsed() < SERVER_LIFETIME {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        handle(&mut c, &behaviour, &r, &s);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            port,
            socket_path: None,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// A Unix-socket server at `path`.
    pub fn unix(path: &Path, behaviour: impl Fn(usize) -> Reply + Send + Sync + 'static) -> Server {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).unwrap();
        listener.set_nonblocking(true).unwrap();
        let behaviour: Behaviour = Arc::new(behaviour);
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let born = Instant::now();
            while !s.load(Ordering::SeqCst) && born.elapsed() < SERVER_LIFETIME {
                match listener.accept() {
                    Ok((mut c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                        handle(&mut c, &behaviour, &r, &s);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Server {
            port: 0,
            socket_path: Some(path.to_path_buf()),
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        match &self.socket_path {
            Some(p) => format!("unix://{}", p.display()),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn captured(&self) -> Vec<Captured> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits until `pred(captured)` holds, at most `timeout`.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&[Captured]) -> bool) -> bool {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if pred(&self.captured()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        pred(&self.captured())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// A 127.0.0.1 port with nothing listening.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// One multipart part.
#[derive(Debug, Clone)]
pub struct Part {
    pub headers: Vec<String>,
    pub data: Vec<u8>,
}

impl Part {
    pub fn disposition(&self) -> &str {
        self.headers
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with("content-disposition:"))
            .map(String::as_str)
            .unwrap_or("")
    }

    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.to_ascii_lowercase().starts_with("content-type:"))
            .map(|h| h["content-type:".len()..].trim())
    }
}

/// Strict parser: every part delimited by `--boundary\r\n`, headers
/// separated by CRLF, data followed by CRLF, closing `--boundary--\r\n`.
pub fn parse_multipart(body: &[u8], boundary: &str) -> Vec<Part> {
    let delim = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| -> Option<usize> {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    assert!(body.starts_with(format!("{delim}\r\n").as_bytes()));
    assert!(body.ends_with(format!("\r\n{delim}--\r\n").as_bytes()));
    let mut parts = Vec::new();
    let mut pos = delim.len() + 2;
    loop {
        let head_end = find(body, b"\r\n\r\n", pos).unwrap();
        let headers: Vec<String> = String::from_utf8_lossy(&body[pos..head_end])
            .split("\r\n")
            .map(str::to_string)
            .collect();
        let data_start = head_end + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), data_start).unwrap();
        parts.push(Part {
            headers,
            data: body[data_start..next].to_vec(),
        });
        pos = next + 2 + delim.len();
        if body[pos..].starts_with(b"--\r\n") {
            assert_eq!(pos + 4, body.len());
            break;
        }
        assert!(body[pos..].starts_with(b"\r\n"));
        pos += 2;
    }
    parts
}

/// Top-level keys of a JSON object, in document order.
pub fn top_level_keys(json: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut depth = 0i32;
    let mut in_str = false;
    let mut esc = false;
    let mut cur = String::new();
    let mut last_str: Option<String> = None;
    for c in json.chars() {
        if in_str {
            if esc {
                esc = false;
                cur.push(c);
            } else if c == '\\' {
                esc = true;
            } else if c == '"' {
                in_str = false;
                last_str = Some(std::mem::take(&mut cur));
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            ':' if depth == 1 => {
                if let Some(k) = last_str.take() {
                    keys.push(k);
                }
            }
            _ => {
                if !c.is_whitespace() {
                    last_str = None;
                }
            }
        }
    }
    keys
}

/// Keys of a `tags_profiler` string, in order.
pub fn tag_keys(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(|t| t.split(':').next().unwrap().to_string())
        .collect()
}

/// Warnings captured by a sink.
#[derive(Clone, Default)]
pub struct Warnings(pub Arc<Mutex<Vec<String>>>);

impl Warnings {
    pub fn sink(&self) -> WarnSink {
        let v = self.0.clone();
        Arc::new(move |m: &str| v.lock().unwrap().push(m.to_string()))
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn matching(&self, needle: &str) -> Vec<String> {
        self.lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }
}

/// A config for `url` with fast test timings.
pub fn fast_config(url: &str, warnings: &Warnings) -> UploaderConfig {
    let mut c = UploaderConfig::agent(url, warnings.sink()).unwrap();
    c.timeout = Duration::from_secs(5);
    c.backoff_initial = Duration::from_millis(50);
    c.backoff_max = Duration::from_millis(200);
    c
}

pub fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_545_408)
}

/// Raw pprof bytes with one sample whose leaf line is `marker`.
pub fn pprof(marker: i64) -> Vec<u8> {
    let start = t0();
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
        &[Label::num("thread id", 1)],
        None,
    );
    emberscope_profile::encode(&b.build(start + Duration::from_secs(60)))
}

/// A meta shaped like the fixture's upload, for period `i` (60 s periods
/// tiling from [`t0`]).
pub fn meta(i: u32) -> EventMeta {
    let mut m = EventMeta::new("421a6c478d31466f8f05078cdf84f834", "3.11.7", "0.1.0", 11800);
    m.service = Some("my-web-app".into());
    m.env = Some("prod".into());
    m.version = Some("1.0.3".into());
    m.profiler_config = "stack_v2_lock_mem_heap_exp_dd_CAP1.0_MAXF64".into();
    m.tags = vec![
        ("team".into(), "perf".into()),
        ("region".into(), "eu".into()),
        ("ptag".into(), "pval".into()),
    ];
    m.start = t0() + Duration::from_nanos(605_662_892) + Duration::from_secs(60 * u64::from(i));
    m.end = m.start + Duration::from_secs(60);
    m.process_tags = Some(
        "entrypoint.basedir:ddtrace,entrypoint.name:workload,entrypoint.type:script,entrypoint.workdir:ddtrace,svc.user:true".into(),
    );
    m.internal = serde_json::json!({"sample_count": i, "period": i});
    m.settings =
        serde_json::json!({"enabled": true, "upload_interval": 60.0, "api_timeout_ms": 10000});
    m
}

pub fn upload(i: u32) -> ProfileUpload {
    ProfileUpload {
        pprof: pprof(i64::from(i) + 10),
        meta: meta(i),
    }
}

/// `period` from the `internal` of a captured request.
pub fn period_of(c: &Captured) -> u64 {
    c.event()["internal"]["period"].as_u64().unwrap()
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "emberscope-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
