//! A small blocking HTTP/1.1 client for one kind of request: a `POST` with a
//! `Content-Length` body and `Connection: close`, over TCP (`http://`), TLS
//! (`https://`, rustls with the bundled Mozilla roots plus the system store;
//! cargo feature `tls`) or a Unix domain socket (`unix:///path`).
//!
//! Every attempt is bounded by one deadline that covers name resolution
//! (done on a helper thread so a hanging resolver cannot hold the caller),
//! connect, TLS handshake, sending and reading the response: each socket
//! operation gets the time that is left. An [`AbortHandle`] lets another
//! thread cut an attempt short by shutting its socket down.
//!
//! Only the status line and headers are read for a success; for other
//! statuses at most [`BODY_EXCERPT_MAX`] bytes of the body are read (plain,
//! `Content-Length` or chunked) for the log line. Redirects are not
//! followed. Errors name the endpoint URL (never credentials or headers).

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use emberscope_sync::Mutex;

/// Path of the agent's profiling endpoint, appended to an agent URL.
pub const AGENT_PROFILE_PATH: &str = "/profiling/v1/input";
/// Most response-body bytes kept for an error excerpt.
pub const BODY_EXCERPT_MAX: usize = 4096;
/// Largest accepted response head (status line and headers).
const MAX_HEAD: usize = 32 * 1024;
/// Bytes handed to one `write` call, so the deadline is rechecked often.
const WRITE_CHUNK: usize = 64 * 1024;
/// Longest wait for an error body after the head arrived.
const BODY_WAIT: Duration = Duration::from_secs(2);
/// Name lookups allowed to run at once (a hung resolver keeps its thread).
const MAX_PENDING_LOOKUPS: usize = 4;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The URL cannot be used.
    #[error("invalid endpoint URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, credentials removed.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `https://` needs the `tls` feature.
    #[error("cannot use {url}: this build has no TLS support")]
    TlsUnavailable {
        /// The endpoint.
        url: String,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// Host name.
        host: String,
        /// Resolver message.
        reason: String,
    },
    /// The connection could not be established.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The endpoint.
        url: String,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// The deadline passed.
    #[error("timed out {phase} ({url})")]
    Timeout {
        /// The endpoint.
        url: String,
        /// What was going on, e.g. `waiting for the response`.
        phase: &'static str,
    },
    /// A socket error after connecting.
    #[error("I/O error {phase} ({url}): {source}")]
    Io {
        /// The endpoint.
        url: String,
        /// What was going on.
        phase: &'static str,
        /// OS error.
        #[source]
        source: io::Error,
    },
    /// TLS setup or handshake failed.
    #[error("TLS error with {url}: {reason}")]
    Tls {
        /// The endpoint.
        url: String,
        /// rustls message.
        reason: String,
    },
    /// The peer did not answer with valid HTTP.
    #[error("invalid HTTP response from {url}: {reason}")]
    BadResponse {
        /// The endpoint.
        url: String,
        /// What was wrong.
        reason: &'static str,
    },
    /// [`AbortHandle::abort`] was called.
    #[error("request to {url} aborted")]
    Aborted {
        /// The endpoint.
        url: String,
    },
}

impl HttpError {
    /// Whether trying again later can help (everything but configuration
    /// errors).
    pub fn is_retryable(&self) -> bool {
        !matches!(
            self,
            HttpError::InvalidUrl { .. } | HttpError::TlsUnavailable { .. }
        )
    }

    /// Whether the deadline passed.
    pub fn is_timeout(&self) -> bool {
        matches!(self, HttpError::Timeout { .. })
    }
}

/// A response: status, headers and (for non-2xx) a body excerpt.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: String,
    /// Headers in order, names as sent.
    pub headers: Vec<(String, String)>,
    /// Up to [`BODY_EXCERPT_MAX`] bytes of the body; empty for 2xx.
    pub body: Vec<u8>,
}

impl Response {
    /// First header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

enum SockClone {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl SockClone {
    fn shutdown(&self) {
        let _ = match self {
            SockClone::Tcp(s) => s.shutdown(Shutdown::Both),
            SockClone::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

#[derive(Default)]
struct AbortInner {
    aborted: AtomicBool,
    sock: Mutex<Option<SockClone>>,
}

/// Lets another thread end the request in progress (and refuse later
/// ones): [`abort`](Self::abort) shuts the socket down, so a blocked read or
/// write returns at once. Cloning shares the handle.
#[derive(Clone, Default)]
pub struct AbortHandle(Arc<AbortInner>);

impl fmt::Debug for AbortHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AbortHandle")
            .field("aborted", &self.is_aborted())
            .finish()
    }
}

impl AbortHandle {
    /// A handle that has not been aborted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Ends the current request and makes every later one fail with
    /// [`HttpError::Aborted`].
    pub fn abort(&self) {
        self.0.aborted.store(true, Ordering::SeqCst);
        if let Some(s) = self.0.sock.lock().take() {
            s.shutdown();
        }
    }

