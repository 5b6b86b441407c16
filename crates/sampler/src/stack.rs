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
//! depth cap, no finished frame object (3.8–3.10, see [`Liveness`]; the top
//! frame is exempt on the retry); 3.12+ shim frames
//! (owner `CSTACK`, or `>= INTERPRETER` on 3.14) and incomplete frames (before
//! the first `RESUME`) are skipped; on 3.14 `f_executable` is untagged and a
//! `PyStackRef_NULL` (popped frame) is skipped by following `previous`.
//! Anything inconsistent drops the whole stack: stale memory must not be
//! reported as a plausible but wrong stack.

use crate::code::{CodeCache, CodeRef};
use crate::linetable::LineFormat;
use crate::memory::{DirectMem, Mem, MemoryReader, ReadError, View};
use crate::Frame;

/// No walk follows more frames than this.
pub const DEPTH_CAP: usize = 4096;

/// At most this much of a 3.11+ data-stack chunk is copied in one read.
pub const WINDOW_BYTES: usize = 64 * 1024;

/// The window is extended this far past the data-stack top (within the
/// chunk), so that the next walk's prefetch still covers a stack that grew.
pub const WINDOW_SLACK: usize = 2048;

/// A read that misses the view copies the aligned pages around it, this big
/// (the smallest page size, so the pages are mapped whenever the range is).
pub const MISS_PAGE: usize = 4096;

/// Misses copy whole pages only while the view holds less than this.
pub const MISS_PAGES_MAX_BYTES: usize = 4 << 20;

/// 3.8–3.10: how to tell, from a frame object's own bytes, that it has
/// finished (returned, raised or been cleared).
///
/// Frame objects are heap objects whose memory outlives the call: a finished
/// frame keeps its `f_back` and `f_code` (as a code's zombie frame, on the
/// frame free list, or freed but not yet reused). A walk is not atomic (the
/// prefetch copies ranges one after another, frames it misses are read one
/// by one later), so when the thread unwinds during the walk, a frame read
/// late can be a finished one whose stale `f_back` leads into memory already
/// reused by newer frames: a stack that passes every other check but is not
/// one the thread ever had. Below the top frame every frame of a real stack
/// is still running, so a finished one there marks such a torn read. The
/// top frame may be finished while it returns: see [`Walker::collect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// 3.8/3.9: finished when `f_executing == 0 && f_stacktop == NULL`.
    /// (`f_executing` alone is 0 for a running stack's frames too: a
    /// generator delegating a `throw()`/`close()` through `yield from`, or a
    /// frame in a tracer's `call` event; those have a `f_stacktop`.)
    Executing {
        /// `f_executing` (char).
        executing: usize,
        /// `f_stacktop`.
        stacktop: usize,
        /// `co_flags` of the code object (C int), to tell a suspended
        /// generator frame from a frame in a tracer's `call` event.
        co_flags: usize,
    },
    /// 3.10: finished when `f_state` is `FRAME_RETURNED`, `FRAME_RAISED` or
    /// `FRAME_CLEARED`. (A frame below the top is in one of the first two only
    /// while a Python-level trace or profile function handles its `return`
    /// event; such samples are dropped too.)
    State {
        /// `f_state` (signed char).
        state: usize,
        /// The three finished values.
        finished: [i8; 3],
    },
}

impl Liveness {
    /// Bytes of a frame object that must be copied for the check.
    pub fn end(&self) -> usize {
        match *self {
            Liveness::Executing {
                executing,
                stacktop,
                ..
            } => (executing + 1).max(stacktop + 8),
            Liveness::State { state, .. } => state + 1,
        }
    }

    /// Whether the copied frame object `buf` has finished (`None`: too short).
    pub fn finished(&self, buf: &[u8]) -> Option<bool> {
        match *self {
            Liveness::Executing {
                executing,
                stacktop,
                ..
            } => Some(*buf.get(executing)? == 0 && u64_at(buf, stacktop)? == 0),
            Liveness::State { state, finished } => {
                let v = *buf.get(state)? as i8;
                Some(finished.contains(&v))
            }
        }
    }

