//! Walking one thread's frame chain, per CPython version.
//!
//! * 3.8–3.10: `PyFrameObject`s linked by `f_back`; each a separate heap
//!   object (prefetched by address from the previous walk when unchanged).
//! * 3.11+: `_PyInterpreterFrame`s linked by `previous`. Most of them live in
//!   the thread's data-stack chunk, so the used top of that chunk is copied in
//!   one read and frames inside it are parsed from the copy; the others (shim
//!   frames on the C stack, generator frames inside generator objects) are
//!   read one by one.
//!
//! Memory is accessed through a [`Fetch`]: ranges prefetched with the thread
//! state (the addresses the previous walk of that thread used) are served from
//! the copy, anything else is read and recorded for the next walk.
//!
//! The walk first collects raw frames ([`Walker::collect`]); the caller then
//! validates the code objects of all threads through the [`CodeCache`] in one
//! vectored read; [`Walker::finish`] then applies the skip and
//! sanity rules of the fact sheet: the code type, `-1 <= lasti < size`,
//! `previous != self`, no loop in the chain (Brent), known owner values, a
//! depth cap; 3.12+ shim frames
//! (owner `CSTACK`, or `>= INTERPRETER` on 3.14) and incomplete frames (before
//! the first `RESUME`) are skipped; on 3.14 `f_executable` is untagged and a
//! `PyStackRef_NULL` (popped frame) is skipped by following `previous`.
//! Anything inconsistent drops the whole stack: stale memory must not be
//! reported as a plausible but wrong stack.

use crate::code::{CodeCache, CodeRef};
use crate::linetable::LineFormat;
use crate::memory::{MemoryReader, ReadError, View};
use crate::Frame;

/// No walk follows more frames than this.
pub const DEPTH_CAP: usize = 4096;

/// At most this much of a 3.11+ data-stack chunk is copied in one read.
pub const WINDOW_BYTES: usize = 64 * 1024;

/// The window is extended this far past the data-stack top (within the
/// chunk), so that the next walk's prefetch still covers a stack that grew.
pub const WINDOW_SLACK: usize = 2048;

/// How frames are laid out and linked in one version.
#[derive(Debug, Clone, Copy)]
pub enum FrameModel {
    /// 3.8–3.10: heap `PyFrameObject`s.
    Object {
        /// `f_back`.
        f_back: usize,
        /// `f_code`.
        f_code: usize,
        /// `f_lasti` (C int).
        f_lasti: usize,
        /// `ob_type`.
        ob_type: usize,
        /// Bytes copied per frame.
        read_len: usize,
        /// `PyFrame_Type`, or 0 to skip the frame type check.
        frame_type: usize,
    },
    /// 3.11+: `_PyInterpreterFrame`s.
    Interp {
        /// `previous`.
        previous: usize,
        /// `f_code` / `f_executable`.
        code: usize,
        /// `prev_instr` / `instr_ptr`.
        instr: usize,
        /// `owner` (char).
        owner: usize,
        /// `f_func` (3.11) / `f_funcobj` (3.12+): the function object.
        func: usize,
        /// Bytes copied per frame.
        read_len: usize,
        /// 3.14: `Py_TAG_BITS` (3) to clear from `f_executable`; 0 before.
        tag_mask: usize,
        /// 3.14: `PyStackRef_NULL` bits (1): a popped frame.
        null_bits: Option<usize>,
        /// `FRAME_OWNED_BY_GENERATOR`.
        owner_generator: u8,
        /// Owner values `>=` this are shims to skip (3.12: CSTACK = 3; 3.14:
        /// INTERPRETER = 3); `None` on 3.11, which has no shims.
        skip_owner_from: Option<u8>,
        /// Largest owner value that exists in this version.
        max_owner: u8,
        /// `co_code_adaptive` of the code object.
        code_adaptive: usize,
        /// 3.11+: `_PyStackChunk.data`.
        chunk_data: usize,
    },
}

/// Why a stack was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Drop {
    /// A frame could not be copied.
    Read,
    /// A frame pointer is misaligned or a frame links to itself.
    BadLink,
    /// The chain loops back to a frame already visited.
    Cycle,
    /// A frame object's type is wrong (3.8–3.10).
    BadFrameType,
    /// An owner value that does not exist.
    BadOwner,
    /// A code pointer that is not a code object (or its names are not `str`).
    BadCode,
    /// A position outside the code object.
    BadLasti,
}