    /// Whether [`abort`](Self::abort) was called.
    pub fn is_aborted(&self) -> bool {
        self.0.aborted.load(Ordering::SeqCst)
    }

    /// Remembers the socket of the current request; `false` (and the socket
    /// shut down) if the handle was aborted meanwhile.
    fn register(&self, s: SockClone) -> bool {
        let mut slot = self.0.sock.lock();
        if self.is_aborted() {
            s.shutdown();
            return false;
        }
        *slot = Some(s);
        true
    }

    fn clear(&self) {
        self.0.sock.lock().take();
    }
}

/// Drops the registered socket clone when a request ends, so the
/// connection really closes.
struct ClearOnDrop<'a>(&'a AbortHandle);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.clear();
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Http { host: String, port: u16 },
    Https { host: String, port: u16 },
    Unix(PathBuf),
}

/// Where uploads go: a parsed `http://`, `https://` or `unix://` URL plus
/// the request path. Credentials in the URL are dropped.
#[derive(Clone)]
pub struct Endpoint {
    target: Target,
    host_header: String,
    path: String,
    url: String,
    #[cfg(feature = "tls")]
    tls: Arc<std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>>,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Endpoint").field(&self.url).finish()
    }
}

fn invalid(url: &str, reason: &'static str) -> HttpError {
    HttpError::InvalidUrl {
        url: crate::git::strip_url_credentials(url),
        reason,
    }
}

fn parse_authority(
    url: &str,
    authority: &str,
    default_port: u16,
) -> Result<(String, u16), HttpError> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| invalid(url, "unclosed '[' in host"))?;
        let port = match after {
            "" => None,
            p => Some(
                p.strip_prefix(':')
                    .ok_or_else(|| invalid(url, "junk after ']'"))?,
            ),
        };
        (h.to_string(), port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => {
                if p.contains(':') {
                    return Err(invalid(url, "IPv6 hosts must be in brackets"));
                }
                (h.to_string(), Some(p))
            }
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() {
        return Err(invalid(url, "empty host"));
    }
    let port = match port {
        None | Some("") => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| invalid(url, "bad port"))?,
    };
    if port == 0 {
        return Err(invalid(url, "bad port"));
    }
    Ok((host, port))
}

impl Endpoint {
    /// An agent: `http://host:port`, `https://...` or `unix:///path.sock`;
    /// requests go to the URL's path plus [`AGENT_PROFILE_PATH`].
    pub fn agent(url: &str) -> Result<Endpoint, HttpError> {
        Self::parse(url, true)
    }

    /// A full intake URL used as it is, e.g.
    /// `https://intake.profile.datadoghq.com/api/v2/profile` (agentless).
    /// A `unix://` URL gets [`AGENT_PROFILE_PATH`].
    pub fn intake(url: &str) -> Result<Endpoint, HttpError> {
        Self::parse(url, false)
    }