    /// Whether the copied frame object `buf` may be a suspended generator or
    /// coroutine frame (`None`: too short). 3.10: `f_state` is
    /// `FRAME_SUSPENDED`, which only a generator's frame can be. 3.8/3.9: not
    /// executing but with a value stack, which is also the state of a frame
    /// in a tracer's `call` event: the caller then checks the code's flags
    /// ([`Liveness::generator_flags`]).
    pub fn suspended(&self, buf: &[u8]) -> Option<bool> {
        match *self {
            Liveness::Executing {
                executing,
                stacktop,
                ..
            } => Some(*buf.get(executing)? == 0 && u64_at(buf, stacktop)? != 0),
            Liveness::State { state, .. } => Some(*buf.get(state)? as i8 == FRAME_SUSPENDED),
        }
    }

    /// 3.8/3.9: where `co_flags` is in a code object, to confirm a
    /// [`Liveness::suspended`] frame; `None` on 3.10 (no need).
    pub fn generator_flags(&self) -> Option<usize> {
        match *self {
            Liveness::Executing { co_flags, .. } => Some(co_flags),
            Liveness::State { .. } => None,
        }
    }
}

/// 3.10 `FRAME_SUSPENDED` (`enum _framestate`: CREATED -2, SUSPENDED -1,
/// EXECUTING 0, RETURNED 1, UNWINDING 2, RAISED 3, CLEARED 4; the layout's
/// finished values 1, 3, 4 are checked against this enum in a test).
pub const FRAME_SUSPENDED: i8 = -1;

/// `CO_GENERATOR | CO_COROUTINE | CO_ITERABLE_COROUTINE | CO_ASYNC_GENERATOR`:
/// code whose frames are owned by a generator object and suspend.
pub const CO_GENERATOR_FLAGS: u32 = 0x20 | 0x80 | 0x100 | 0x200;

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
        /// Finished-frame check (`None`: not checked).
        live: Option<Liveness>,
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
    /// A frame of the walk has already finished (3.8–3.10): the thread
    /// unwound while its stack was being read, see [`Liveness`].
    Finished,
    /// The chain ends in a suspended generator or coroutine frame: a running
    /// stack never does (its root frame belongs to the thread, or on 3.12+ is
    /// a C-stack shim). The walk read the generator's frame while it ran and
    /// its link after it had yielded (a yield clears `previous`/`f_back`).
    Suspended,
}

impl Drop {
    /// Every reason, in declaration order.
    pub const ALL: [Drop; 9] = [
        Drop::Read,
        Drop::BadLink,
        Drop::Cycle,
        Drop::BadFrameType,
        Drop::BadOwner,
        Drop::BadCode,
        Drop::BadLasti,
        Drop::Finished,
        Drop::Suspended,
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
            Drop::Finished => "finished_frame",
            Drop::Suspended => "suspended_generator_root",
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
            // A miss copies the whole pages the range lies on (mapped, since
            // the range is): frames allocated together (a pymalloc pool of
            // 3.8–3.10 frame objects, a data-stack chunk) are then served
            // from that copy instead of one system call each.
            let page = addr & !(MISS_PAGE - 1);
            let end = addr
                .checked_add(len)
                .and_then(|e| e.checked_add(MISS_PAGE - 1))
                .map(|e| e & !(MISS_PAGE - 1));
            let wide = match end {
                Some(end) if len <= MISS_PAGE && self.view.used() < MISS_PAGES_MAX_BYTES => {
                    self.view.fetch(self.reader, &[(page, end - page)]).is_ok()
                }
                _ => false,
            };
            if !wide {
                self.view.fetch(self.reader, &[(addr, len)])?;
            }
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

/// Where a walk gets the bytes of each frame.
trait FrameSrc {
    /// Called once before a 3.11+ walk from `top` (the copy-based source
    /// copies the used top of the data-stack chunk here).
    fn begin(&mut self, top: usize, stack: DataStack, chunk_data: usize);
    /// The `len` bytes of the frame at `addr`.
    fn frame(&mut self, addr: usize, len: usize) -> Result<&[u8], Drop>;
}

/// The copy-based source: a [`Fetch`] plus, on 3.11+, the copied window of
/// the data-stack chunk `(start, end, position of start in the view)`.
struct Windowed<'f, 'a> {
    f: &'f mut Fetch<'a>,
    window: (usize, usize, usize),
}

impl FrameSrc for Windowed<'_, '_> {
    fn begin(&mut self, top: usize, stack: DataStack, chunk_data: usize) {
        let f = &mut *self.f;
        // The used top of the current chunk, in one piece.
        let data = stack.chunk.wrapping_add(chunk_data);
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
                    self.window = (start, end, pos);
                    f.touched.push((start, end - start));
                }
            }
        }
    }

    fn frame(&mut self, addr: usize, len: usize) -> Result<&[u8], Drop> {
        let window = self.window;
        let in_window = addr >= window.0 && addr.checked_add(len).is_some_and(|e| e <= window.1);
        if in_window {
            self.f
                .view
                .at(window.2 + (addr - window.0), len)
                .ok_or(Drop::Read)
        } else {
            self.f.get(addr, len).map_err(|_| Drop::Read)
        }
    }
}

