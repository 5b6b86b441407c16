//! Cache of decoded code objects, keyed by address.
//!
//! A code object seen before costs one slice of a batched `read_many` (its
//! header fields are copied again and compared with the cached snapshot: type,
//! size, first line, and the name/qualname/filename/line-table pointers), so a
//! freed code object whose address was reused by another is re-decoded rather
//! than reported under the old name. The cache is bounded: when full, the
//! least recently used half is evicted.

use std::sync::Arc;

use crate::fasthash::AddrMap;
use crate::linetable::{line_for, LineFormat};
use crate::memory::{DirectMem, Mem, MemoryReader, View};
use crate::strings::{self, StrLayout, MAX_LINETABLE_BYTES, MAX_NAME_CHARS};
use crate::FuncInfo;

/// Lines remembered per code object: a function whose samples come from more positions
/// than this rescans its line table on every sample (a lock-heavy loop's eight `with`
/// entries and exits did with 4: about 1.1 k instructions per capture, callgrind).
const MEMO_LINES: usize = 16;
/// A position no frame has (`lasti >= -1`): an empty memo slot.
const NO_LASTI: i64 = i64::MIN;

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

#[inline]
fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    let b: [u8; 8] = buf.get(off..off.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_ne_bytes(b))
}

#[inline]
fn i32_at(buf: &[u8], off: usize) -> Option<i32> {
    let b: [u8; 4] = buf.get(off..off.checked_add(4)?)?.try_into().ok()?;
    Some(i32::from_ne_bytes(b))
}

/// The header fields' offsets relative to the start of the copied header range
/// (`CodeLayout::header_start`), computed once per cache.
#[derive(Debug, Clone, Copy)]
struct Rel {
    ob_type: usize,
    ob_size: Option<usize>,
    firstlineno: usize,
    filename: usize,
    name: usize,
    qualname: Option<usize>,
    linetable: usize,
    co_code: Option<usize>,
    firsttraceable: Option<usize>,
}

impl Rel {
    fn new(l: &CodeLayout) -> Rel {
        // Every field is at or after `header_start` (its minimum).
        let b = l.header_start();
        let r = |o: usize| o.saturating_sub(b);
        Rel {
            ob_type: r(l.ob_type),
            ob_size: l.ob_size.map(r),
            firstlineno: r(l.firstlineno),
            filename: r(l.filename),
            name: r(l.name),
            qualname: l.qualname.map(r),
            linetable: r(l.linetable),
            co_code: l.co_code.map(r),
            firsttraceable: l.firsttraceable.map(r),
        }
    }
}