    fn parse(raw: &str, agent: bool) -> Result<Endpoint, HttpError> {
        let url = raw.trim();
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid(url, "expected http://, https:// or unix://"))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme == "unix" {
            if !rest.starts_with('/') {
                return Err(invalid(url, "unix socket path must be absolute"));
            }
            return Ok(Endpoint {
                target: Target::Unix(PathBuf::from(rest)),
                host_header: "localhost".to_string(),
                path: AGENT_PROFILE_PATH.to_string(),
                url: format!("unix://{rest}"),
                #[cfg(feature = "tls")]
                tls: Default::default(),
            });
        }
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(invalid(url, "expected http://, https:// or unix://")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = parse_authority(url, authority, default_port)?;
        let tail = tail.split('#').next().unwrap_or("");
        let path = if agent {
            let base = tail.split('?').next().unwrap_or("").trim_end_matches('/');
            format!("{base}{AGENT_PROFILE_PATH}")
        } else if tail.is_empty() {
            "/".to_string()
        } else if tail.starts_with('?') {
            format!("/{tail}")
        } else {
            tail.to_string()
        };
        if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(url, "spaces or control characters in path"));
        }
        let host_fmt = if host.contains(':') {
            format!("[{host}]")
        } else {
            host.clone()
        };
        let host_header = if port == default_port {
            host_fmt.clone()
        } else {
            format!("{host_fmt}:{port}")
        };
        let url = format!("{scheme}://{host_header}{path}");
        let target = if scheme == "https" {
            Target::Https { host, port }
        } else {
            Target::Http { host, port }
        };
        Ok(Endpoint {
            target,
            host_header,
            path,
            url,
            #[cfg(feature = "tls")]
            tls: Default::default(),
        })
    }

    /// The full request URL, without credentials (for logs).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request path (with query, if any).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether this is an `https://` endpoint.
    pub fn is_https(&self) -> bool {
        matches!(self.target, Target::Https { .. })
    }

    /// Whether this is a `unix://` endpoint.
    pub fn is_unix(&self) -> bool {
        matches!(self.target, Target::Unix(_))
    }

    fn timeout(&self, phase: &'static str) -> HttpError {
        HttpError::Timeout {
            url: self.url.clone(),
            phase,
        }
    }

    fn io(&self, phase: &'static str, e: io::Error, abort: &AbortHandle) -> HttpError {
        if abort.is_aborted() {
            HttpError::Aborted {
                url: self.url.clone(),
            }
        } else if matches!(
            e.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ) {
            self.timeout(phase)
        } else {
            HttpError::Io {
                url: self.url.clone(),
                phase,
                source: e,
            }
        }
    }

    /// Sends `POST {path}` with `headers` (plus `Host`, `Content-Length`
    /// and `Connection: close`) and `body`, and reads the response, all by
    /// `deadline`.
    pub fn post(
        &self,
        headers: &[(String, String)],
        body: &[u8],
        deadline: Instant,
        abort: &AbortHandle,
    ) -> Result<Response, HttpError> {
        if abort.is_aborted() {
            return Err(HttpError::Aborted {
                url: self.url.clone(),
            });
        }
        let _clear = ClearOnDrop(abort);
        let mut conn = self.connect(deadline, abort)?;

        let mut head = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\n",
            self.path, self.host_header
        );
        for (name, value) in headers {
            let clean = |s: &str| s.replace(['\r', '\n'], " ");
            head.push_str(&clean(name));
            head.push_str(": ");
            head.push_str(&clean(value));
            head.push_str("\r\n");
        }
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));

        let sent = self
            .write_all(&mut conn, head.as_bytes(), deadline, abort)
            .and_then(|()| self.write_all(&mut conn, body, deadline, abort))
            .and_then(|()| {
                conn.flush()
                    .map_err(|e| self.io("sending the request", e, abort))
            });
        match sent {
            Ok(()) => self.read_response(&mut conn, deadline, abort),
            Err(e @ (HttpError::Timeout { .. } | HttpError::Aborted { .. })) => Err(e),
            // The server may have answered early (e.g. 413) and closed.
            Err(e) => self.read_response(&mut conn, deadline, abort).or(Err(e)),
        }
    }

    fn connect(&self, deadline: Instant, abort: &AbortHandle) -> Result<Conn, HttpError> {
        match &self.target {
            Target::Unix(path) => {
                let s = connect_unix(path, deadline).map_err(|e| {
                    if e.kind() == io::ErrorKind::TimedOut {
                        self.timeout("connecting")
                    } else {
                        HttpError::Connect {
                            url: self.url.clone(),
                            source: e,
                        }
                    }
                })?;
                if let Ok(c) = s.try_clone() {
                    if !abort.register(SockClone::Unix(c)) {
                        return Err(HttpError::Aborted {
                            url: self.url.clone(),
                        });
                    }
                }
                Ok(Conn::Unix(s))
            }
            Target::Http { host, port } => {
                Ok(Conn::Tcp(self.connect_tcp(host, *port, deadline, abort)?))
            }
            Target::Https { host, port } => self.connect_tls(host, *port, deadline, abort),
        }
    }

    fn connect_tcp(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
        abort: &AbortHandle,
    ) -> Result<TcpStream, HttpError> {
        let addrs = resolve(host, port, deadline).map_err(|e| match e {
            ResolveError::Timeout => self.timeout("resolving the host name"),
            ResolveError::Failed(reason) => HttpError::Resolve {
                host: host.to_string(),
                reason,
            },
        })?;
        let mut last: Option<io::Error> = None;
        for addr in addrs {
            if abort.is_aborted() {
                return Err(HttpError::Aborted {
                    url: self.url.clone(),
                });
            }
            let Some(left) = remaining(deadline) else {
                return Err(self.timeout("connecting"));
            };
            match TcpStream::connect_timeout(&addr, left) {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    if let Ok(c) = s.try_clone() {
                        if !abort.register(SockClone::Tcp(c)) {
                            return Err(HttpError::Aborted {
                                url: self.url.clone(),
                            });
                        }
                    }
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        match last {
            Some(e) if e.kind() == io::ErrorKind::TimedOut => Err(self.timeout("connecting")),
            Some(e) => Err(HttpError::Connect {
                url: self.url.clone(),
                source: e,
            }),
            None => Err(HttpError::Resolve {
                host: host.to_string(),
                reason: "no addresses".to_string(),
            }),
        }
    }

    #[cfg(not(feature = "tls"))]
    fn connect_tls(
        &self,
        _host: &str,
        _port: u16,
        _deadline: Instant,
        _abort: &AbortHandle,
    ) -> Result<Conn, HttpError> {
        Err(HttpError::TlsUnavailable {
            url: self.url.clone(),
        })
    }

    #[cfg(feature = "tls")]
    fn connect_tls(
        &self,
        host: &str,
        port: u16,
        deadline: Instant,
        abort: &AbortHandle,
    ) -> Result<Conn, HttpError> {
        let tls_err = |reason: String| HttpError::Tls {
            url: self.url.clone(),
            reason,
        };
        let config = self
            .tls
            .get_or_init(build_tls_config)
            .clone()
            .map_err(tls_err)?;
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| tls_err(e.to_string()))?;
        let conn =
            rustls::ClientConnection::new(config, name).map_err(|e| tls_err(e.to_string()))?;
        let sock = self.connect_tcp(host, port, deadline, abort)?;
        let mut stream = rustls::StreamOwned::new(conn, sock);
        while stream.conn.is_handshaking() {
            let Some(left) = remaining(deadline) else {
                return Err(self.timeout("in the TLS handshake"));
            };
            let _ = stream.sock.set_read_timeout(Some(left));
            let _ = stream.sock.set_write_timeout(Some(left));
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                if e.kind() == io::ErrorKind::InvalidData {
                    return Err(tls_err(e.to_string()));
                }
                return Err(self.io("in the TLS handshake", e, abort));
            }
        }
        Ok(Conn::Tls(Box::new(stream)))
    }

    fn write_all(
        &self,
        conn: &mut Conn,
        mut buf: &[u8],
        deadline: Instant,
        abort: &AbortHandle,
    ) -> Result<(), HttpError> {
        while !buf.is_empty() {
            let Some(left) = remaining(deadline) else {
                return Err(self.timeout("sending the request"));
            };
            conn.set_timeouts(left)
                .map_err(|e| self.io("sending the request", e, abort))?;
            let n = buf.len().min(WRITE_CHUNK);
            match conn.write(&buf[..n]) {
                Ok(0) => {
                    return Err(self.io(
                        "sending the request",
                        io::Error::from(io::ErrorKind::WriteZero),
                        abort,
                    ))
                }
                Ok(k) => buf = &buf[k..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.io("sending the request", e, abort)),
            }
        }
        Ok(())
    }

    /// Reads more bytes into `buf`; `Ok(0)` at end of stream.
    fn read_more(
        &self,
        conn: &mut Conn,
        buf: &mut Vec<u8>,
        deadline: Instant,
        abort: &AbortHandle,
        phase: &'static str,
    ) -> Result<usize, HttpError> {
        let mut chunk = [0u8; 8192];
        loop {
            let Some(left) = remaining(deadline) else {
                return Err(self.timeout(phase));
            };
            conn.set_timeouts(left)
                .map_err(|e| self.io(phase, e, abort))?;
            match conn.read(&mut chunk) {
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A TLS peer closing without close_notify.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(self.io(phase, e, abort)),
            }
        }
    }

    fn read_response(
        &self,
        conn: &mut Conn,
        deadline: Instant,
        abort: &AbortHandle,
    ) -> Result<Response, HttpError> {
        let bad = |reason| HttpError::BadResponse {
            url: self.url.clone(),
            reason,
        };
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        loop {
            let head_end = loop {
                if let Some(i) = find(&buf, b"\r\n\r\n") {
                    break i + 4;
                }
                if buf.len() > MAX_HEAD {
                    return Err(bad("response header too large"));
                }
                let n =
                    self.read_more(conn, &mut buf, deadline, abort, "waiting for the response")?;
                if n == 0 {
                    return Err(bad(if buf.is_empty() {
                        "connection closed without a response"
                    } else {
                        "connection closed in the response header"
                    }));
                }
            };
            let rest = buf.split_off(head_end);
            let head = String::from_utf8_lossy(&buf).into_owned();
            buf = rest;
            let mut lines = head.split("\r\n");
            let status_line = lines.next().unwrap_or("");
            let mut words = status_line.splitn(3, ' ');
            let version = words.next().unwrap_or("");
            if !version.starts_with("HTTP/1.") {
                return Err(bad("not an HTTP/1.x status line"));
            }
            let status: u16 = words
                .next()
                .and_then(|s| s.parse().ok())
                .filter(|s| (100..1000).contains(s))
                .ok_or_else(|| bad("bad status code"))?;
            let reason = words.next().unwrap_or("").trim().to_string();
            let headers: Vec<(String, String)> = lines
                .filter(|l| !l.is_empty())
                .filter_map(|l| l.split_once(':'))
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                .collect();
            if (100..200).contains(&status) {
                continue; // interim response
            }
            let mut response = Response {
                status,
                reason,
                headers,
                body: Vec::new(),
            };
            if !(200..300).contains(&status) {
                response.body = self.read_excerpt(conn, buf, &response, deadline, abort);
            }
            return Ok(response);
        }
    }

    /// Best effort: whatever body arrives within [`BODY_WAIT`], at most
    /// [`BODY_EXCERPT_MAX`] bytes, de-chunked.
    fn read_excerpt(
        &self,
        conn: &mut Conn,
        mut raw: Vec<u8>,
        response: &Response,
        deadline: Instant,
        abort: &AbortHandle,
    ) -> Vec<u8> {
        let deadline = deadline.min(Instant::now() + BODY_WAIT);
        let chunked = response
            .header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let length: Option<usize> = response
            .header("content-length")
            .and_then(|v| v.trim().parse().ok());
        loop {
            let done = raw.len() >= BODY_EXCERPT_MAX
                || length.is_some_and(|l| raw.len() >= l)
                || (chunked && (raw.starts_with(b"0\r\n") || find(&raw, b"\r\n0\r\n").is_some()))
                || (!chunked && length == Some(0));
            if done {
                break;
            }
            match self.read_more(conn, &mut raw, deadline, abort, "reading the response body") {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        let mut body = if chunked { dechunk(&raw) } else { raw };
        if let Some(l) = length {
            body.truncate(l);
        }
        body.truncate(BODY_EXCERPT_MAX);
        body
    }
}

/// The payload of a (possibly incomplete) chunked body.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = find(raw, b"\r\n") {
        let size_str = String::from_utf8_lossy(&raw[..eol]);
        let size_str = size_str.split(';').next().unwrap_or("").trim();
        let Ok(size) = usize::from_str_radix(size_str, 16) else {
            break;
        };
        if size == 0 {
            break;
        }
        raw = &raw[eol + 2..];
        let take = size.min(raw.len());
        out.extend_from_slice(&raw[..take]);
        if take < size || raw.len() < size.saturating_add(2) {
            break;
        }
        raw = &raw[size + 2..];
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn remaining(deadline: Instant) -> Option<Duration> {
    let now = Instant::now();
    (deadline > now).then(|| deadline - now)
}

#[cfg(feature = "tls")]
fn build_tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    // The system store too (private CAs, SSL_CERT_FILE); errors ignored.
    let native = rustls_native_certs::load_native_certs();
    let _ = roots.add_parsable_certificates(native.certs);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

enum ResolveError {
    Timeout,
    Failed(String),
}

/// Resolves `host` on a helper thread so a hung resolver costs at most the
/// time left before `deadline`.
fn resolve(host: &str, port: u16, deadline: Instant) -> Result<Vec<SocketAddr>, ResolveError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    static PENDING: AtomicUsize = AtomicUsize::new(0);
    if PENDING.fetch_add(1, Ordering::SeqCst) >= MAX_PENDING_LOOKUPS {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        return Err(ResolveError::Failed(
            "earlier name lookups are still pending".to_string(),
        ));
    }
    let (tx, rx) = mpsc::channel();
    let name = host.to_string();
    let spawned = std::thread::Builder::new()
        .name("emberscope-dns".to_string())
        .spawn(move || {
            let r = (name.as_str(), port)
                .to_socket_addrs()
                .map(|it| it.collect::<Vec<_>>());
            PENDING.fetch_sub(1, Ordering::SeqCst);
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        PENDING.fetch_sub(1, Ordering::SeqCst);
        return Err(ResolveError::Failed(format!("cannot start lookup: {e}")));
    }
    let Some(left) = remaining(deadline) else {
        return Err(ResolveError::Timeout);
    };
    match rx.recv_timeout(left) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(ResolveError::Failed("no addresses".to_string())),
        Ok(Err(e)) => Err(ResolveError::Failed(e.to_string())),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(ResolveError::Timeout),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err(ResolveError::Failed("lookup thread failed".to_string()))
        }
    }
}

