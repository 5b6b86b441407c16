//! The `multipart/form-data` body and headers of one profile upload.
//!
//! Parts, in order (as the reference sends them): `event`
//! (`filename="event.json"`, `Content-Type: application/json`, plain JSON),
//! then `code-provenance.json` when present and `profile.pprof`, both
//! zstd-compressed and without a part `Content-Type`. The boundary is four
//! groups of 16 hex digits joined by `-`, like libdatadog's; the closing
//! delimiter is `--boundary--\r\n`.
//!
//! Request headers: `DD-EVP-ORIGIN: emberscope`, `DD-EVP-ORIGIN-VERSION`,
//! `Content-Type: multipart/form-data; boundary=...`, and in agentless mode
//! `DD-API-KEY`. [`ApiKey`] never shows its value in `Debug` or `Display`.

use std::fmt;

use crate::event::{PPROF_ATTACHMENT, PROVENANCE_ATTACHMENT};
use crate::rng::Rng;

/// `DD-EVP-ORIGIN` value.
pub const ORIGIN: &str = "emberscope";
/// `DD-EVP-ORIGIN-VERSION` value: this crate's version.
pub const ORIGIN_VERSION: &str = env!("CARGO_PKG_VERSION");
/// `User-Agent` value.
pub const USER_AGENT: &str = concat!("emberscope/", env!("CARGO_PKG_VERSION"));

/// A Datadog API key. Its `Debug` and `Display` print `<redacted>`; the value
/// is only read to build the `DD-API-KEY` header and to redact it from
/// anything the uploader logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; `None` when it is empty or only whitespace.
    pub fn new(key: impl Into<String>) -> Option<ApiKey> {
        let key = key.into().trim().to_string();
        if key.is_empty() {
            None
        } else {
            Some(ApiKey(key))
        }
    }

    /// The key itself (for the header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the key replaced by `<redacted>`.
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.0, "<redacted>")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One part of a multipart body.
#[derive(Debug, Clone, Copy)]
pub struct Part<'a> {
    /// `name` of `Content-Disposition: form-data`.
    pub name: &'a str,
    /// `filename` of `Content-Disposition`.
    pub filename: &'a str,
    /// Part `Content-Type`, if any.
    pub content_type: Option<&'a str>,
    /// Payload.
    pub data: &'a [u8],
}

/// An encoded multipart body.
#[derive(Debug, Clone)]
pub struct Multipart {
    /// The boundary (without the leading `--`).
    pub boundary: String,
    /// The encoded body.
    pub body: Vec<u8>,
}

impl Multipart {
    /// `multipart/form-data; boundary=...`.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }
}

/// A fresh boundary: four groups of 16 hex digits joined by `-`.
pub fn new_boundary() -> String {
    let mut rng = Rng::new();
    let g: Vec<String> = (0..4).map(|_| format!("{:016x}", rng.next_u64())).collect();
    g.join("-")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Encodes `parts` in order with a boundary that occurs in none of them.
pub fn encode(parts: &[Part<'_>]) -> Multipart {
    let mut boundary = new_boundary();
    // 256 random bits: a clash is practically impossible, but cheap to rule out.
    for _ in 0..4 {
        if !parts.iter().any(|p| contains(p.data, boundary.as_bytes())) {
            break;
        }
        boundary = new_boundary();
    }
    let size: usize = parts.iter().map(|p| p.data.len() + 200).sum::<usize>() + 100;
    let mut body = Vec::with_capacity(size);
    for p in parts {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(
            format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n",
                p.name, p.filename
            )
            .as_bytes(),
        );
        if let Some(ct) = p.content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(p.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    Multipart { boundary, body }
}

/// The body of one profile upload: `event` (`event_json`), then
/// `code-provenance.json` (already zstd-compressed) when given, then
/// `profile.pprof` (already zstd-compressed).
pub fn profile_body(
    event_json: &[u8],
    provenance_zstd: Option<&[u8]>,
    pprof_zstd: &[u8],
) -> Multipart {
    let mut parts = vec![Part {
        name: "event",
        filename: "event.json",
        content_type: Some("application/json"),
        data: event_json,
    }];
    if let Some(p) = provenance_zstd {
        parts.push(Part {
            name: PROVENANCE_ATTACHMENT,
            filename: PROVENANCE_ATTACHMENT,
            content_type: None,
            data: p,
        });
    }
    parts.push(Part {
        name: PPROF_ATTACHMENT,
        filename: PPROF_ATTACHMENT,
        content_type: None,
        data: pprof_zstd,
    });
    encode(&parts)
}

/// The headers of a profile upload besides `Host`, `Content-Length` and
/// `Connection` (which the HTTP client adds): origin, origin version,
/// user agent, accept, content type and, with a key, `DD-API-KEY`.
pub fn request_headers(body: &Multipart, api_key: Option<&ApiKey>) -> Vec<(String, String)> {
    let mut h = vec![
        ("DD-EVP-ORIGIN".to_string(), ORIGIN.to_string()),
        (
            "DD-EVP-ORIGIN-VERSION".to_string(),
            ORIGIN_VERSION.to_string(),
        ),
        ("User-Agent".to_string(), USER_AGENT.to_string()),
        ("Accept".to_string(), "*/*".to_string()),
        ("Content-Type".to_string(), body.content_type()),
    ];
    if let Some(k) = api_key {
        h.push(("DD-API-KEY".to_string(), k.expose().to_string()));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundary_shape() {
        let b = new_boundary();
        let groups: Vec<&str> = b.split('-').collect();
        assert_eq!(groups.len(), 4);
        assert!(groups
            .iter()
            .all(|g| g.len() == 16 && g.chars().all(|c| c.is_ascii_hexdigit())));
        assert_ne!(b, new_boundary());
    }

    #[test]
    fn body_layout() {
        let m = profile_body(b"{}", Some(b"PROV"), b"PPROF");
        let b = &m.boundary;
        let expected = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"event\"; filename=\"event.json\"\r\n\
             Content-Type: application/json\r\n\r\n{{}}\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"code-provenance.json\"; filename=\"code-provenance.json\"\r\n\r\nPROV\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"profile.pprof\"; filename=\"profile.pprof\"\r\n\r\nPPROF\r\n\
             --{b}--\r\n"
        );
        assert_eq!(String::from_utf8_lossy(&m.body), expected);
        assert_eq!(
            m.content_type(),
            format!("multipart/form-data; boundary={b}")
        );
    }

    #[test]
    fn api_key_is_redacted() {
        let k = ApiKey::new("  abcdef0123456789 ").unwrap();
        assert_eq!(format!("{k:?} {k}"), "ApiKey(<redacted>) <redacted>");
        assert_eq!(k.redact("x abcdef0123456789 y"), "x <redacted> y");
        assert!(ApiKey::new(" ").is_none());
        let m = profile_body(b"{}", None, b"P");
        let h = request_headers(&m, Some(&k));
        assert!(h.contains(&("DD-API-KEY".to_string(), "abcdef0123456789".to_string())));
        assert!(request_headers(&m, None)
            .iter()
            .all(|(n, _)| n != "DD-API-KEY"));
    }
}