impl Drop {
    /// Every reason, in declaration order.
    pub const ALL: [Drop; 7] = [
        Drop::Read,
        Drop::BadLink,
        Drop::Cycle,
        Drop::BadFrameType,
        Drop::BadOwner,
        Drop::BadCode,
        Drop::BadLasti,
    ];

    /// Short name for telemetry.
    pub fn name(self) -> &'static str {
        match self {
            Drop::Read => "read",
            Drop::BadLink => "bad_link",
            Drop::Cycle => "cycle",
            Drop::BadFrameType => "bad_frame_type",
            Drop::BadOwner => "bad_owner",
            Drop::BadCode => "bad_code",
            Drop::BadLasti => "bad_lasti",
        }
    }
}

/// A frame as copied, before its code object is checked.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame {
    /// Code object address (untagged).
    pub code: usize,
    /// Function object address (3.11+, untagged), 0 if unknown.
    pub func: usize,
    /// `f_lasti` (3.8–3.10) or the instruction pointer (3.11+).
    pub pos: i64,
    /// `owner` (3.11+).
    pub owner: u8,
    /// Skipped without looking at the code (shim, popped frame).
    pub skip: bool,
}

impl RawFrame {
    /// The code reference to validate, if the frame is not skipped.
    pub fn code_ref(&self) -> Option<CodeRef> {
        (!self.skip).then_some(CodeRef {
            addr: self.code,
            func: self.func,
        })
    }
}

/// Memory access for one thread's walk: served from `view` (prefetched)
/// where possible, else read into it; every range used is appended to
/// `touched` so the next walk can prefetch it.
#[derive(Debug)]
pub struct Fetch<'a> {
    /// The reader for misses.
    pub reader: &'a MemoryReader,
    /// Copied memory.
    pub view: &'a mut View,
    /// Ranges used by this walk.
    pub touched: &'a mut Vec<(usize, usize)>,
}

impl Fetch<'_> {
    /// The bytes at `[addr, addr + len)`.
    pub fn get(&mut self, addr: usize, len: usize) -> Result<&[u8], ReadError> {
        self.touched.push((addr, len));
        if !self.view.contains(addr, len) {
            self.view.fetch(self.reader, &[(addr, len)])?;
        }
        self.view
            .get(addr, len)
            .ok_or(ReadError::BadAddress { addr, len })
    }

    /// A native-endian `usize` at `addr`.
    pub fn usize_at(&mut self, addr: usize) -> Result<usize, ReadError> {
        let b = self.get(addr, 8)?;
        Ok(u64_at(b, 0).unwrap_or(0) as usize)
    }

    /// A native-endian `u32` at `addr`.
    pub fn u32_at(&mut self, addr: usize) -> Result<u32, ReadError> {
        let b = self.get(addr, 4)?;
        let mut a = [0u8; 4];
        a.copy_from_slice(b.get(..4).unwrap_or(&[0; 4]));
        Ok(u32::from_ne_bytes(a))
    }
}

/// Result of a successful walk.
#[derive(Debug, Default)]
pub struct Walked {
    /// Frames, leaf first, at most `max_frames`.
    pub frames: Vec<Frame>,
    /// Further valid frames not in `frames`.
    pub omitted: u32,
    /// The walk stopped at [`DEPTH_CAP`].
    pub truncated: bool,
}

/// Where a thread's 3.11+ frames mostly live: its current data-stack chunk.
#[derive(Debug, Clone, Copy, Default)]
pub struct DataStack {
    /// `tstate.datastack_chunk`.
    pub chunk: usize,
    /// `tstate.datastack_top` (first free slot of that chunk).
    pub top: usize,
    /// `tstate.datastack_limit` (end of that chunk).
    pub limit: usize,
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

/// Brent's cycle detection over a chain of addresses: O(1) per step, finds
/// a loop within a small multiple of its length (so a corrupted chain is
/// dropped instead of walked to the depth cap).
#[derive(Debug, Default)]
struct Cycle {
    mark: usize,
    power: usize,
    steps: usize,
}

impl Cycle {
    fn new() -> Cycle {
        Cycle {
            mark: 0,
            power: 1,
            steps: 0,
        }
    }

