//! Thread states of the main interpreter: copying one `PyThreadState`,
//! walking the list safely, and the kernel TID of each thread.
//!
//! The list is walked without its mutex (taking it could block behind the
//! interpreter), so it is treated as untrusted: a length cap, revisit
//! detection, and `tstate.interp == interp` for every element.
//!
//! Kernel TIDs: 3.11+ keep `native_thread_id` in the thread state. 3.8–3.10
//! keep only the `pthread_t`; on glibc that is the address of the thread's
//! `struct pthread`, whose `tid` field offset is found at start-up by scanning
//! `pthread_self()` of helper threads for their `gettid()` and verified on
//! several threads (no offset is assumed).

use crate::fasthash::AddrSet;
use crate::memory::MemoryReader;

/// No more thread states than this are visited per walk.
pub const MAX_THREADS: usize = 4096;

/// Where the top frame pointer is found from a thread state.
#[derive(Debug, Clone, Copy)]
pub enum TopFrame {
    /// 3.8–3.10 `tstate.frame`, 3.13+ `tstate.current_frame`.
    Direct(usize),
    /// 3.11/3.12: `tstate.cframe->current_frame`.
    ViaCFrame {
        /// `tstate.cframe`.
        cframe: usize,
        /// `_PyCFrame.current_frame`.
        current_frame: usize,
    },
}

/// Per-thread "holds the GIL" flag, where the version has one.
#[derive(Debug, Clone, Copy)]
pub enum HoldsGil {
    /// No per-thread flag: compare with the GIL's `last_holder` while locked.
    FromGil,
    /// 3.13: a bit of the 32-bit `_status` word.
    StatusBit {
        /// `tstate._status`.
        off: usize,
        /// Bit index of `holds_gil`.
        bit: u32,
    },
    /// 3.14: `int holds_gil`.
    Int(usize),
}

/// Offsets of `PyThreadState` fields used by the sampler.
#[derive(Debug, Clone, Copy)]
pub struct TstateModel {
    /// Bytes copied per thread state (covers every field below).
    pub read_len: usize,
    /// `next`.
    pub next: usize,
    /// `interp`.
    pub interp: usize,
    /// `thread_id` (`pthread_t`).
    pub thread_id: usize,
    /// 3.11+: `native_thread_id`.
    pub native_thread_id: Option<usize>,
    /// Where the top frame is.
    pub top: TopFrame,
    /// Per-thread GIL flag.
    pub holds: HoldsGil,
    /// 3.11+: `datastack_chunk`.
    pub datastack_chunk: Option<usize>,
    /// 3.11+: `datastack_top`.
    pub datastack_top: Option<usize>,
    /// 3.11+: `datastack_limit`.
    pub datastack_limit: Option<usize>,
}

/// What one copy of a thread state says.
#[derive(Debug, Clone, Copy, Default)]
pub struct TstateSnap {
    /// Address of the thread state.
    pub addr: usize,
    /// `next`.
    pub next: usize,
    /// `interp`.
    pub interp: usize,
    /// `thread_id`.
    pub thread_id: u64,
    /// 3.11+: `native_thread_id`, if plausible.
    pub native_id: Option<u32>,
    /// The frame pointer (`frame`/`current_frame`) or, for
    /// [`TopFrame::ViaCFrame`], the `cframe` pointer.
    pub top_field: usize,
    /// The per-thread GIL flag, if the version has one.
    pub holds_flag: Option<bool>,
    /// `datastack_chunk`, 0 if none.
    pub chunk: usize,
    /// `datastack_top`, 0 if none.
    pub stack_top: usize,
    /// `datastack_limit`, 0 if none.
    pub stack_limit: usize,
}

fn u64_at(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    Some(u64::from_ne_bytes(a))
}

fn u32_at(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    Some(u32::from_ne_bytes(a))
}

/// Kernel TIDs are positive `pid_t`s.
pub fn plausible_tid(v: u64) -> Option<u32> {
    if v > 0 && v <= i32::MAX as u64 {
        Some(v as u32)
    } else {
        None
    }
}

