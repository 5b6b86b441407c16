//! Turns the parts of a multipart upload into a validated [`Upload`].
//!
//! Everything here is pure (no I/O) so that it can be property-tested: any
//! byte sequence either yields an `Upload` or an [`IntakeError`] that becomes a
//! 4xx, never a panic.

use crate::decode::{self, Aggregate, DecodeError, Encoding};

/// One multipart part as received.
#[derive(Debug, Clone)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub data: Vec<u8>,
}

/// An attachment kept verbatim (still compressed as the client sent it).
#[derive(Debug, Clone)]
pub struct Attachment {
    pub name: String,
    pub encoding: Encoding,
    pub data: Vec<u8>,
}

/// A validated upload, ready to be stored.
#[derive(Debug)]
pub struct Upload {
    pub service: String,
    pub env: String,
    pub version: String,
    pub host: String,
    pub runtime_id: String,
    pub family: String,
    pub start_ns: i64,
    pub end_ns: i64,
    pub received_ns: i64,
    /// Every (key, value) tag after merging event and header tags.
    pub tags: Vec<(String, String)>,
    /// The `event` part, verbatim.
    pub event_json: String,
    pub attachments: Vec<Attachment>,
    /// Decompressed `code-provenance.json`, when uploaded.
    pub provenance: Option<String>,
    pub aggregate: Aggregate,
}

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(
        "missing `event` part (expected a multipart field named \"event\" holding event.json)"
    )]
    MissingEvent,
    #[error("invalid event JSON: {0}")]
    BadEvent(String),
    #[error("attachment {0:?} is listed in the event but missing from the request")]
    MissingAttachment(String),
    #[error("no pprof attachment in the upload")]
    NoPprof,
    #[error("attachment {name:?}: {err}")]
    Attachment { name: String, err: DecodeError },
    #[error("invalid code-provenance.json: {0}")]
    BadProvenance(String),
    #[error("decompressed upload exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("duplicate part {0:?}")]
    DuplicatePart(String),
}

/// Limits applied while building an upload.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_decompressed: u64,
}

fn is_pprof_name(name: &str) -> bool {
    name.ends_with(".pprof") || name.ends_with(".pb.gz") || name.ends_with(".pb")
}

