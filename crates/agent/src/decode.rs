//! Decompression (detected by magic bytes) and pprof decoding into the
//! de-duplicated frame/stack/sample shape the store keeps.

use std::collections::HashMap;
use std::io::Read;

use prost::Message;

use crate::pprof;

/// Why an attachment could not be decoded. Every variant maps to a 4xx.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("decompressed size exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("corrupt {codec} stream: {msg}")]
    Codec { codec: &'static str, msg: String },
    #[error("corrupt pprof: {0}")]
    Pprof(String),
}

/// Compression detected from the first bytes of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Zstd,
    Lz4,
    Raw,
}

impl Encoding {
    pub fn detect(data: &[u8]) -> Self {
        if data.starts_with(&[0x1f, 0x8b]) {
            Encoding::Gzip
        } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Encoding::Zstd
        } else if data.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
            Encoding::Lz4
        } else {
            Encoding::Raw
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Zstd => "zstd",
            Encoding::Lz4 => "lz4",
            Encoding::Raw => "raw",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "gzip" => Encoding::Gzip,
            "zstd" => Encoding::Zstd,
            "lz4" => Encoding::Lz4,
            _ => Encoding::Raw,
        }
    }
}

fn read_limited<R: Read>(
    reader: R,
    limit: u64,
    codec: &'static str,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let mut taken = reader.take(limit.saturating_add(1));
    taken
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Codec {
            codec,
            msg: e.to_string(),
        })?;
    if out.len() as u64 > limit {
        return Err(DecodeError::TooLarge(limit));
    }
    Ok(out)
}

/// Decompresses `data` (gzip, zstd, LZ4 frame or raw, by magic bytes) without
/// ever producing more than `limit` bytes (zip-bomb guard).
pub fn decompress(data: &[u8], limit: u64) -> Result<Vec<u8>, DecodeError> {
    match Encoding::detect(data) {
        Encoding::Gzip => read_limited(flate2::read::MultiGzDecoder::new(data), limit, "gzip"),
        Encoding::Zstd => {
            let dec = zstd::stream::read::Decoder::new(data).map_err(|e| DecodeError::Codec {
                codec: "zstd",
                msg: e.to_string(),
            })?;
            read_limited(dec, limit, "zstd")
        }
        Encoding::Lz4 => read_limited(lz4_flex::frame::FrameDecoder::new(data), limit, "lz4"),
        Encoding::Raw => {
            if data.len() as u64 > limit {
                return Err(DecodeError::TooLarge(limit));
            }
            Ok(data.to_vec())
        }
    }
}

/// Decodes a raw (already decompressed) pprof protobuf.
pub fn decode_pprof(raw: &[u8]) -> Result<pprof::Profile, DecodeError> {
    pprof::Profile::decode(raw).map_err(|e| DecodeError::Pprof(e.to_string()))
}

/// One de-duplicated frame: function name, file, line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub name: String,
    pub file: String,
    pub line: i64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// 64-bit FNV-1a of arbitrary bytes (as i64, the SQLite integer type).
pub fn hash_bytes(b: &[u8]) -> i64 {
    fnv(FNV_OFFSET, b) as i64
}

/// Content hash of a frame: the same (name, file, line) has the same id in
/// every upload and every store, so ids never need translating.
pub fn frame_id(f: &Frame) -> i64 {
    let mut h = fnv(FNV_OFFSET, f.name.as_bytes());
    h = fnv(h, &[0]);
    h = fnv(h, f.file.as_bytes());
    h = fnv(h, &[0]);
    h = fnv(h, &f.line.to_le_bytes());
    h as i64
}

/// Content hash of a stack (frame ids, leaf first).
pub fn stack_id(frames: &[i64]) -> i64 {
    let mut h = FNV_OFFSET;
    for f in frames {
        h = fnv(h, &f.to_le_bytes());
    }
    // Keep a visible difference between the empty stack and everything else.
    fnv(h, &(frames.len() as u64).to_le_bytes()) as i64
}

/// Frames of a stack as stored in the `stacks.frames` blob: i64 LE, leaf first.
pub fn encode_stack(frames: &[i64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(frames.len() * 8);
    for f in frames {
        out.extend_from_slice(&f.to_le_bytes());
    }
    out
}

pub fn decode_stack(blob: &[u8]) -> Vec<i64> {
    blob.chunks_exact(8)
        .map(|c| {
            let mut b = [0u8; 8];
            b.copy_from_slice(c);
            i64::from_le_bytes(b)
        })
        .collect()
}

/// An upload's samples, aggregated per (type, stack).
#[derive(Debug, Default)]
pub struct Aggregate {
    /// Sample types as (name, unit), indexed by `type_idx` below.
    pub types: Vec<(String, String)>,
    pub frames: HashMap<i64, Frame>,
    pub stacks: HashMap<i64, Vec<i64>>,
    /// (type index, stack id) -> summed value; zero values are not kept.
    pub samples: HashMap<(usize, i64), i64>,
    /// Sum of every value per type index.
    pub totals: Vec<i64>,
    pub sample_count: u64,
    pub time_nanos: i64,
    pub duration_nanos: i64,
}

struct Strings<'a>(&'a [String]);

impl<'a> Strings<'a> {
    fn get(&self, idx: i64) -> Result<&'a str, DecodeError> {
        usize::try_from(idx)
            .ok()
            .and_then(|i| self.0.get(i))
            .map(String::as_str)
            .ok_or_else(|| DecodeError::Pprof(format!("string index {idx} out of range")))
    }
}

