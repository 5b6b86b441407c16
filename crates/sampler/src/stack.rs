//! Walking one thread's frame chain, per CPython version.
//!
//! * 3.8–3.10: `PyFrameObject`s linked by `f_back`; one read per frame.
//! * 3.11+: `_PyInterpreterFrame`s linked by `previous`. Most of them live in
//!   the thread's data-stack chunk, so the used top of that chunk is copied in
//!   one read and frames inside it are parsed from the copy; the others (shim
//!   frames on the C stack, generator frames inside generator objects) are
//!   read one by one.
//!
//! The walk first collects raw frames, then validates all their code objects
//! through the [`CodeCache`] with one vectored read, then applies the skip and
//! sanity rules of the fact sheet: the code type, `-1 <= lasti < size`,
//! `previous != self`, known owner values, a depth cap; 3.12+ shim frames
//! (owner `CSTACK`, or `>= INTERPRETER` on 3.14) and incomplete frames (before
//! the first `RESUME`) are skipped; on 3.14 `f_executable` is untagged and a
//! `PyStackRef_NULL` (popped frame) is skipped by following `previous`.
//! Anything inconsistent drops the whole stack: stale memory must not be
//! reported as a plausible but wrong stack.

use crate::code::CodeCache;
use crate::linetable::LineFormat;
use crate::memory::MemoryReader;
use crate::Frame;

/// No walk follows more frames than this.
pub const DEPTH_CAP: usize = 4096;

/// At most this much of a 3.11+ data-stack chunk is copied in one read.
pub const WINDOW_BYTES: usize = 64 * 1024;

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
pub enum Drop {
    /// A frame could not be copied.
    Read,
    /// A frame pointer is misaligned or a frame links to itself.
    BadLink,
    /// A frame object's type is wrong (3.8–3.10).
    BadFrameType,
    /// An owner value that does not exist.
    BadOwner,
    /// A code pointer that is not a code object (or its names are not `str`).
    BadCode,
    /// A position outside the code object.
    BadLasti,
}

#[derive(Debug, Clone, Copy)]
struct RawFrame {
    code: usize,
    pos: i64,
    owner: u8,
    /// Skipped without looking at the code (shim, popped frame).
    skip: bool,
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

/// Walks frame chains; holds scratch buffers reused between walks.
#[derive(Debug)]
pub struct Walker {
    model: FrameModel,
    line_format: LineFormat,
    raw: Vec<RawFrame>,
    window: Vec<u8>,
    frame_buf: Vec<u8>,
    codes: Vec<usize>,
    valid: Vec<bool>,
}

impl Walker {
    /// A walker for one version's frame model.
    pub fn new(model: FrameModel, line_format: LineFormat) -> Walker {
        let read_len = match model {
            FrameModel::Object { read_len, .. } | FrameModel::Interp { read_len, .. } => read_len,
        };
        Walker {
            model,
            line_format,
            raw: Vec::with_capacity(256),
            window: Vec::new(),
            frame_buf: vec![0u8; read_len],
            codes: Vec::with_capacity(64),
            valid: Vec::with_capacity(64),
        }
    }

