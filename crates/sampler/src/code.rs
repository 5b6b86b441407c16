//! Cache of decoded code objects, keyed by address.
//!
//! A code object seen before costs one slice of a batched `read_many` (its
//! header fields are copied again and compared with the cached snapshot: type,
//! size, first line, and the name/qualname/filename/line-table pointers), so a
//! freed code object whose address was reused by another is re-decoded rather
//! than reported under the old name. The cache is bounded: when full, the
//! least recently used half is evicted.

use std::collections::HashMap;
use std::sync::Arc;

use crate::linetable::{line_for, LineFormat};
use crate::memory::MemoryReader;
use crate::strings::{self, StrLayout, MAX_LINETABLE_BYTES, MAX_NAME_CHARS};
use crate::FuncInfo;

/// Default number of code objects kept.
pub const DEFAULT_CAPACITY: usize = 8192;

/// Field offsets of `PyCodeObject` for one version.
#[derive(Debug, Clone, Copy)]
pub struct CodeLayout {
    /// `ob_type`.
    pub ob_type: usize,
    /// 3.11+: `ob_size` (code units of `co_code_adaptive`).
    pub ob_size: Option<usize>,
    /// `co_firstlineno` (C int).
    pub firstlineno: usize,
    /// `co_filename`.
    pub filename: usize,
    /// `co_name`.
    pub name: usize,
    /// 3.11+: `co_qualname`.
    pub qualname: Option<usize>,
    /// `co_lnotab` (3.8/3.9) or `co_linetable` (3.10+).
    pub linetable: usize,
    /// ≤3.10: `co_code` (a bytes object).
    pub co_code: Option<usize>,
    /// 3.11+: `_co_firsttraceable` (C int).
    pub firsttraceable: Option<usize>,
    /// 3.11+: `co_code_adaptive` (inline bytecode).
    pub code_adaptive: Option<usize>,
    /// Which line-table decoder applies.
    pub line_format: LineFormat,
    /// ≤3.10: `f_lasti` counts code units (3.10) rather than bytes (3.8/3.9).
    pub lasti_in_units: bool,
}

impl CodeLayout {
    fn fields(&self) -> impl Iterator<Item = usize> + '_ {
        [
            Some(self.ob_type),
            self.ob_size,
            Some(self.firstlineno),
            Some(self.filename),
            Some(self.name),
            self.qualname,
            Some(self.linetable),
            self.co_code,
            self.firsttraceable,
        ]
        .into_iter()
        .flatten()
    }

    /// First byte of the header range we copy per code object.
    fn header_start(&self) -> usize {
        self.fields().min().unwrap_or(0)
    }

    /// Length of the header range (all fields are at most 8 bytes wide).
    fn header_len(&self) -> usize {
        self.fields().max().unwrap_or(0) + 8 - self.header_start()
    }
}

/// The identity of a code object as seen in its header; equal snapshots at the
/// same address are taken to be the same object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Snapshot {
    ob_type: usize,
    ob_size: i64,
    firstlineno: i32,
    filename: usize,
    name: usize,
    qualname: usize,
    linetable: usize,
    co_code: usize,
    firsttraceable: i32,
}

fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_ne_bytes(a))
}

fn i32_at(buf: &[u8], off: usize) -> Option<i32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(i32::from_ne_bytes(a))
}

impl Snapshot {
    fn parse(l: &CodeLayout, hdr: &[u8]) -> Option<Snapshot> {
        let base = l.header_start();
        let w = |off: usize| u64_at(hdr, off - base);
        let opt_w = |off: Option<usize>| match off {
            Some(o) => w(o),
            None => Some(0),
        };
        Some(Snapshot {
            ob_type: w(l.ob_type)? as usize,
            ob_size: opt_w(l.ob_size)? as i64,
            firstlineno: i32_at(hdr, l.firstlineno - base)?,
            filename: w(l.filename)? as usize,
            name: w(l.name)? as usize,
            qualname: opt_w(l.qualname)? as usize,
            linetable: w(l.linetable)? as usize,
            co_code: opt_w(l.co_code)? as usize,
            firsttraceable: match l.firsttraceable {
                Some(o) => i32_at(hdr, o - base)?,
                None => 0,
            },
        })
    }
}