impl Snapshot {
    /// Parses a copy of the header range (see [`Rel`]).
    #[inline]
    fn parse(r: &Rel, hdr: &[u8]) -> Option<Snapshot> {
        let opt_w = |off: Option<usize>| match off {
            Some(o) => u64_at(hdr, o),
            None => Some(0),
        };
        Some(Snapshot {
            ob_type: u64_at(hdr, r.ob_type)? as usize,
            ob_size: opt_w(r.ob_size)? as i64,
            firstlineno: i32_at(hdr, r.firstlineno)?,
            filename: u64_at(hdr, r.filename)? as usize,
            name: u64_at(hdr, r.name)? as usize,
            qualname: opt_w(r.qualname)? as usize,
            linetable: u64_at(hdr, r.linetable)? as usize,
            co_code: opt_w(r.co_code)? as usize,
            firsttraceable: match r.firsttraceable {
                Some(o) => i32_at(hdr, o)?,
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
    /// Sample in which the entry was last used.
    last_used: u64,
    /// Sample in which the entry was last validated against memory.
    validated: u64,
    /// Code-object generation read before that validation (3.14).
    generation: Option<u64>,
    /// The function objects seen with it at that validation (3.11–3.13).
    funcs: FuncSet,
    /// Sample in which it was last found valid (validated or trusted).
    ok: u64,
    /// The last lines looked up, `(lasti, line)`, replaced round-robin (a loop's frame
    /// alternates between a few positions, e.g. a lock's acquire and release).
    memo: [(i64, u32); MEMO_LINES],
    memo_next: u8,
}

impl CodeEntry {
    /// Line number for `lasti` (0 when the table has none).
    pub fn line(&mut self, format: LineFormat, lasti: i64) -> u32 {
        if let Some(&(_, line)) = self.memo.iter().find(|m| m.0 == lasti) {
            return line;
        }
        let line = line_for(format, &self.linetable, self.firstlineno, lasti)
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        let i = usize::from(self.memo_next) % MEMO_LINES;
        if let Some(slot) = self.memo.get_mut(i) {
            *slot = (lasti, line);
        }
        self.memo_next = ((i + 1) % MEMO_LINES) as u8;
        line
    }
}

/// Up to four function objects (closures share one code object among many).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct FuncSet {
    f: [usize; 4],
    n: u8,
    /// A zero (unknown) function, or more than four.
    unknown: bool,
}

impl FuncSet {
    fn add(&mut self, func: usize) {
        if func == 0 {
            self.unknown = true;
            return;
        }
        let n = self.n as usize;
        if self.f.get(..n).is_some_and(|s| s.contains(&func)) {
            return;
        }
        match self.f.get_mut(n) {
            Some(slot) => {
                *slot = func;
                self.n += 1;
            }
            None => self.unknown = true,
        }
    }

    /// Every function of `other` was seen at validation.
    fn covers(&self, other: &FuncSet) -> bool {
        !self.unknown
            && !other.unknown
            && other.f.get(..other.n as usize).is_some_and(|o| {
                o.iter()
                    .all(|x| self.f.get(..self.n as usize).is_some_and(|s| s.contains(x)))
            })
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

/// When a cached entry may be used without copying its header again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// Re-check every entry in every sample.
    Never,
    /// 3.14: while `interp._code_object_generation` (bumped by every
    /// `code_dealloc`) is unchanged since the entry's validation, no code
    /// object was freed, so no address was reused. Exact.
    Generation,
    /// 3.11–3.13: re-check at least every `max_age` samples, and whenever the
    /// frame's function object differs from the one seen at validation.
    /// Bounded: a code object freed and replaced at the same address *together
    /// with* its function object is reported under the old name for at most
    /// `max_age` samples.
    Age {
        /// Samples between full checks (1 = every sample).
        max_age: u64,
    },
}

/// One use of a code object by a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct CodeRef {
    /// Address of the code object.
    pub addr: usize,
    /// The frame's function object (3.11+), 0 if unknown.
    pub func: usize,
}

/// Counters of the cache, for telemetry and tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheStats {
    /// Lookups answered by an entry whose header was copied and matched.
    pub hits: u64,
    /// Lookups answered by a trusted entry without copying anything.
    pub trusted: u64,
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
    trust: Trust,
    map: AddrMap<CodeEntry>,
    capacity: usize,
    epoch: u64,
    stats: CacheStats,
    refs: Vec<CodeRef>,
    todo: Vec<(usize, FuncSet)>,
    trusted_now: Vec<usize>,
    hdr_buf: Vec<u8>,
    /// `layout.header_start()` and `layout.header_len()`.
    hdr_start: usize,
    hdr_len: usize,
    rel: Rel,
}

impl CodeCache {
    /// An empty cache holding at most `capacity` code objects.
    pub fn new(
        layout: CodeLayout,
        strs: StrLayout,
        types: TypeAddrs,
        trust: Trust,
        capacity: usize,
    ) -> Self {
        CodeCache {
            layout,
            strs,
            types,
            trust,
            map: AddrMap::default(),
            capacity: capacity.max(16),
            epoch: 0,
            stats: CacheStats::default(),
            refs: Vec::new(),
            todo: Vec::new(),
            trusted_now: Vec::new(),
            hdr_buf: Vec::new(),
            hdr_start: layout.header_start(),
            hdr_len: layout.header_len(),
            rel: Rel::new(&layout),
        }
    }

    /// Changes the trust policy.
    pub fn set_trust(&mut self, trust: Trust) {
        self.trust = trust;
    }

    /// The trust policy.
    pub fn trust(&self) -> Trust {
        self.trust
    }

    /// Forgets every cached code object (counters are kept).
    pub fn clear(&mut self) {
        self.map.clear();
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

    /// The entry for `addr`, if it was found valid by the last
    /// [`CodeCache::resolve`].
    pub fn get_valid(&mut self, addr: usize) -> Option<&mut CodeEntry> {
        let epoch = self.epoch;
        self.map.get_mut(&addr).filter(|e| e.ok == epoch)
    }

    /// Makes every code object in `refs` valid for this sample, or absent.
    /// `generation` is `(value read before the walk, its address)` on 3.14:
    /// it is read again with the headers to catch a `code_dealloc` during the
    /// walk. Headers that need checking are copied with one vectored read.
    pub fn resolve(
        &mut self,
        reader: &MemoryReader,
        view: &mut View,
        refs: &[CodeRef],
        generation: Option<(u64, usize)>,
    ) {
        self.epoch += 1;
        let epoch = self.epoch;
        // Distinct addresses, each with the set of functions seen with it.
        self.refs.clear();
        self.refs.extend_from_slice(refs);
        self.refs.sort_unstable();
        self.refs.dedup();
        let mut distinct: Vec<(usize, FuncSet)> = Vec::with_capacity(self.refs.len());
        for r in &self.refs {
            match distinct.last_mut() {
                Some((a, fs)) if *a == r.addr => fs.add(r.func),
                _ => {
                    let mut fs = FuncSet::default();
                    fs.add(r.func);
                    distinct.push((r.addr, fs));
                }
            }
        }

        // Which entries can be trusted without a read.
        let gen_start = generation.map(|g| g.0);
        self.todo.clear();
        self.trusted_now.clear();
        for (addr, fs) in &distinct {
            let trusted = match self.map.get(addr) {
                None => false,
                Some(e) => match self.trust {
                    Trust::Never => false,
                    Trust::Generation => gen_start.is_some() && e.generation == gen_start,
                    Trust::Age { max_age } => epoch - e.validated < max_age && e.funcs.covers(fs),
                },
            };
            if trusted {
                self.trusted_now.push(*addr);
            } else {
                self.todo.push((*addr, *fs));
            }
        }

        // 3.14: if a code object was freed during the walk, trust nothing.
        if let (Some((g0, gaddr)), false) = (generation, self.trusted_now.is_empty()) {
            let changed = match reader.read_u64(gaddr) {
                Ok(g1) => g1 != g0,
                Err(_) => true,
            };
            if changed {
                for a in self.trusted_now.drain(..) {
                    self.todo.push((a, FuncSet::default()));
                }
            }
        }
        for a in &self.trusted_now {
            if let Some(e) = self.map.get_mut(a) {
                e.ok = epoch;
                e.last_used = epoch;
                self.stats.trusted += 1;
            }
        }
        if self.todo.is_empty() {
            return;
        }

        // Copy the headers to check, merged and in one system call.
        let start = self.hdr_start;
        let len = self.hdr_len;
        view.clear();
        let ranges: Vec<(usize, usize)> = self
            .todo
            .iter()
            .map(|(a, _)| (a.wrapping_add(start), len))
            .collect();
        let bulk_ok = view.fetch(reader, &ranges).is_ok();
        let todo = std::mem::take(&mut self.todo);
        for &(addr, func) in &todo {
            let hdr_addr = addr.wrapping_add(start);
            let snap = if bulk_ok {
                view.get(hdr_addr, len)
                    .and_then(|h| Snapshot::parse(&self.rel, h))
            } else {
                // Find out which ones are readable.
                self.hdr_buf.resize(len, 0);
                match reader.read(hdr_addr, &mut self.hdr_buf) {
                    Ok(()) => Snapshot::parse(&self.rel, &self.hdr_buf),
                    Err(_) => None,
                }
            };
            let Some(snap) = snap.filter(|s| s.ob_type == self.types.code) else {
                if self.map.remove(&addr).is_some() {
                    self.stats.invalidated += 1;
                }
                continue;
            };
            if let Some(e) = self.map.get_mut(&addr) {
                if e.snap == snap {
                    e.last_used = epoch;
                    e.validated = epoch;
                    e.ok = epoch;
                    e.generation = gen_start;
                    e.funcs = func;
                    self.stats.hits += 1;
                    continue;
                }
                self.stats.invalidated += 1;
            }
            self.map.remove(&addr);
            if let Some(mut entry) = self.decode(reader, snap) {
                self.stats.misses += 1;
                if self.map.len() >= self.capacity {
                    self.evict();
                }
                entry.generation = gen_start;
                entry.funcs = func;
                self.map.insert(addr, entry);
            }
        }
        self.todo = todo;
    }

    /// [`CodeCache::resolve`] for a walk of the calling thread's own stack
    /// with direct loads ([`DirectMem`]): every code object in `refs` is
    /// referenced by a live frame of that thread. The same trust policy
    /// applies (an entry the policy trusts costs a hash lookup); any other
    /// header is read in place (type first, then the fields), compared with
    /// the cached snapshot, and decoded again only when it differs. That is a
    /// full validation, recorded as the copy-based resolution records its
    /// own. `generation` is the code-object generation (3.14), read before
    /// this call: no code object can be freed during it (the caller holds the
    /// GIL and runs no Python code).
    pub fn resolve_direct(
        &mut self,
        mem: &DirectMem<'_>,
        refs: &[CodeRef],
        generation: Option<u64>,
    ) {
        self.epoch += 1;
        let epoch = self.epoch;
        let (layout, code_type, trust) = (self.layout, self.types.code, self.trust);
        // The header of the code object at `addr`, field by field, type first.
        let read = |addr: usize| -> Option<Snapshot> {
            let w = |off: usize| mem.load_u64(addr.wrapping_add(off));
            let opt_w = |off: Option<usize>| match off {
                Some(o) => w(o),
                None => Some(0),
            };
            let int = |off: usize| mem.load_u32(addr.wrapping_add(off)).map(|v| v as i32);
            let ty = w(layout.ob_type)? as usize;
            if ty != code_type {
                return None;
            }
            Some(Snapshot {
                ob_type: ty,
                ob_size: opt_w(layout.ob_size)? as i64,
                firstlineno: int(layout.firstlineno)?,
                filename: w(layout.filename)? as usize,
                name: w(layout.name)? as usize,
                qualname: opt_w(layout.qualname)? as usize,
                linetable: w(layout.linetable)? as usize,
                co_code: opt_w(layout.co_code)? as usize,
                firsttraceable: match layout.firsttraceable {
                    Some(o) => int(o)?,
                    None => 0,
                },
            })
        };
        for r in refs {
            let addr = r.addr;
            let mut fs = FuncSet::default();
            fs.add(r.func);
            let snap = match self.map.get_mut(&addr) {
                Some(e) if e.ok == epoch => {
                    // Validated (or trusted) for an earlier frame of this walk.
                    if e.validated == epoch {
                        e.funcs.add(r.func);
                    }
                    continue;
                }
                Some(e) => {
                    let trusted = match trust {
                        Trust::Never => false,
                        Trust::Generation => generation.is_some() && e.generation == generation,
                        Trust::Age { max_age } => {
                            epoch - e.validated < max_age && e.funcs.covers(&fs)
                        }
                    };
                    if trusted {
                        e.ok = epoch;
                        e.last_used = epoch;
                        self.stats.trusted += 1;
                        continue;
                    }
                    let snap = read(addr);
                    if snap == Some(e.snap) {
                        e.ok = epoch;
                        e.last_used = epoch;
                        e.validated = epoch;
                        e.generation = generation;
                        e.funcs = fs;
                        self.stats.hits += 1;
                        continue;
                    }
                    self.map.remove(&addr);
                    self.stats.invalidated += 1;
                    snap
                }
                None => read(addr),
            };
            let Some(snap) = snap else {
                continue;
            };
            if let Some(mut entry) = self.decode(mem, snap) {
                self.stats.misses += 1;
                if self.map.len() >= self.capacity {
                    self.evict();
                }
                entry.generation = generation;
                entry.funcs = fs;
                self.map.insert(addr, entry);
            }
        }
    }

    fn decode<M: Mem + ?Sized>(&self, reader: &M, snap: Snapshot) -> Option<CodeEntry> {
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
            validated: self.epoch,
            generation: None,
            funcs: FuncSet::default(),
            ok: self.epoch,
            memo: [(NO_LASTI, 0); MEMO_LINES],
            memo_next: 0,
        })
    }

    /// Drops the least recently used half of the entries not used in the
    /// current sample (entries in use now are never evicted, so the map may
    /// briefly exceed its capacity).
    fn evict(&mut self) {
        let epoch = self.epoch;
        let mut ages: Vec<u64> = self
            .map
            .values()
            .map(|e| e.last_used)
            .filter(|&u| u < epoch)
            .collect();
        if ages.is_empty() {
            return;
        }
        let mid = ages.len() / 2;
        let cut = *ages.select_nth_unstable(mid).1;
        let before = self.map.len();
        self.map.retain(|_, e| e.last_used > cut);
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

    fn types() -> TypeAddrs {
        TypeAddrs {
            code: CODE_T,
            unicode: STR_T,
            bytes: BYTES_T,
        }
    }

    fn one(addr: usize, func: usize) -> [CodeRef; 1] {
        [CodeRef { addr, func }]
    }

    #[test]
    fn decode_hit_and_invalidate() {
        let r = MemoryReader::new().unwrap();
        let mut v = View::new();
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Never, 100);
        let mut fc = fake_code("Cls.meth", "/x/y.py", 41);
        let a = fc.obj.as_ptr() as usize;
        c.resolve(&r, &mut v, &one(a, 0), None);
        {
            let e = c.get_valid(a).unwrap();
            assert_eq!(e.info.name, "Cls.meth");
            assert_eq!(e.info.filename, "/x/y.py");
            assert_eq!(e.info.firstlineno, 41);
            assert_eq!(e.lasti_limit, 4);
            assert_eq!(e.line(LineFormat::Locations, 2), 42);
            assert_eq!(e.line(LineFormat::Locations, 2), 42);
            assert_eq!(e.line(LineFormat::Locations, 9), 0);
        }
        c.resolve(
            &r,
            &mut v,
            &[CodeRef { addr: a, func: 0 }, CodeRef { addr: a, func: 5 }],
            None,
        );
        assert!(c.get_valid(a).is_some());
        assert_eq!(c.stats().misses, 1);
        assert_eq!(c.stats().hits, 1);

        // Address reuse: another code object with another name at the same place.
        let other = fake_code("other", "/x/z.py", 7);
        fc.obj.copy_from_slice(&other.obj);
        c.resolve(&r, &mut v, &one(a, 0), None);
        assert_eq!(c.get_valid(a).unwrap().info.name, "other");
        assert_eq!(c.stats().invalidated, 1);

        // No longer a code object.
        fc.obj[1] = 0x1234;
        c.resolve(&r, &mut v, &one(a, 0), None);
        assert!(c.get_valid(a).is_none());

        // Unreadable address next to a readable one.
        fc.obj[1] = CODE_T as u64;
        c.resolve(
            &r,
            &mut v,
            &[CodeRef { addr: 16, func: 0 }, CodeRef { addr: a, func: 0 }],
            None,
        );
        assert!(c.get_valid(16).is_none());
        assert!(c.get_valid(a).is_some());
    }

    /// The direct resolution decodes, hits, re-decodes a reused address and drops a
    /// non-code object like the copy-based one; its entries give the copy-based resolution
    /// nothing to trust.
    #[test]
    fn direct_resolution() {
        let r = MemoryReader::new().unwrap();
        let mut v = View::new();
        // SAFETY: the fake objects are live for the whole test.
        let mem = unsafe { DirectMem::new() };
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Age { max_age: 16 }, 100);
        let mut fc = fake_code("Cls.meth", "/x/y.py", 41);
        let a = fc.obj.as_ptr() as usize;
        c.resolve_direct(
            &mem,
            &[CodeRef {
                addr: a,
                func: 0x100,
            }; 3],
            None,
        );
        {
            let e = c.get_valid(a).unwrap();
            assert_eq!(e.info.name, "Cls.meth");
            assert_eq!(e.info.filename, "/x/y.py");
            assert_eq!(e.lasti_limit, 4);
            assert_eq!(e.line(LineFormat::Locations, 2), 42);
        }
        assert_eq!((c.stats().misses, c.stats().hits), (1, 0));
        // The same policy as the copy-based resolution: trusted while young, for the
        // functions seen at validation, by either path.
        c.resolve_direct(&mem, &one(a, 0x100), None);
        assert!(c.get_valid(a).is_some());
        c.resolve(&r, &mut v, &one(a, 0x100), None);
        assert_eq!((c.stats().trusted, c.stats().hits), (2, 0));
        // Another function: checked in place.
        c.resolve_direct(&mem, &one(a, 0x200), None);
        assert_eq!(c.stats().hits, 1);
        // Address reuse (together with a new function object).
        let other = fake_code("other", "/x/z.py", 7);
        fc.obj.copy_from_slice(&other.obj);
        c.resolve_direct(&mem, &one(a, 0x300), None);
        assert_eq!(c.get_valid(a).unwrap().info.name, "other");
        assert_eq!(c.stats().invalidated, 1);
        // No longer a code object.
        fc.obj[1] = 0x1234;
        c.resolve_direct(&mem, &one(a, 0x400), None);
        assert!(c.get_valid(a).is_none());
        assert!(c.is_empty());
        // Never: every header is read; Generation: trusted while the generation holds.
        let fc = fake_code("g", "a.py", 1);
        let a = fc.obj.as_ptr() as usize;
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Never, 100);
        for _ in 0..3 {
            c.resolve_direct(&mem, &one(a, 0x100), None);
        }
        assert_eq!(
            (c.stats().misses, c.stats().hits, c.stats().trusted),
            (1, 2, 0)
        );
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Generation, 100);
        for g in [7, 7, 7, 8] {
            c.resolve_direct(&mem, &one(a, 0x100), Some(g));
        }
        assert_eq!(
            (c.stats().misses, c.stats().hits, c.stats().trusted),
            (1, 1, 2)
        );
    }

    #[test]
    fn trust_by_age_and_function() {
        let r = MemoryReader::new().unwrap();
        let mut v = View::new();
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Age { max_age: 3 }, 100);
        let mut fc = fake_code("f", "a.py", 1);
        let a = fc.obj.as_ptr() as usize;
        c.resolve(&r, &mut v, &one(a, 0x100), None); // miss
        c.resolve(&r, &mut v, &one(a, 0x100), None); // trusted (age 1)
        c.resolve(&r, &mut v, &one(a, 0x100), None); // trusted (age 2)
        assert_eq!(c.stats().trusted, 2);
        c.resolve(&r, &mut v, &one(a, 0x100), None); // age 3: checked
        assert_eq!(c.stats().hits, 1);
        c.resolve(&r, &mut v, &one(a, 0x200), None); // other function: checked
        assert_eq!(c.stats().hits, 2);
        // A trusted entry is used even though memory changed (bounded staleness)...
        c.resolve(&r, &mut v, &one(a, 0x200), None);
        assert_eq!(c.stats().trusted, 3);
        let other = fake_code("g", "b.py", 2);
        fc.obj.copy_from_slice(&other.obj);
        c.resolve(&r, &mut v, &one(a, 0x200), None);
        assert_eq!(c.get_valid(a).unwrap().info.name, "f");
        // ...but not past max_age.
        c.resolve(&r, &mut v, &one(a, 0x200), None);
        assert_eq!(c.get_valid(a).unwrap().info.name, "g");
    }

    #[test]
    fn trust_by_generation() {
        let r = MemoryReader::new().unwrap();
        let mut v = View::new();
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Generation, 100);
        let mut fc = fake_code("f", "a.py", 1);
        let a = fc.obj.as_ptr() as usize;
        let gen = Box::new(7u64);
        let g = &*gen as *const u64 as usize;
        c.resolve(&r, &mut v, &one(a, 0), Some((7, g)));
        for _ in 0..5 {
            c.resolve(&r, &mut v, &one(a, 0), Some((7, g)));
        }
        assert_eq!(c.stats().trusted, 5);
        assert_eq!(c.stats().hits, 0);
        // A code object was freed: generation moves, the entry is checked.
        let other = fake_code("g", "b.py", 2);
        fc.obj.copy_from_slice(&other.obj);
        c.resolve(&r, &mut v, &one(a, 0), Some((8, g)));
        assert_eq!(c.get_valid(a).unwrap().info.name, "g");
        // Freed during the walk: the re-read generation differs from the start.
        let third = fake_code("h", "c.py", 3);
        fc.obj.copy_from_slice(&third.obj);
        c.resolve(&r, &mut v, &one(a, 0), Some((8, g))); // memory says 7
        assert_eq!(c.get_valid(a).unwrap().info.name, "h");
    }

    #[test]
    fn bounded() {
        let r = MemoryReader::new().unwrap();
        let mut v = View::new();
        let mut c = CodeCache::new(code312(), strs(), types(), Trust::Never, 16);
        let codes: Vec<FakeCode> = (0..100)
            .map(|i| fake_code(&format!("f{i}"), "a.py", i))
            .collect();
        for fc in &codes {
            let a = fc.obj.as_ptr() as usize;
            c.resolve(&r, &mut v, &one(a, 0), None);
            assert!(c.get_valid(a).is_some());
            assert!(c.len() <= 16);
        }
        assert!(c.stats().evicted > 0);
    }
}