    /// Walks the chain starting at `top` (a `PyFrameObject*` on 3.8–3.10, a
    /// `_PyInterpreterFrame*` on 3.11+; 0 = no frames).
    pub fn walk(
        &mut self,
        reader: &MemoryReader,
        cache: &mut CodeCache,
        top: usize,
        stack: DataStack,
        max_frames: usize,
    ) -> Result<Walked, Drop> {
        self.raw.clear();
        let truncated = match self.model {
            FrameModel::Object { .. } => self.collect_objects(reader, top)?,
            FrameModel::Interp { .. } => self.collect_interp(reader, top, stack)?,
        };

        // Validate every distinct code object with one vectored read.
        self.codes.clear();
        for f in &self.raw {
            if !f.skip && !self.codes.contains(&f.code) {
                self.codes.push(f.code);
            }
        }
        cache.resolve(reader, &self.codes, &mut self.valid);
        if self.valid.iter().any(|v| !v) {
            return Err(Drop::BadCode);
        }

        let mut out = Walked {
            frames: Vec::with_capacity(self.raw.len().min(max_frames)),
            omitted: 0,
            truncated,
        };
        for f in &self.raw {
            if f.skip {
                continue;
            }
            let entry = cache.get_mut(f.code).ok_or(Drop::BadCode)?;
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
            if let FrameModel::Object { .. } = self.model {
                if !(-1..entry.lasti_limit).contains(&lasti) {
                    return Err(Drop::BadLasti);
                }
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

    /// 3.8–3.10: follows `f_back`. Returns whether the depth cap was hit.
    fn collect_objects(&mut self, reader: &MemoryReader, top: usize) -> Result<bool, Drop> {
        let FrameModel::Object {
            f_back,
            f_code,
            f_lasti,
            ob_type,
            frame_type,
            ..
        } = self.model
        else {
            return Err(Drop::BadLink);
        };
        let mut addr = top;
        while addr != 0 {
            if self.raw.len() >= DEPTH_CAP {
                return Ok(true);
            }
            if addr % 8 != 0 {
                return Err(Drop::BadLink);
            }
            reader
                .read(addr, &mut self.frame_buf)
                .map_err(|_| Drop::Read)?;
            let buf = &self.frame_buf;
            let ty = u64_at(buf, ob_type).ok_or(Drop::Read)? as usize;
            if frame_type != 0 && ty != frame_type {
                return Err(Drop::BadFrameType);
            }
            let back = u64_at(buf, f_back).ok_or(Drop::Read)? as usize;
            let code = u64_at(buf, f_code).ok_or(Drop::Read)? as usize;
            let lasti = i32_at(buf, f_lasti).ok_or(Drop::Read)?;
            if code == 0 {
                return Err(Drop::BadCode);
            }
            self.raw.push(RawFrame {
                code,
                pos: i64::from(lasti),
                owner: 0,
                skip: false,
            });
            if back == addr {
                return Err(Drop::BadLink);
            }
            addr = back;
        }
        Ok(false)
    }

    /// 3.11+: follows `previous`, parsing frames from the copied chunk window
    /// where possible. Returns whether the depth cap was hit.
    fn collect_interp(
        &mut self,
        reader: &MemoryReader,
        top: usize,
        stack: DataStack,
    ) -> Result<bool, Drop> {
        let FrameModel::Interp {
            previous,
            code,
            instr,
            owner,
            read_len,
            tag_mask,
            null_bits,
            skip_owner_from,
            max_owner,
            chunk_data,
            ..
        } = self.model
        else {
            return Err(Drop::BadLink);
        };
        if top == 0 {
            return Ok(false);
        }
        // Copy the used top of the current chunk in one read.
        let mut wstart = 0usize;
        self.window.clear();
        let data = stack.chunk.wrapping_add(chunk_data);
        if stack.chunk != 0 && stack.top > data && stack.top - data <= (64 << 20) {
            let len = (stack.top - data).min(WINDOW_BYTES);
            let start = stack.top - len;
            // Only worth it if the top frame is inside.
            if top >= start && top < stack.top {
                self.window.resize(len, 0);
                if reader.read(start, &mut self.window).is_ok() {
                    wstart = start;
                } else {
                    self.window.clear();
                }
            }
        }
        let wend = wstart + self.window.len();

        let mut addr = top;
        while addr != 0 {
            if self.raw.len() >= DEPTH_CAP {
                return Ok(true);
            }
            if addr % 8 != 0 {
                return Err(Drop::BadLink);
            }
            let buf: &[u8] = if !self.window.is_empty()
                && addr >= wstart
                && addr.checked_add(read_len).is_some_and(|e| e <= wend)
            {
                self.window
                    .get(addr - wstart..addr - wstart + read_len)
                    .ok_or(Drop::Read)?
            } else {
                reader
                    .read(addr, &mut self.frame_buf)
                    .map_err(|_| Drop::Read)?;
                &self.frame_buf
            };
            let prev = u64_at(buf, previous).ok_or(Drop::Read)? as usize;
            let exec = u64_at(buf, code).ok_or(Drop::Read)? as usize;
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
            self.raw.push(RawFrame {
                code: code_addr,
                pos,
                owner: own,
                skip: shim || popped,
            });
            if prev == addr {
                return Err(Drop::BadLink);
            }
            addr = prev;
        }
        Ok(false)
    }
}