/// A decoded code object.
#[derive(Debug)]
pub struct CodeEntry {
    snap: Snapshot,
    /// Names and first line, shared with every frame that reports it.
    pub info: Arc<FuncInfo>,
    /// Exclusive upper bound of a valid `lasti` (in the version's unit).
    pub lasti_limit: i64,
    /// 3.11+: index of the first traceable instruction (code units).
    pub firsttraceable: i64,
    firstlineno: i32,
    linetable: Box<[u8]>,
    last_used: u64,
    memo: Option<(i64, u32)>,
}

impl CodeEntry {
    /// Line number for `lasti` (0 when the table has none).
    pub fn line(&mut self, format: LineFormat, lasti: i64) -> u32 {
        if let Some((l, line)) = self.memo {
            if l == lasti {
                return line;
            }
        }
        let line = line_for(format, &self.linetable, self.firstlineno, lasti)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        self.memo = Some((lasti, line));
        line
    }
}

/// Addresses of the type objects that checks compare against.
#[derive(Debug, Clone, Copy)]
pub struct TypeAddrs {
    /// `PyCode_Type`.
    pub code: usize,
    /// `PyUnicode_Type`.
    pub unicode: usize,
    /// `PyBytes_Type`.
    pub bytes: usize,
}

/// Counters of the cache, for telemetry and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheStats {
    /// Lookups answered by a validated entry.
    pub hits: u64,
    /// Code objects decoded.
    pub misses: u64,
    /// Entries dropped because the address now holds something else.
    pub invalidated: u64,
    /// Entries evicted for space.
    pub evicted: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct CodeCache {
    layout: CodeLayout,
    strs: StrLayout,
    types: TypeAddrs,
    map: HashMap<usize, CodeEntry>,
    capacity: usize,
    epoch: u64,
    stats: CacheStats,
    hdr_buf: Vec<u8>,
}

impl CodeCache {
    /// An empty cache holding at most `capacity` code objects.
    pub fn new(layout: CodeLayout, strs: StrLayout, types: TypeAddrs, capacity: usize) -> Self {
        CodeCache {
            layout,
            strs,
            types,
            map: HashMap::new(),
            capacity: capacity.max(16),
            epoch: 0,
            stats: CacheStats::default(),
            hdr_buf: Vec::new(),
        }
    }

    /// Counters since construction.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }

    /// Number of cached code objects.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The validated entry for `addr` (call [`CodeCache::resolve`] first).
    pub fn get_mut(&mut self, addr: usize) -> Option<&mut CodeEntry> {
        self.map.get_mut(&addr)
    }

    /// Makes sure every address in `addrs` has a fresh, validated entry: copies
    /// all their headers in one vectored read, then re-decodes only those
    /// whose snapshot changed. `valid[i]` tells whether `addrs[i]` is a code
    /// object now.
    pub fn resolve(&mut self, reader: &MemoryReader, addrs: &[usize], valid: &mut Vec<bool>) {
        self.epoch += 1;
        valid.clear();
        valid.resize(addrs.len(), false);
        let start = self.layout.header_start();
        let len = self.layout.header_len();
        self.hdr_buf.clear();
        self.hdr_buf.resize(addrs.len() * len, 0);
        let mut read_ok = vec![true; addrs.len()];
        {
            let mut reqs: Vec<(usize, &mut [u8])> = addrs
                .iter()
                .zip(self.hdr_buf.chunks_exact_mut(len))
                .map(|(a, b)| (a.wrapping_add(start), b))
                .collect();
            if reader.read_many(&mut reqs).is_err() {
                // Find out which ones failed.
                for (i, (a, b)) in reqs.iter_mut().enumerate() {
                    if reader.read(*a, b).is_err() {
                        if let Some(ok) = read_ok.get_mut(i) {
                            *ok = false;
                        }
                    }
                }
            }
        }
        for (i, &addr) in addrs.iter().enumerate() {
            if !read_ok.get(i).copied().unwrap_or(false) {
                continue;
            }
            let snap = match self
                .hdr_buf
                .get(i * len..(i + 1) * len)
                .and_then(|h| Snapshot::parse(&self.layout, h))
            {
                Some(s) => s,
                None => continue,
            };
            if snap.ob_type != self.types.code {
                if self.map.remove(&addr).is_some() {
                    self.stats.invalidated += 1;
                }
                continue;
            }
            let epoch = self.epoch;
            if let Some(e) = self.map.get_mut(&addr) {
                if e.snap == snap {
                    e.last_used = epoch;
                    self.stats.hits += 1;
                    if let Some(v) = valid.get_mut(i) {
                        *v = true;
                    }
                    continue;
                }
                self.stats.invalidated += 1;
            }
            self.map.remove(&addr);
            if let Some(entry) = self.decode(reader, snap) {
                self.stats.misses += 1;
                if self.map.len() >= self.capacity {
                    self.evict();
                }
                self.map.insert(addr, entry);
                if let Some(v) = valid.get_mut(i) {
                    *v = true;
                }
            }
        }
    }