    /// Records `addr`; true if the chain has looped.
    fn seen(&mut self, addr: usize) -> bool {
        if addr == self.mark {
            return true;
        }
        self.steps += 1;
        if self.steps == self.power {
            self.mark = addr;
            self.power = self.power.saturating_mul(2);
            self.steps = 0;
        }
        false
    }
}

/// Walks frame chains, per version.
#[derive(Debug, Clone, Copy)]
pub struct Walker {
    model: FrameModel,
    line_format: LineFormat,
}

impl Walker {
    /// A walker for one version's frame model.
    pub fn new(model: FrameModel, line_format: LineFormat) -> Walker {
        Walker { model, line_format }
    }

    /// Follows the chain from `top` (a `PyFrameObject*` on 3.8–3.10, a
    /// `_PyInterpreterFrame*` on 3.11+; 0 = no frames), appending raw frames
    /// leaf first to `raw`. Returns whether the depth cap was hit.
    pub fn collect(
        &self,
        f: &mut Fetch<'_>,
        top: usize,
        stack: DataStack,
        raw: &mut Vec<RawFrame>,
    ) -> Result<bool, Drop> {
        match self.model {
            FrameModel::Object {
                f_back,
                f_code,
                f_lasti,
                ob_type,
                read_len,
                frame_type,
            } => {
                let mut addr = top;
                let mut n = 0;
                let mut cycle = Cycle::new();
                while addr != 0 {
                    if n >= DEPTH_CAP {
                        return Ok(true);
                    }
                    if addr % 8 != 0 {
                        return Err(Drop::BadLink);
                    }
                    if cycle.seen(addr) {
                        return Err(Drop::Cycle);
                    }
                    let buf = f.get(addr, read_len).map_err(|_| Drop::Read)?;
                    let ty = u64_at(buf, ob_type).ok_or(Drop::Read)? as usize;
                    let back = u64_at(buf, f_back).ok_or(Drop::Read)? as usize;
                    let code = u64_at(buf, f_code).ok_or(Drop::Read)? as usize;
                    let lasti = i32_at(buf, f_lasti).ok_or(Drop::Read)?;
                    if frame_type != 0 && ty != frame_type {
                        return Err(Drop::BadFrameType);
                    }
                    if code == 0 {
                        return Err(Drop::BadCode);
                    }
                    raw.push(RawFrame {
                        code,
                        func: 0,
                        pos: i64::from(lasti),
                        owner: 0,
                        skip: false,
                    });
                    if back == addr {
                        return Err(Drop::BadLink);
                    }
                    addr = back;
                    n += 1;
                }
                Ok(false)
            }
            FrameModel::Interp {
                previous,
                code,
                instr,
                owner,
                func,
                read_len,
                tag_mask,
                null_bits,
                skip_owner_from,
                max_owner,
                chunk_data,
                ..
            } => {
                if top == 0 {
                    return Ok(false);
                }
                // The used top of the current chunk, in one piece.
                let data = stack.chunk.wrapping_add(chunk_data);
                // (start, end, position of start in the view's copy)
                let mut window = (0usize, 0usize, 0usize);
                if stack.chunk != 0
                    && data < stack.top
                    && stack.top <= stack.limit
                    && stack.limit - data <= (64 << 20)
                    && top >= data
                    && top < stack.top
                {
                    let start = stack.top.saturating_sub(WINDOW_BYTES).max(data);
                    let end = stack.top.saturating_add(WINDOW_SLACK).min(stack.limit);
                    let have = f.view.locate(start, stack.top - start).is_some()
                        || f.view.fetch(f.reader, &[(start, end - start)]).is_ok();
                    if have {
                        // Use as much of [start, end) as the copy holds.
                        let end = if f.view.contains(start, end - start) {
                            end
                        } else {
                            stack.top
                        };
                        if let Some(pos) = f.view.locate(start, end - start) {
                            window = (start, end, pos);
                            f.touched.push((start, end - start));
                        }
                    }
                }
                let mut addr = top;
                let mut n = 0;
                let mut cycle = Cycle::new();
                while addr != 0 {
                    if n >= DEPTH_CAP {
                        return Ok(true);
                    }
                    if addr % 8 != 0 {
                        return Err(Drop::BadLink);
                    }
                    if cycle.seen(addr) {
                        return Err(Drop::Cycle);
                    }
                    let in_window = addr >= window.0
                        && addr.checked_add(read_len).is_some_and(|e| e <= window.1);
                    let buf = if in_window {
                        f.view
                            .at(window.2 + (addr - window.0), read_len)
                            .ok_or(Drop::Read)?
                    } else {
                        f.get(addr, read_len).map_err(|_| Drop::Read)?
                    };
                    let prev = u64_at(buf, previous).ok_or(Drop::Read)? as usize;
                    let exec = u64_at(buf, code).ok_or(Drop::Read)? as usize;
                    let fobj = u64_at(buf, func).ok_or(Drop::Read)? as usize;
                    let pos = u64_at(buf, instr).ok_or(Drop::Read)? as i64;
                    let own = *buf.get(owner).ok_or(Drop::Read)?;
                    if own > max_owner {
                        return Err(Drop::BadOwner);
                    }
                    let shim = skip_owner_from.is_some_and(|s| own >= s);
                    let popped = null_bits == Some(exec);
                    let code_addr = exec & !tag_mask;
                    if !shim && !popped && code_addr == 0 {
                        return Err(Drop::BadCode);
                    }
                    raw.push(RawFrame {
                        code: code_addr,
                        func: fobj & !tag_mask,
                        pos,
                        owner: own,
                        skip: shim || popped,
                    });
                    if prev == addr {
                        return Err(Drop::BadLink);
                    }
                    addr = prev;
                    n += 1;
                }
                Ok(false)
            }
        }
    }