/// Connects a Unix stream socket without blocking past `deadline` (a
/// blocking `connect` waits indefinitely when the listener's backlog is
/// full; non-blocking it fails with `EAGAIN`, reported as an error).
fn connect_unix(path: &Path, deadline: Instant) -> io::Result<UnixStream> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;

    let bytes = path.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "unix socket path too long or contains NUL",
        ));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh socket we own; UnixStream closes it on drop.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    // SAFETY: addr is a valid sockaddr_un and the length is its size.
    let rc = unsafe {
        libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(err);
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        loop {
            let Some(left) = remaining(deadline) else {
                return Err(io::Error::from(io::ErrorKind::TimedOut));
            };
            let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
            // SAFETY: pfd is a valid pollfd for the duration of the call.
            let r = unsafe { libc::poll(&mut pfd, 1, ms) };
            if r > 0 {
                break;
            }
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    #[cfg(feature = "tls")]
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Conn {
    fn set_timeouts(&self, d: Duration) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.set_read_timeout(Some(d))?;
                s.set_write_timeout(Some(d))
            }
            Conn::Unix(s) => {
                s.set_read_timeout(Some(d))?;
                s.set_write_timeout(Some(d))
            }
            #[cfg(feature = "tls")]
            Conn::Tls(s) => {
                s.sock.set_read_timeout(Some(d))?;
                s.sock.set_write_timeout(Some(d))
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
            #[cfg(feature = "tls")]
            Conn::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_urls() {
        let e = Endpoint::agent("http://127.0.0.1:8126").unwrap();
        assert_eq!(e.url(), "http://127.0.0.1:8126/profiling/v1/input");
        assert_eq!(e.host_header, "127.0.0.1:8126");
        let e = Endpoint::agent("HTTP://user:secret@agent:8126/prefix/").unwrap();
        assert_eq!(e.url(), "http://agent:8126/prefix/profiling/v1/input");
        assert!(!format!("{e:?}").contains("secret"));
        let e = Endpoint::agent("http://[::1]:8126").unwrap();
        assert_eq!(e.host_header, "[::1]:8126");
        assert_eq!(
            e.target,
            Target::Http {
                host: "::1".into(),
                port: 8126
            }
        );
        let e = Endpoint::agent("unix:///var/run/datadog/apm.socket").unwrap();
        assert!(e.is_unix());
        assert_eq!(e.url(), "unix:///var/run/datadog/apm.socket");
        assert_eq!(e.path(), AGENT_PROFILE_PATH);
        let e = Endpoint::agent("http://localhost").unwrap();
        assert_eq!(e.host_header, "localhost");
        for bad in [
            "localhost:8126",
            "ftp://x",
            "http://",
            "http://h:99999",
            "unix://rel",
            "http://::1:80",
        ] {
            assert!(Endpoint::agent(bad).is_err(), "{bad}");
        }
        let err = Endpoint::agent("ftp://u:pw@x").unwrap_err().to_string();
        assert!(!err.contains("pw"), "{err}");
    }

    #[test]
    fn intake_urls() {
        let e = Endpoint::intake("https://intake.profile.datadoghq.eu/api/v2/profile").unwrap();
        assert!(e.is_https());
        assert_eq!(e.path(), "/api/v2/profile");
        assert_eq!(e.host_header, "intake.profile.datadoghq.eu");
        assert_eq!(
            e.url(),
            "https://intake.profile.datadoghq.eu/api/v2/profile"
        );
        let e = Endpoint::intake("http://127.0.0.1:9/x?y=1#frag").unwrap();
        assert_eq!(e.path(), "/x?y=1");
    }

    #[test]
    fn chunked_bodies() {
        assert_eq!(
            dechunk(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(dechunk(b"5;ext=1\r\nhel"), b"hel");
        assert_eq!(dechunk(b"zz\r\n"), b"");
    }
}