    fn decode(&self, reader: &MemoryReader, snap: Snapshot) -> Option<CodeEntry> {
        let l = &self.layout;
        let s = &self.strs;
        let t = &self.types;
        let name_addr = if l.qualname.is_some() {
            snap.qualname
        } else {
            snap.name
        };
        let name = strings::read_str(reader, s, t.unicode, name_addr, MAX_NAME_CHARS).ok()?;
        let filename =
            strings::read_str(reader, s, t.unicode, snap.filename, MAX_NAME_CHARS).ok()?;
        let linetable =
            strings::read_bytes(reader, s, t.bytes, snap.linetable, MAX_LINETABLE_BYTES).ok()?;
        let lasti_limit = if l.ob_size.is_some() {
            snap.ob_size
        } else {
            let n = strings::bytes_len(reader, s, t.bytes, snap.co_code).ok()?;
            if l.lasti_in_units {
                n / 2
            } else {
                n
            }
        };
        if lasti_limit < 0 {
            return None;
        }
        Some(CodeEntry {
            snap,
            info: Arc::new(FuncInfo {
                name,
                filename,
                firstlineno: u32::try_from(snap.firstlineno).unwrap_or(0),
            }),
            lasti_limit,
            firsttraceable: i64::from(snap.firsttraceable),
            firstlineno: snap.firstlineno,
            linetable: linetable.into_boxed_slice(),
            last_used: self.epoch,
            memo: None,
        })
    }

    /// Drops the least recently used half (everything if all are equally old).
    fn evict(&mut self) {
        let mut ages: Vec<u64> = self.map.values().map(|e| e.last_used).collect();
        let mid = ages.len() / 2;
        let cut = match ages.get(mid) {
            Some(_) => *ages.select_nth_unstable(mid).1,
            None => 0,
        };
        let before = self.map.len();
        self.map.retain(|_, e| e.last_used > cut);
        if self.map.len() >= self.capacity {
            self.map.clear();
        }
        self.stats.evicted += (before - self.map.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CODE_T: usize = 0x7000_0000;
    const STR_T: usize = 0x7100_0000;
    const BYTES_T: usize = 0x7200_0000;

    fn strs() -> StrLayout {
        StrLayout {
            ob_type: 8,
            length: 16,
            state: 32,
            ascii_size: 40,
            compact_size: 56,
            data_ptr: 56,
            kind_shift: 2,
            kind_mask: 7,
            compact_bit: 5,
            ascii_bit: 6,
            bytes_size: 16,
            bytes_sval: 32,
        }
    }

    /// The 3.12 code layout (values from the generated table).
    fn code312() -> CodeLayout {
        CodeLayout {
            ob_type: 8,
            ob_size: Some(16),
            firstlineno: 68,
            filename: 112,
            name: 120,
            qualname: Some(128),
            linetable: 136,
            co_code: None,
            firsttraceable: Some(184),
            code_adaptive: Some(200),
            line_format: LineFormat::Locations,
            lasti_in_units: true,
        }
    }

    fn put(buf: &mut [u64], off: usize, v: u64) {
        buf[off / 8] = v;
    }

    fn ascii(s: &str) -> Box<[u64]> {
        let mut b = vec![0u64; 6 + s.len() / 8 + 1];
        b[1] = STR_T as u64;
        b[2] = s.len() as u64;
        b[4] = (1 << 2) | (1 << 5) | (1 << 6);
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr() as *mut u8, b.len() * 8) };
        bytes[40..40 + s.len()].copy_from_slice(s.as_bytes());
        b.into_boxed_slice()
    }