impl TstateModel {
    /// Copies and parses the thread state at `addr` (using `buf` as storage).
    pub fn read(
        &self,
        reader: &MemoryReader,
        addr: usize,
        buf: &mut Vec<u8>,
    ) -> Option<TstateSnap> {
        if addr == 0 || addr % 8 != 0 {
            return None;
        }
        buf.resize(self.read_len, 0);
        reader.read(addr, buf).ok()?;
        self.parse(addr, buf)
    }

    /// Parses a copy of the first `read_len` bytes of the thread state at `addr`.
    pub fn parse(&self, addr: usize, buf: &[u8]) -> Option<TstateSnap> {
        let top_field = match self.top {
            TopFrame::Direct(o) => u64_at(buf, o)?,
            TopFrame::ViaCFrame { cframe, .. } => u64_at(buf, cframe)?,
        } as usize;
        let holds_flag = match self.holds {
            HoldsGil::FromGil => None,
            HoldsGil::StatusBit { off, bit } => Some(u32_at(buf, off)? & (1u32 << bit) != 0),
            HoldsGil::Int(off) => Some(u32_at(buf, off)? != 0),
        };
        let opt = |o: Option<usize>| -> Option<u64> {
            match o {
                Some(o) => u64_at(buf, o),
                None => Some(0),
            }
        };
        Some(TstateSnap {
            addr,
            next: u64_at(buf, self.next)? as usize,
            interp: u64_at(buf, self.interp)? as usize,
            thread_id: u64_at(buf, self.thread_id)?,
            native_id: match self.native_thread_id {
                Some(o) => plausible_tid(u64_at(buf, o)?),
                None => None,
            },
            top_field,
            holds_flag,
            chunk: opt(self.datastack_chunk)? as usize,
            stack_top: opt(self.datastack_top)? as usize,
            stack_limit: opt(self.datastack_limit)? as usize,
        })
    }
}

/// Visits the thread-state list from `head` with a cap, revisit detection and
/// the back-link check; calls `f` for each valid element. Returns the number
/// visited and whether the walk ended early on a broken list.
pub fn for_each_tstate(
    reader: &MemoryReader,
    model: &TstateModel,
    interp: usize,
    head: usize,
    seen: &mut AddrSet,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(&TstateSnap),
) -> (usize, bool) {
    seen.clear();
    let mut cur = head;
    let mut n = 0;
    while cur != 0 {
        if n >= MAX_THREADS || !seen.insert(cur) {
            return (n, true);
        }
        let Some(snap) = model.read(reader, cur, buf) else {
            return (n, true);
        };
        if snap.interp != interp {
            return (n, true);
        }
        f(&snap);
        n += 1;
        cur = snap.next;
    }
    (n, false)
}

/// This thread's `pthread_self()` and `gettid()`.
fn self_ids() -> (usize, i32) {
    // SAFETY: neither call has preconditions.
    unsafe { (libc::pthread_self() as usize, libc::gettid()) }
}

/// 4-aligned offsets inside the first `span` bytes at `pthread` that hold `tid`.
fn tid_candidates(reader: &MemoryReader, pthread: usize, tid: i32) -> Vec<usize> {
    for span in [1024usize, 768, 512] {
        let mut buf = vec![0u8; span];
        if reader.read(pthread, &mut buf).is_ok() {
            return buf
                .chunks_exact(4)
                .enumerate()
                .filter(|(_, c)| i32::from_ne_bytes([c[0], c[1], c[2], c[3]]) == tid)
                .map(|(i, _)| i * 4)
                .collect();
        }
    }
    Vec::new()
}

/// Finds the offset of the kernel TID inside glibc's `struct pthread` (the
/// memory `pthread_self()` points to): the offsets holding `gettid()` on two
/// helper threads and on the calling thread must agree. `None` if they do not
/// (e.g. musl, or another C library).
pub fn find_pthread_tid_offset(reader: &MemoryReader) -> Option<usize> {
    let mut sets: Vec<Vec<usize>> = Vec::new();
    for _ in 0..2 {
        // Scan a helper thread while it is alive (its tid differs from the
        // pid, unlike the main thread's).
        let (tx, rx) = std::sync::mpsc::channel::<Vec<usize>>();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let spawned = std::thread::scope(|s| {
            let h = std::thread::Builder::new()
                .name("ember-tidprobe".into())
                .spawn_scoped(s, move || {
                    let (pt, tid) = self_ids();
                    let _ = tx.send(tid_candidates(reader, pt, tid));
                    let _ = done_rx.recv();
                });
            let got = rx.recv().ok();
            let _ = done_tx.send(());
            h.ok().and(got)
        });
        sets.push(spawned?);
    }
    let (pt, tid) = self_ids();
    sets.push(tid_candidates(reader, pt, tid));
    let first = sets.first()?;
    first
        .iter()
        .copied()
        .find(|off| sets.iter().all(|s| s.contains(off)))
}