/// Splits `a:b,c:d` (Datadog tag lists) into pairs; a bare `x` becomes (x, "").
pub fn parse_tag_list(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once(':') {
            Some((k, v)) => (k.trim().to_string(), v.trim().to_string()),
            None => (t.to_string(), String::new()),
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

fn event_tags(event: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for key in ["tags_profiler", "tags", "tags[]"] {
        match event.get(key) {
            Some(serde_json::Value::String(s)) => out.extend(parse_tag_list(s)),
            Some(serde_json::Value::Array(items)) => {
                for it in items {
                    if let serde_json::Value::String(s) = it {
                        out.extend(parse_tag_list(s));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

fn get<'a>(tags: &'a [(String, String)], key: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// Builds an upload from its parts plus the agent-style header tags
/// (`X-Datadog-Additional-Tags`, `X-Datadog-Container-Tags`, already joined).
///
/// Tag merging: event tags win; header tags fill keys the event lacks;
/// `default_env` from the headers becomes `env` when the event has none.
pub fn build_upload(
    parts: Vec<Part>,
    header_tags: &[(String, String)],
    received_ns: i64,
    limits: Limits,
) -> Result<Upload, IntakeError> {
    let mut event_part: Option<Vec<u8>> = None;
    let mut others: Vec<Part> = Vec::new();
    for p in parts {
        if p.name == "event" {
            if event_part.is_some() {
                return Err(IntakeError::DuplicatePart("event".into()));
            }
            event_part = Some(p.data);
        } else {
            if others.iter().any(|o| o.name == p.name) {
                return Err(IntakeError::DuplicatePart(p.name));
            }
            others.push(p);
        }
    }
    let event_bytes = event_part.ok_or(IntakeError::MissingEvent)?;
    let event_raw = decode::decompress(&event_bytes, limits.max_decompressed).map_err(|e| {
        IntakeError::Attachment {
            name: "event".into(),
            err: e,
        }
    })?;
    let event_json =
        String::from_utf8(event_raw).map_err(|_| IntakeError::BadEvent("not UTF-8".into()))?;
    let event: serde_json::Value =
        serde_json::from_str(&event_json).map_err(|e| IntakeError::BadEvent(e.to_string()))?;
    let serde_json::Value::Object(event) = event else {
        return Err(IntakeError::BadEvent("expected a JSON object".into()));
    };

    // Which parts are attachments: those the event lists, else every other part.
    let listed: Option<Vec<String>> = match event.get("attachments") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::Array(a)) => {
            let mut names = Vec::with_capacity(a.len());
            for v in a {
                match v {
                    serde_json::Value::String(s) => names.push(s.clone()),
                    _ => {
                        return Err(IntakeError::BadEvent(
                            "`attachments` must be an array of strings".into(),
                        ))
                    }
                }
            }
            Some(names)
        }
        Some(_) => {
            return Err(IntakeError::BadEvent(
                "`attachments` must be an array of strings".into(),
            ))
        }
    };
    let mut selected: Vec<Part> = Vec::new();
    match listed {
        Some(names) => {
            for n in names {
                let idx = others
                    .iter()
                    .position(|p| p.name == n || p.filename.as_deref() == Some(n.as_str()));
                match idx {
                    Some(i) => selected.push(others.swap_remove(i)),
                    None => return Err(IntakeError::MissingAttachment(n)),
                }
            }
        }
        None => selected = others,
    }

    let mut budget = limits.max_decompressed;
    let mut aggregate = Aggregate::default();
    let mut provenance = None;
    let mut attachments = Vec::with_capacity(selected.len());
    let mut pprofs = 0usize;
    for p in selected {
        let name = p.name.clone();
        let wrap = |err| IntakeError::Attachment {
            name: name.clone(),
            err,
        };
        let encoding = Encoding::detect(&p.data);
        if is_pprof_name(&p.name) || p.filename.as_deref().is_some_and(is_pprof_name) {
            let raw = decode::decompress(&p.data, budget).map_err(|e| match e {
                DecodeError::TooLarge(_) => IntakeError::TooLarge(limits.max_decompressed),
                other => wrap(other),
            })?;
            budget = budget.saturating_sub(raw.len() as u64);
            let prof = decode::decode_pprof(&raw).map_err(wrap)?;
            aggregate.add(&prof).map_err(wrap)?;
            pprofs += 1;
        } else if p.name == "code-provenance.json" {
            let raw = decode::decompress(&p.data, budget).map_err(|e| match e {
                DecodeError::TooLarge(_) => IntakeError::TooLarge(limits.max_decompressed),
                other => wrap(other),
            })?;
            budget = budget.saturating_sub(raw.len() as u64);
            let text = String::from_utf8(raw)
                .map_err(|_| IntakeError::BadProvenance("not UTF-8".into()))?;
            let v: serde_json::Value = serde_json::from_str(&text)
                .map_err(|e| IntakeError::BadProvenance(e.to_string()))?;
            if !v.is_object() {
                return Err(IntakeError::BadProvenance("expected a JSON object".into()));
            }
            provenance = Some(text);
        }
        attachments.push(Attachment {
            name: p.name,
            encoding,
            data: p.data,
        });
    }
    if pprofs == 0 {
        return Err(IntakeError::NoPprof);
    }

    // Tags: event first, then header tags for keys the event lacks.
    let mut tags = event_tags(&event);
    for (k, v) in header_tags {
        if k == "default_env" {
            if get(&tags, "env").is_none() {
                tags.push(("env".into(), v.clone()));
            }
            continue;
        }
        if !tags.iter().any(|(tk, _)| tk == k) {
            tags.push((k.clone(), v.clone()));
        }
    }
    let mut seen = std::collections::HashSet::new();
    tags.retain(|t| seen.insert(t.clone()));

    let family = match event.get("family") {
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => get(&tags, "language").unwrap_or("").to_string(),
    };
    let time_field = |k: &str| match event.get(k) {
        Some(serde_json::Value::String(s)) => crate::timeparse::parse_rfc3339(s),
        _ => None,
    };
    let (start_ns, end_ns) = match (time_field("start"), time_field("end")) {
        (Some(s), Some(e)) if e >= s => (s, e),
        (Some(s), Some(_)) => (s, s),
        (Some(s), None) => (s, s.max(received_ns)),
        (None, Some(e)) => (e, e),
        (None, None) if aggregate.time_nanos > 0 => (
            aggregate.time_nanos,
            aggregate
                .time_nanos
                .saturating_add(aggregate.duration_nanos.max(0)),
        ),
        (None, None) => (received_ns, received_ns),
    };

    let service = get(&tags, "service")
        .unwrap_or("unnamed-service")
        .to_string();
    let env = get(&tags, "env").unwrap_or("").to_string();
    let version = get(&tags, "version").unwrap_or("").to_string();
    let host = get(&tags, "host")
        .or_else(|| get(&tags, "hostname"))
        .unwrap_or("")
        .to_string();
    let runtime_id = get(&tags, "runtime-id").unwrap_or("").to_string();
    Ok(Upload {
        service,
        env,
        version,
        host,
        runtime_id,
        family,
        start_ns,
        end_ns,
        received_ns,
        tags,
        event_json,
        attachments,
        provenance,
        aggregate,
    })
}

/// Merged tag pairs from the agent-style headers.
pub fn header_tags(headers: &axum::http::HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in ["x-datadog-additional-tags", "x-datadog-container-tags"] {
        for v in headers.get_all(name) {
            if let Ok(s) = v.to_str() {
                out.extend(parse_tag_list(s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_lists() {
        assert_eq!(
            parse_tag_list("a:b, c:d:e,,bare"),
            vec![
                ("a".into(), "b".into()),
                ("c".into(), "d:e".into()),
                ("bare".into(), String::new())
            ]
        );
    }

    #[test]
    fn missing_event() {
        let r = build_upload(
            vec![],
            &[],
            0,
            Limits {
                max_decompressed: 1 << 20,
            },
        );
        assert!(matches!(r, Err(IntakeError::MissingEvent)));
    }
}