    fn bytes_obj(v: &[u8]) -> Box<[u64]> {
        let mut b = vec![0u64; 4 + v.len() / 8 + 1];
        b[1] = BYTES_T as u64;
        b[2] = v.len() as u64;
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(b.as_mut_ptr() as *mut u8, b.len() * 8) };
        bytes[32..32 + v.len()].copy_from_slice(v);
        b.into_boxed_slice()
    }

    struct FakeCode {
        obj: Box<[u64]>,
        _keep: Vec<Box<[u64]>>,
    }

    fn fake_code(qual: &str, file: &str, first: i32) -> FakeCode {
        let q = ascii(qual);
        let n = ascii("n");
        let f = ascii(file);
        // one entry: code 13, 4 units, line +1
        let lt = bytes_obj(&[0x80 | (13 << 3) | 3, 2]);
        let mut obj = vec![0u64; 30].into_boxed_slice();
        put(&mut obj, 8, CODE_T as u64);
        put(&mut obj, 16, 4);
        obj[68 / 8] = (first as u32 as u64) << 32; // 68 is the high half of word 8
        put(&mut obj, 112, f.as_ptr() as u64);
        put(&mut obj, 120, n.as_ptr() as u64);
        put(&mut obj, 128, q.as_ptr() as u64);
        put(&mut obj, 136, lt.as_ptr() as u64);
        FakeCode {
            obj,
            _keep: vec![q, n, f, lt],
        }
    }

    #[test]
    fn decode_hit_and_invalidate() {
        let r = MemoryReader::new().unwrap();
        let types = TypeAddrs {
            code: CODE_T,
            unicode: STR_T,
            bytes: BYTES_T,
        };
        let mut c = CodeCache::new(code312(), strs(), types, 100);
        let mut fc = fake_code("Cls.meth", "/x/y.py", 41);
        let a = fc.obj.as_ptr() as usize;
        let mut valid = vec![];
        c.resolve(&r, &[a], &mut valid);
        assert_eq!(valid, [true]);
        {
            let e = c.get_mut(a).unwrap();
            assert_eq!(e.info.name, "Cls.meth");
            assert_eq!(e.info.filename, "/x/y.py");
            assert_eq!(e.info.firstlineno, 41);
            assert_eq!(e.lasti_limit, 4);
            assert_eq!(e.line(LineFormat::Locations, 2), 42);
            assert_eq!(e.line(LineFormat::Locations, 2), 42);
            assert_eq!(e.line(LineFormat::Locations, 9), 0);
        }
        c.resolve(&r, &[a, a], &mut valid);
        assert_eq!(valid, [true, true]);
        assert_eq!(c.stats().misses, 1);
        assert_eq!(c.stats().hits, 2);

        // Address reuse: another code object with another name at the same place.
        let other = fake_code("other", "/x/z.py", 7);
        fc.obj.copy_from_slice(&other.obj);
        c.resolve(&r, &[a], &mut valid);
        assert_eq!(valid, [true]);
        assert_eq!(c.get_mut(a).unwrap().info.name, "other");
        assert_eq!(c.stats().invalidated, 1);

        // No longer a code object.
        fc.obj[1] = 0x1234;
        c.resolve(&r, &[a], &mut valid);
        assert_eq!(valid, [false]);
        assert!(c.get_mut(a).is_none());

        // Unreadable address.
        c.resolve(&r, &[16, a], &mut valid);
        assert_eq!(valid, [false, false]);
    }

    #[test]
    fn bounded() {
        let r = MemoryReader::new().unwrap();
        let types = TypeAddrs {
            code: CODE_T,
            unicode: STR_T,
            bytes: BYTES_T,
        };
        let mut c = CodeCache::new(code312(), strs(), types, 16);
        let codes: Vec<FakeCode> = (0..100)
            .map(|i| fake_code(&format!("f{i}"), "a.py", i))
            .collect();
        let mut valid = vec![];
        for fc in &codes {
            c.resolve(&r, &[fc.obj.as_ptr() as usize], &mut valid);
            assert_eq!(valid, [true]);
            assert!(c.len() <= 16);
        }
        assert!(c.stats().evicted > 0);
    }
}