    /// Turns raw frames (leaf first) into reported frames, using code objects
    /// already resolved in `cache` for this sample.
    pub fn finish(
        &self,
        raw: &[RawFrame],
        cache: &mut CodeCache,
        max_frames: usize,
        truncated: bool,
    ) -> Result<Walked, Drop> {
        let mut out = Walked {
            frames: Vec::with_capacity(raw.len().min(max_frames)),
            omitted: 0,
            truncated,
        };
        for f in raw {
            if f.skip {
                continue;
            }
            let entry = cache.get_valid(f.code).ok_or(Drop::BadCode)?;
            let lasti = match self.model {
                FrameModel::Object { .. } => f.pos,
                FrameModel::Interp {
                    code_adaptive,
                    owner_generator,
                    ..
                } => {
                    let base = f.code.wrapping_add(code_adaptive) as i64;
                    let delta = f.pos.wrapping_sub(base);
                    if delta % 2 != 0 {
                        return Err(Drop::BadLasti);
                    }
                    let lasti = delta / 2;
                    if !(-1..entry.lasti_limit).contains(&lasti) {
                        return Err(Drop::BadLasti);
                    }
                    // Incomplete frame: pushed, not yet past its first RESUME.
                    if f.owner != owner_generator && lasti < entry.firsttraceable {
                        continue;
                    }
                    lasti
                }
            };
            if !(-1..entry.lasti_limit).contains(&lasti) {
                return Err(Drop::BadLasti);
            }
            if out.frames.len() < max_frames {
                let line = entry.line(self.line_format, lasti);
                out.frames.push(Frame {
                    func: entry.info.clone(),
                    line,
                });
            } else {
                out.omitted += 1;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cycle_detection() {
        // A straight chain never trips.
        let mut c = Cycle::new();
        assert!((1..10_000usize).all(|a| !c.seen(a * 8)));
        // Loops of every length up to 300, after a tail, are found quickly.
        for len in 1..300usize {
            let mut c = Cycle::new();
            let tail = 37usize;
            let chain = (0..).map(|i: usize| if i < tail { i } else { tail + (i - tail) % len });
            let steps = chain.take(4096).position(|a| c.seen(a + 1)).unwrap();
            assert!(steps <= 2 * (tail + 2 * len) + 2, "len {len}: {steps}");
        }
    }
}