/// Resolves pprof locations into de-duplicated frames.
pub struct Resolver<'a> {
    strings: Strings<'a>,
    /// location id -> frame ids (leaf first; several when lines are inlined)
    locations: HashMap<u64, Vec<(i64, Frame)>>,
}

impl<'a> Resolver<'a> {
    pub fn new(p: &'a pprof::Profile) -> Result<Self, DecodeError> {
        let strings = Strings(&p.string_table);
        if let Some(first) = p.string_table.first() {
            if !first.is_empty() {
                return Err(DecodeError::Pprof("string_table[0] must be empty".into()));
            }
        }
        let mut functions: HashMap<u64, (&str, &str)> = HashMap::with_capacity(p.function.len());
        for f in &p.function {
            let name = strings.get(f.name)?;
            let name = if name.is_empty() {
                strings.get(f.system_name)?
            } else {
                name
            };
            functions.insert(f.id, (name, strings.get(f.filename)?));
        }
        let mut mappings: HashMap<u64, &str> = HashMap::new();
        for m in &p.mapping {
            mappings.insert(m.id, strings.get(m.filename)?);
        }
        let mut locations = HashMap::with_capacity(p.location.len());
        for loc in &p.location {
            let mut frames = Vec::with_capacity(loc.line.len().max(1));
            if loc.line.is_empty() {
                let file = mappings.get(&loc.mapping_id).copied().unwrap_or("");
                let f = Frame {
                    name: format!("0x{:x}", loc.address),
                    file: file.to_string(),
                    line: 0,
                };
                frames.push((frame_id(&f), f));
            }
            for line in &loc.line {
                let (name, file) = functions.get(&line.function_id).copied().ok_or_else(|| {
                    DecodeError::Pprof(format!(
                        "location {} references unknown function {}",
                        loc.id, line.function_id
                    ))
                })?;
                let f = Frame {
                    name: if name.is_empty() {
                        "<unknown function>".to_string()
                    } else {
                        name.to_string()
                    },
                    file: file.to_string(),
                    line: line.line,
                };
                frames.push((frame_id(&f), f));
            }
            locations.insert(loc.id, frames);
        }
        Ok(Resolver { strings, locations })
    }

    pub fn string(&self, idx: i64) -> Result<&'a str, DecodeError> {
        self.strings.get(idx)
    }

    /// Frames of a sample, leaf first.
    pub fn frames(&self, location_ids: &[u64]) -> Result<Vec<&(i64, Frame)>, DecodeError> {
        let mut out = Vec::with_capacity(location_ids.len());
        for id in location_ids {
            let frames = self.locations.get(id).ok_or_else(|| {
                DecodeError::Pprof(format!("sample references unknown location {id}"))
            })?;
            out.extend(frames.iter());
        }
        Ok(out)
    }
}

impl Aggregate {
    fn type_index(&mut self, name: &str, unit: &str) -> usize {
        if let Some(i) = self.types.iter().position(|(n, u)| n == name && u == unit) {
            return i;
        }
        self.types.push((name.to_string(), unit.to_string()));
        self.totals.push(0);
        self.types.len() - 1
    }

    /// Adds one decoded pprof to the aggregate (an upload may carry several).
    pub fn add(&mut self, p: &pprof::Profile) -> Result<(), DecodeError> {
        let resolver = Resolver::new(p)?;
        let mut type_map = Vec::with_capacity(p.sample_type.len());
        for st in &p.sample_type {
            let name = resolver.string(st.r#type)?;
            let unit = resolver.string(st.unit)?;
            type_map.push(self.type_index(name, unit));
        }
        if self.time_nanos == 0 || (p.time_nanos != 0 && p.time_nanos < self.time_nanos) {
            self.time_nanos = p.time_nanos;
        }
        self.duration_nanos = self.duration_nanos.max(p.duration_nanos);
        let mut stack_cache: HashMap<&[u64], i64> = HashMap::new();
        for s in &p.sample {
            if s.value.len() != type_map.len() {
                return Err(DecodeError::Pprof(format!(
                    "sample has {} values but the profile declares {} sample types",
                    s.value.len(),
                    type_map.len()
                )));
            }
            for l in &s.label {
                resolver.string(l.key)?;
                resolver.string(l.str)?;
            }
            self.sample_count += 1;
            if s.value.iter().all(|v| *v == 0) {
                continue;
            }
            let sid = match stack_cache.get(s.location_id.as_slice()) {
                Some(id) => *id,
                None => {
                    let frames = resolver.frames(&s.location_id)?;
                    let ids: Vec<i64> = frames.iter().map(|(id, _)| *id).collect();
                    let sid = stack_id(&ids);
                    for (id, f) in frames {
                        self.frames.entry(*id).or_insert_with(|| f.clone());
                    }
                    self.stacks.entry(sid).or_insert(ids);
                    stack_cache.insert(s.location_id.as_slice(), sid);
                    sid
                }
            };
            for (i, v) in s.value.iter().enumerate() {
                if *v == 0 {
                    continue;
                }
                let t = type_map[i];
                let e = self.samples.entry((t, sid)).or_insert(0);
                *e = e.saturating_add(*v);
                self.totals[t] = self.totals[t].saturating_add(*v);
            }
        }
        Ok(())
    }
}