/// Reads the kernel TID of the thread whose `pthread_t` is `thread_id`, at the
/// offset found by [`find_pthread_tid_offset`].
pub fn native_id_from_pthread(reader: &MemoryReader, thread_id: u64, off: usize) -> Option<u32> {
    let addr = (thread_id as usize).checked_add(off)?;
    let v = reader.read_u32(addr).ok()?;
    plausible_tid(u64::from(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tid_offset_on_glibc() {
        let r = MemoryReader::new().unwrap();
        let off = find_pthread_tid_offset(&r);
        if cfg!(target_env = "gnu") {
            let off = off.expect("glibc struct pthread tid offset");
            let (pt, tid) = self_ids();
            assert_eq!(native_id_from_pthread(&r, pt as u64, off), Some(tid as u32));
            // And for another live thread.
            let (tx, rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let h = std::thread::spawn(move || {
                tx.send(self_ids()).unwrap();
                done_rx.recv().unwrap();
            });
            let (pt2, tid2) = rx.recv().unwrap();
            assert_eq!(
                native_id_from_pthread(&r, pt2 as u64, off),
                Some(tid2 as u32)
            );
            done_tx.send(()).unwrap();
            h.join().unwrap();
        }
    }

    #[test]
    fn list_walk_detects_loops_and_foreign_interp() {
        // Fake thread states: [prev, next, interp, thread_id]
        let model = TstateModel {
            read_len: 32,
            next: 8,
            interp: 16,
            thread_id: 24,
            native_thread_id: None,
            top: TopFrame::Direct(0),
            holds: HoldsGil::FromGil,
            datastack_chunk: None,
            datastack_top: None,
            datastack_limit: None,
        };
        let r = MemoryReader::new().unwrap();
        let interp = 0xabc0usize;
        let mut ts = vec![[0u64; 4]; 3];
        let addr = |ts: &Vec<[u64; 4]>, i: usize| ts[i].as_ptr() as usize;
        let (a0, a1, a2) = (addr(&ts, 0), addr(&ts, 1), addr(&ts, 2));
        ts[0] = [0, a1 as u64, interp as u64, 100];
        ts[1] = [0, a2 as u64, interp as u64, 101];
        ts[2] = [0, 0, interp as u64, 102];
        let mut seen = AddrSet::default();
        let mut buf = vec![];
        let mut ids = vec![];
        let (n, broken) = for_each_tstate(&r, &model, interp, a0, &mut seen, &mut buf, |s| {
            ids.push(s.thread_id)
        });
        assert_eq!((n, broken), (3, false));
        assert_eq!(ids, [100, 101, 102]);

        // next == self
        ts[2][1] = a2 as u64;
        let (n, broken) = for_each_tstate(&r, &model, interp, a0, &mut seen, &mut buf, |_| {});
        assert_eq!((n, broken), (3, true));
        // a longer loop
        ts[2][1] = a0 as u64;
        let (n, broken) = for_each_tstate(&r, &model, interp, a0, &mut seen, &mut buf, |_| {});
        assert_eq!((n, broken), (3, true));
        // foreign interpreter
        ts[1][2] = 0x9999;
        let (n, broken) = for_each_tstate(&r, &model, interp, a0, &mut seen, &mut buf, |_| {});
        assert_eq!((n, broken), (1, true));
        // unreadable next
        ts[1][2] = interp as u64;
        ts[1][1] = 0x10;
        let (n, broken) = for_each_tstate(&r, &model, interp, a0, &mut seen, &mut buf, |_| {});
        assert_eq!((n, broken), (2, true));
    }
}