/// Largest frame read of any version's model (3.8–3.10 frame objects are
/// read up to their liveness fields, about 120 bytes).
const DIRECT_FRAME_MAX: usize = 256;

/// The direct source: each frame copied in place with plain loads.
struct DirectFrames<'m, 'a> {
    mem: &'m DirectMem<'a>,
    buf: [u8; DIRECT_FRAME_MAX],
}

impl FrameSrc for DirectFrames<'_, '_> {
    fn begin(&mut self, _top: usize, _stack: DataStack, _chunk_data: usize) {}

    fn frame(&mut self, addr: usize, len: usize) -> Result<&[u8], Drop> {
        let buf = self.buf.get_mut(..len).ok_or(Drop::Read)?;
        Mem::read(self.mem, addr, buf).map_err(|_| Drop::Read)?;
        Ok(buf)
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
    ///
    /// 3.8–3.10: a finished frame below the top drops the walk
    /// ([`Drop::Finished`]); with `check_top`, a finished top frame does too.
    /// A top frame is finished legitimately only while it returns (for
    /// instance in a C trace or profile function's `return` event), so the
    /// caller retries without `check_top` from a fresh thread-state copy.
    pub fn collect(
        &self,
        f: &mut Fetch<'_>,
        top: usize,
        stack: DataStack,
        raw: &mut Vec<RawFrame>,
        check_top: bool,
    ) -> Result<bool, Drop> {
        let mut src = Windowed {
            f,
            window: (0, 0, 0),
        };
        self.collect_from(&mut src, top, stack, raw, check_top)
    }

    /// [`Walker::collect`] with direct loads ([`DirectMem`]), for the calling
    /// thread's own stack with the GIL held: the same rules, each frame
    /// copied in place from its address (no window, no page-sized read).
    pub fn collect_direct(
        &self,
        mem: &DirectMem<'_>,
        top: usize,
        stack: DataStack,
        raw: &mut Vec<RawFrame>,
        check_top: bool,
    ) -> Result<bool, Drop> {
        let mut src = DirectFrames {
            mem,
            buf: [0; DIRECT_FRAME_MAX],
        };
        self.collect_from(&mut src, top, stack, raw, check_top)
    }

    fn collect_from<S: FrameSrc>(
        &self,
        src: &mut S,
        top: usize,
        stack: DataStack,
        raw: &mut Vec<RawFrame>,
        check_top: bool,
    ) -> Result<bool, Drop> {
        match self.model {
            FrameModel::Object {
                f_back,
                f_code,
                f_lasti,
                ob_type,
                read_len,
                frame_type,
                live,
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
                    let buf = src.frame(addr, read_len)?;
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
                    if let Some(l) = live.filter(|_| n > 0 || check_top) {
                        if l.finished(buf).ok_or(Drop::Read)? {
                            return Err(Drop::Finished);
                        }
                    }
                    let suspended_root = match live {
                        Some(l) if back == 0 => l.suspended(buf).ok_or(Drop::Read)?,
                        _ => false,
                    };
                    raw.push(RawFrame {
                        code,
                        func: 0,
                        pos: i64::from(lasti),
                        owner: 0,
                        skip: false,
                    });
                    if suspended_root {
                        let generator = match live.and_then(|l| l.generator_flags()) {
                            None => true,
                            Some(off) => {
                                let b = src.frame(code.wrapping_add(off), 4)?;
                                let flags = b
                                    .get(..4)
                                    .and_then(|b| <[u8; 4]>::try_from(b).ok())
                                    .map(u32::from_ne_bytes)
                                    .ok_or(Drop::Read)?;
                                flags & CO_GENERATOR_FLAGS != 0
                            }
                        };
                        if generator {
                            return Err(Drop::Suspended);
                        }
                    }
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
                owner_generator,
                ..
            } => {
                if top == 0 {
                    return Ok(false);
                }
                src.begin(top, stack, chunk_data);
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
                    let buf = src.frame(addr, read_len)?;
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
                if raw.last().is_some_and(|f| f.owner == owner_generator) {
                    return Err(Drop::Suspended);
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
    use crate::layout::Layout;

    /// A fake `PyFrameObject` in this process's memory.
    #[repr(C, align(16))]
    struct Obj([u8; 128]);

    impl Obj {
        fn addr(&self) -> usize {
            self as *const Obj as usize
        }
        fn put(&mut self, off: usize, bytes: &[u8]) {
            self.0[off..off + bytes.len()].copy_from_slice(bytes);
        }
    }

    const FRAME_TYPE: usize = 0x7000_1000;

    /// The 3.8/3.9/3.10 frame-object model with the generated offsets.
    fn object_model(minor: u32) -> FrameModel {
        let l = Layout::for_version(3, minor).unwrap();
        let o = |v: Option<u32>| v.unwrap() as usize;
        let live = if minor == 10 {
            Liveness::State {
                state: o(l.frameobj_f_state),
                finished: [
                    o(l.frame_state_returned) as i8,
                    o(l.frame_state_raised) as i8,
                    o(l.frame_state_cleared) as i8,
                ],
            }
        } else {
            Liveness::Executing {
                executing: o(l.frameobj_f_executing),
                stacktop: o(l.frameobj_f_stacktop),
                co_flags: o(l.code_co_flags),
            }
        };
        FrameModel::Object {
            f_back: o(l.frameobj_f_back),
            f_code: o(l.frameobj_f_code),
            f_lasti: o(l.frameobj_f_lasti),
            ob_type: o(l.object_ob_type),
            read_len: 120,
            frame_type: FRAME_TYPE,
            live: Some(live),
        }
    }

    /// Writes a frame: `back`, `code`, `lasti` and a 3.10 `f_state`.
    fn set310(f: &mut Obj, back: usize, code: usize, lasti: i32, state: i8) {
        let FrameModel::Object {
            f_back,
            f_code,
            f_lasti,
            ob_type,
            live: Some(Liveness::State { state: st, .. }),
            ..
        } = object_model(10)
        else {
            unreachable!()
        };
        f.put(ob_type, &FRAME_TYPE.to_ne_bytes());
        f.put(f_back, &back.to_ne_bytes());
        f.put(f_code, &code.to_ne_bytes());
        f.put(f_lasti, &lasti.to_ne_bytes());
        f.put(st, &state.to_ne_bytes());
    }

    const EXECUTING: i8 = 0;
    const RETURNED: i8 = 1;

    fn walk(model: FrameModel, view: &mut View, top: usize) -> Result<Vec<RawFrame>, Drop> {
        walk_with(model, view, top, true)
    }

    fn walk_with(
        model: FrameModel,
        view: &mut View,
        top: usize,
        check_top: bool,
    ) -> Result<Vec<RawFrame>, Drop> {
        let reader = MemoryReader::new().unwrap();
        let mut touched = Vec::new();
        let mut f = Fetch {
            reader: &reader,
            view,
            touched: &mut touched,
        };
        let mut raw = Vec::new();
        Walker::new(model, LineFormat::Linetable310)
            .collect(&mut f, top, DataStack::default(), &mut raw, check_top)
            .map(|_| raw)
    }

    /// Seven frame objects (never moved: the vector is not resized).
    fn frames() -> Vec<Obj> {
        (0..7).map(|_| Obj([0; 128])).collect()
    }

    fn without_check(mut model: FrameModel) -> FrameModel {
        if let FrameModel::Object { live, .. } = &mut model {
            *live = None;
        }
        model
    }

    /// The flaky `<939 frames omitted>` (3.10): the walk copied the top of a
    /// deep stack, the thread then returned all the way down and made a new
    /// call, and the deeper frames were read only after that. A finished
    /// frame's stale `f_back` led into a frame object reused by the new call,
    /// whose `f_back` is the real root: every frame valid, the stack shorter
    /// than any the thread had. The finished frame must drop the walk.
    #[test]
    fn torn_walk_through_a_finished_frame_is_dropped() {
        let model = object_model(10);
        let reader = MemoryReader::new().unwrap();
        let (rec, other) = (0x5000_0000, 0x5000_1000); // code objects
        let mut f = frames();
        let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
        // Leaf first: f0 -> f1 -> f2 -> f3 -> f4 -> f5 (root).
        set310(&mut f[5], 0, other, 20, EXECUTING);
        for i in 1..5 {
            set310(&mut f[i], a[i + 1], rec, 9, EXECUTING);
        }
        set310(&mut f[0], a[1], other, 30, EXECUTING);
        // The consistent stack walks whole.
        assert_eq!(walk(model, &mut View::new(), a[0]).unwrap().len(), 6);

        // The walk's prefetch copies the top two frames (running)...
        let prefetch = |v: &mut View| v.fetch(&reader, &[(a[0], 120), (a[1], 120)]).unwrap();
        let (mut v1, mut v2) = (View::new(), View::new());
        prefetch(&mut v1);
        prefetch(&mut v2);
        // ... then f0..f4 return (keeping their f_back) and f5 calls a new
        // function, whose frame object is f3's memory, reused.
        for (i, fr) in f.iter_mut().enumerate().take(5) {
            set310(fr, a[i + 1], rec, 10, RETURNED);
        }
        set310(&mut f[3], a[5], other, 2, EXECUTING);
        // f2 and below are read now. Unchecked: f0 f1 f2 f3' f5, a valid
        // 5-frame stack the thread never had (f4 is missing).
        let torn = walk(without_check(model), &mut v1, a[0]).unwrap();
        assert_eq!(torn.len(), 5);
        assert_eq!(torn[3].code, other);
        // Checked: f2 (below the top) has returned.
        assert_eq!(walk(model, &mut v2, a[0]).unwrap_err(), Drop::Finished);
    }

    /// The states a running stack can show are accepted; a finished top
    /// frame only without `check_top` (the retry).
    #[test]
    fn running_states_are_accepted() {
        let model = object_model(10);
        let mut f = frames();
        let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
        // CREATED (-2, tracer `call` event), SUSPENDED (-1, resumed
        // generator in a tracer `call` event), EXECUTING, UNWINDING (2,
        // finalizer run while unwinding).
        for (i, st) in [(0usize, -2), (1, -2), (2, -1), (3, 0), (4, 2)] {
            set310(&mut f[i], a[i + 1], 0x5000_0000, 4, st);
        }
        set310(&mut f[5], 0, 0x5000_0000, 4, EXECUTING);
        assert_eq!(walk(model, &mut View::new(), a[0]).unwrap().len(), 6);
        // A returning top frame (e.g. in a C profile function's `return`
        // event): dropped by the first walk, accepted by the retry.
        set310(&mut f[0], a[1], 0x5000_0000, 4, RETURNED);
        assert_eq!(
            walk(model, &mut View::new(), a[0]).unwrap_err(),
            Drop::Finished
        );
        let walked = walk_with(model, &mut View::new(), a[0], false);
        assert_eq!(walked.unwrap().len(), 6);
        for st in [1i8, 3, 4] {
            set310(&mut f[2], a[3], 0x5000_0000, 4, st);
            assert_eq!(
                walk(model, &mut View::new(), a[0]).unwrap_err(),
                Drop::Finished,
                "state {st}"
            );
        }
    }

    /// 3.8/3.9: finished is `f_executing == 0` with no `f_stacktop`; a
    /// suspended generator frame (delegating a `throw()` through `yield
    /// from`) has `f_executing == 0` but keeps its `f_stacktop`.
    #[test]
    fn executing_flag_3_8_and_3_9() {
        for minor in [8, 9] {
            let model = object_model(minor);
            let FrameModel::Object {
                f_back,
                f_code,
                ob_type,
                live:
                    Some(Liveness::Executing {
                        executing,
                        stacktop,
                        ..
                    }),
                ..
            } = model
            else {
                unreachable!()
            };
            let mut f = frames();
            let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
            let mut set = |i: usize, back: usize, exe: u8, top: usize| {
                let o = &mut f[i];
                o.put(ob_type, &FRAME_TYPE.to_ne_bytes());
                o.put(f_back, &back.to_ne_bytes());
                o.put(f_code, &0x5000_0000usize.to_ne_bytes());
                o.put(executing, &[exe]);
                o.put(stacktop, &top.to_ne_bytes());
            };
            set(0, a[1], 0, 0x6000_0100); // top: in a tracer `call` event
            set(1, a[2], 0, 0x6000_0000); // suspended generator, delegating
            set(2, a[3], 1, 0);
            set(3, 0, 1, 0);
            assert_eq!(walk(model, &mut View::new(), a[0]).unwrap().len(), 4);
            set(0, a[1], 0, 0); // top: returning, only on the retry
            assert_eq!(
                walk(model, &mut View::new(), a[0]).unwrap_err(),
                Drop::Finished
            );
            let walked = walk_with(model, &mut View::new(), a[0], false);
            assert_eq!(walked.unwrap().len(), 4);
            set(2, a[3], 0, 0); // returned
            assert_eq!(
                walk(model, &mut View::new(), a[0]).unwrap_err(),
                Drop::Finished
            );
        }
    }

    fn walk_direct(model: FrameModel, top: usize, check_top: bool) -> Result<Vec<RawFrame>, Drop> {
        let mut raw = Vec::new();
        // SAFETY: the test's frames are live locals.
        let mem = unsafe { DirectMem::new() };
        Walker::new(model, LineFormat::Linetable310)
            .collect_direct(&mem, top, DataStack::default(), &mut raw, check_top)
            .map(|_| raw)
    }

    fn same(a: &Result<Vec<RawFrame>, Drop>, b: &Result<Vec<RawFrame>, Drop>) -> bool {
        match (a, b) {
            (Ok(x), Ok(y)) => {
                x.len() == y.len()
                    && x.iter().zip(y).all(|(p, q)| {
                        (p.code, p.func, p.pos, p.owner, p.skip)
                            == (q.code, q.func, q.pos, q.owner, q.skip)
                    })
            }
            (Err(x), Err(y)) => x == y,
            _ => false,
        }
    }

    /// The direct walk applies the copy-based walk's rules to the same bytes: the same raw
    /// frames, the same drops (finished frames below the top, a finished top frame only
    /// without `check_top`, a wrong frame type, a loop).
    #[test]
    fn direct_walk_matches_copy_walk() {
        for minor in [8, 9, 10] {
            let model = object_model(minor);
            let FrameModel::Object {
                f_back,
                f_code,
                f_lasti,
                ob_type,
                live: Some(live),
                ..
            } = model
            else {
                unreachable!()
            };
            let mut f = frames();
            let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
            let set = |f: &mut [Obj], i: usize, back: usize, done: bool| {
                let o = &mut f[i];
                o.put(ob_type, &FRAME_TYPE.to_ne_bytes());
                o.put(f_back, &back.to_ne_bytes());
                o.put(f_code, &(0x5000_0000usize + i * 64).to_ne_bytes());
                o.put(f_lasti, &(i as i32 * 2).to_ne_bytes());
                match live {
                    Liveness::State { state, .. } => o.put(state, &[u8::from(done)]),
                    Liveness::Executing {
                        executing,
                        stacktop,
                        ..
                    } => {
                        o.put(executing, &[u8::from(!done)]);
                        o.put(stacktop, &0usize.to_ne_bytes());
                    }
                }
            };
            for i in 0..6 {
                set(&mut f, i, if i == 5 { 0 } else { a[i + 1] }, false);
            }
            type Change<'a> = Box<dyn Fn(&mut [Obj]) + 'a>;
            let cases: Vec<Change> = vec![
                Box::new(|_| {}),
                // A returning top frame.
                Box::new(|f| set(f, 0, a[1], true)),
                // A finished frame below the top.
                Box::new(|f| set(f, 2, a[3], true)),
                // Not a frame object.
                Box::new(|f| f[3].put(ob_type, &0x1234usize.to_ne_bytes())),
                // A loop back to the top.
                Box::new(|f| set(f, 4, a[0], false)),
                // A frame that links to itself.
                Box::new(|f| set(f, 4, a[4], false)),
            ];
            for (n, change) in cases.iter().enumerate() {
                for i in 0..6 {
                    set(&mut f, i, if i == 5 { 0 } else { a[i + 1] }, false);
                }
                change(&mut f);
                for check_top in [true, false] {
                    let copied = walk_with(model, &mut View::new(), a[0], check_top);
                    let direct = walk_direct(model, a[0], check_top);
                    assert!(
                        same(&copied, &direct),
                        "3.{minor} case {n} check_top {check_top}: {copied:?} vs {direct:?}"
                    );
                }
            }
        }
    }

    /// A chain longer than the depth cap stops there (the caller gives up), a loop of any
    /// length is found: the direct walk never runs on.
    #[test]
    fn direct_walk_is_bounded() {
        let model = without_check(object_model(10));
        let FrameModel::Object {
            f_back,
            f_code,
            ob_type,
            ..
        } = model
        else {
            unreachable!()
        };
        let n = DEPTH_CAP + 10;
        let mut f: Vec<Obj> = (0..n).map(|_| Obj([0; 128])).collect();
        let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
        for i in 0..n {
            let back = if i + 1 < n { a[i + 1] } else { 0 };
            f[i].put(ob_type, &FRAME_TYPE.to_ne_bytes());
            f[i].put(f_back, &back.to_ne_bytes());
            f[i].put(f_code, &0x5000_0000usize.to_ne_bytes());
        }
        let mut raw = Vec::new();
        // SAFETY: the test's frames are live.
        let mem = unsafe { DirectMem::new() };
        let w = Walker::new(model, LineFormat::Linetable310);
        let r = w.collect_direct(&mem, a[0], DataStack::default(), &mut raw, true);
        assert_eq!(r, Ok(true));
        assert_eq!(raw.len(), DEPTH_CAP);
        // The last frame links back a hundred frames: found as a loop.
        f[n - 1].put(f_back, &a[n - 100].to_ne_bytes());
        raw.clear();
        let r = w.collect_direct(&mem, a[n - 300], DataStack::default(), &mut raw, true);
        assert_eq!(r, Err(Drop::Cycle));
        assert!(raw.len() < 1000, "{}", raw.len());
        // A loop longer than the cap ends there at the latest.
        f[n - 1].put(f_back, &a[0].to_ne_bytes());
        raw.clear();
        let r = w.collect_direct(&mem, a[10], DataStack::default(), &mut raw, true);
        assert!(matches!(r, Ok(true) | Err(Drop::Cycle)), "{r:?}");
        assert!(raw.len() <= DEPTH_CAP);
    }

    /// The `['coro_burn']` cut (test_gen_coro): a chain ending in a suspended generator or
    /// coroutine frame is torn (3.8/3.9: not executing, a value stack, generator code; 3.10:
    /// FRAME_SUSPENDED); a root frame in a tracer's `call` event (same frame state, plain
    /// code) is not.
    #[test]
    fn chain_ending_in_a_suspended_generator_is_torn() {
        // Fake code objects: only co_flags is read.
        let mut gen_code = Obj([0; 128]);
        let mut plain_code = Obj([0; 128]);
        for minor in [8, 9, 10] {
            let model = object_model(minor);
            let FrameModel::Object {
                f_back,
                f_code,
                ob_type,
                live: Some(live),
                ..
            } = model
            else {
                unreachable!()
            };
            let co_flags = Layout::for_version(3, minor)
                .unwrap()
                .code_co_flags
                .unwrap() as usize;
            gen_code.put(co_flags, &0x80u32.to_ne_bytes()); // CO_COROUTINE
            plain_code.put(co_flags, &0x3u32.to_ne_bytes());
            let mut f = frames();
            let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
            // f0 (running) -> f1 (root: suspended, or in a `call` event).
            let set = |f: &mut [Obj], i: usize, back: usize, code: usize, suspended: bool| {
                let o = &mut f[i];
                o.put(ob_type, &FRAME_TYPE.to_ne_bytes());
                o.put(f_back, &back.to_ne_bytes());
                o.put(f_code, &code.to_ne_bytes());
                match live {
                    Liveness::State { state, .. } => {
                        o.put(state, &[if suspended { FRAME_SUSPENDED as u8 } else { 0 }])
                    }
                    Liveness::Executing {
                        executing,
                        stacktop,
                        ..
                    } => {
                        o.put(executing, &[u8::from(!suspended)]);
                        o.put(
                            stacktop,
                            &(if suspended { 0x6000_0000usize } else { 0 }).to_ne_bytes(),
                        );
                    }
                }
            };
            set(&mut f, 0, a[1], plain_code.addr(), false);
            set(&mut f, 1, 0, gen_code.addr(), true);
            for check_top in [true, false] {
                let copied = walk_with(model, &mut View::new(), a[0], check_top);
                assert_eq!(copied.unwrap_err(), Drop::Suspended, "3.{minor}");
                let direct = walk_direct(model, a[0], check_top);
                assert_eq!(direct.unwrap_err(), Drop::Suspended, "3.{minor}");
            }
            // The coroutine alone (the reported `['coro_burn']`).
            assert_eq!(
                walk(model, &mut View::new(), a[1]).unwrap_err(),
                Drop::Suspended
            );
            // Running root, or (3.8/3.9) a plain root in a `call` event: a stack.
            set(&mut f, 1, 0, gen_code.addr(), false);
            assert_eq!(walk(model, &mut View::new(), a[0]).unwrap().len(), 2);
            if minor < 10 {
                set(&mut f, 1, 0, plain_code.addr(), true);
                assert_eq!(walk(model, &mut View::new(), a[0]).unwrap().len(), 2);
            }
        }
    }

    /// 3.11+: a chain whose last frame is owned by a generator is torn; one that ends in the
    /// thread's own frame or (3.12+) in a C-stack shim is not.
    #[test]
    fn interp_chain_ending_in_a_generator_frame_is_torn() {
        for minor in [11, 12, 13, 14] {
            let l = Layout::for_version(3, minor).unwrap();
            let (model, _) = crate::sampler::tests_frame_model(l, minor);
            let FrameModel::Interp {
                previous,
                code,
                owner,
                owner_generator,
                ..
            } = model
            else {
                unreachable!()
            };
            let mut f = frames();
            let a: Vec<usize> = f.iter().map(|b| b.addr()).collect();
            let set = |f: &mut [Obj], i: usize, prev: usize, own: u8| {
                f[i].put(previous, &prev.to_ne_bytes());
                f[i].put(code, &0x5000_0000usize.to_ne_bytes());
                f[i].put(owner, &[own]);
            };
            set(&mut f, 0, a[1], 0);
            set(&mut f, 1, 0, owner_generator);
            let mut raw = Vec::new();
            // SAFETY: live test frames.
            let mem = unsafe { DirectMem::new() };
            let w = Walker::new(model, LineFormat::Locations);
            let r = w.collect_direct(&mem, a[0], DataStack::default(), &mut raw, true);
            assert_eq!(r, Err(Drop::Suspended), "3.{minor}");
            set(&mut f, 1, 0, 0);
            raw.clear();
            let r = w.collect_direct(&mem, a[0], DataStack::default(), &mut raw, true);
            assert_eq!(r, Ok(false), "3.{minor}");
            // A generator frame in the middle is fine.
            set(&mut f, 0, a[1], owner_generator);
            raw.clear();
            let r = w.collect_direct(&mem, a[0], DataStack::default(), &mut raw, true);
            assert_eq!(r, Ok(false), "3.{minor}");
        }
    }

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
