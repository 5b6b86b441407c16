//! Copies bytes out of this process's own memory without dereferencing any
//! pointer.
//!
//! Every read goes through the kernel: `process_vm_readv(getpid(), …)` by
//! default, or `pread` on `/proc/self/mem` when that system call is refused
//! (e.g. `EPERM`/`ENOSYS` under a seccomp filter). An address that is not
//! mapped, or a range that runs off the end of a mapping, comes back as a
//! [`ReadError`] instead of a fault, so interpreter memory that another thread
//! frees or reuses mid-read can never crash the host.
//!
//! The backend is chosen by a probe at construction. A short count is always an
//! error: callers never see partially filled buffers as success.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

/// Addresses below this are never valid (the zero page and its neighbours):
/// such reads fail without a system call.
const MIN_ADDR: usize = 4096;

/// `process_vm_readv` accepts at most this many iovecs per call (`IOV_MAX`).
const MAX_IOV: usize = 1024;

/// Why a read failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReadError {
    /// The address is NULL, in the zero page, or `addr + len` overflows.
    #[error("invalid address {addr:#x} (+{len} bytes)")]
    BadAddress {
        /// Start of the requested range.
        addr: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// The kernel copied fewer bytes than asked: part of the range is unmapped.
    #[error("short read at {addr:#x}: got {got} of {wanted} bytes")]
    Short {
        /// Start of the (first) requested range.
        addr: usize,
        /// Bytes requested.
        wanted: usize,
        /// Bytes copied.
        got: usize,
    },
    /// The system call failed (`EFAULT`/`EIO` for unmapped memory, others for
    /// refused access).
    #[error("read at {addr:#x} failed: {source}")]
    Os {
        /// Start of the (first) requested range.
        addr: usize,
        /// The OS error.
        source: std::sync::Arc<std::io::Error>,
    },
}

/// Which kernel interface a [`MemoryReader`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReaderKind {
    /// `process_vm_readv` on our own pid.
    ProcessVmReadv,
    /// `pread` on `/proc/self/mem`.
    ProcSelfMem,
}

impl ReaderKind {
    /// Name used in telemetry.
    pub fn as_str(self) -> &'static str {
        match self {
            ReaderKind::ProcessVmReadv => "process_vm_readv",
            ReaderKind::ProcSelfMem => "/proc/self/mem",
        }
    }
}

enum Backend {
    Vm { pid: libc::pid_t },
    Mem { file: File },
}

/// Reads this process's memory by copy. See the module documentation.
pub struct MemoryReader {
    backend: Backend,
    errors: AtomicU64,
    calls: AtomicU64,
}

impl std::fmt::Debug for MemoryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryReader")
            .field("kind", &self.kind())
            .field("errors", &self.errors())
            .finish()
    }
}

/// Why no backend could be set up.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot read this process's memory: process_vm_readv failed ({vm}) and /proc/self/mem failed ({mem})"
)]
pub struct NoBackend {
    /// Error of the `process_vm_readv` probe.
    pub vm: std::io::Error,
    /// Error of the `/proc/self/mem` probe.
    pub mem: std::io::Error,
}

impl MemoryReader {
    /// Probes `process_vm_readv` on our own pid and falls back to
    /// `/proc/self/mem` if the call is refused.
    pub fn new() -> Result<MemoryReader, NoBackend> {
        let vm = match Self::with_kind(ReaderKind::ProcessVmReadv) {
            Ok(r) => return Ok(r),
            Err(e) => e,
        };
        match Self::with_kind(ReaderKind::ProcSelfMem) {
            Ok(r) => Ok(r),
            Err(mem) => Err(NoBackend { vm, mem }),
        }
    }

    /// A reader with the given backend, if a probe read through it works.
    pub fn with_kind(kind: ReaderKind) -> std::io::Result<MemoryReader> {
        let backend = match kind {
            // SAFETY: getpid has no preconditions.
            ReaderKind::ProcessVmReadv => Backend::Vm {
                pid: unsafe { libc::getpid() },
            },
            ReaderKind::ProcSelfMem => Backend::Mem {
                file: File::open("/proc/self/mem")?,
            },
        };
        let reader = MemoryReader {
            backend,
            errors: AtomicU64::new(0),
            calls: AtomicU64::new(0),
        };
        // Probe: copy a local value and compare.
        let probe: u64 = 0x656d_6265_7273_6370;
        let mut buf = [0u8; 8];
        match reader.read(&probe as *const u64 as usize, &mut buf) {
            Ok(()) if u64::from_ne_bytes(buf) == probe => Ok(reader),
            Ok(()) => Err(std::io::Error::other("probe read returned wrong bytes")),
            Err(ReadError::Os { source, .. }) => {
                Err(std::io::Error::new(source.kind(), source.to_string()))
            }
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }

    /// Which backend is in use.
    pub fn reader_kind(&self) -> ReaderKind {
        match self.backend {
            Backend::Vm { .. } => ReaderKind::ProcessVmReadv,
            Backend::Mem { .. } => ReaderKind::ProcSelfMem,
        }
    }

    /// `"process_vm_readv"` or `"/proc/self/mem"`.
    pub fn kind(&self) -> &'static str {
        self.reader_kind().as_str()
    }

    /// Number of failed reads since construction.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Number of read system calls made since construction.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    fn fail<T>(&self, e: ReadError) -> Result<T, ReadError> {
        self.errors.fetch_add(1, Ordering::Relaxed);
        Err(e)
    }

    fn check_range(addr: usize, len: usize) -> Result<(), ReadError> {
        if addr < MIN_ADDR || addr.checked_add(len).is_none() {
            return Err(ReadError::BadAddress { addr, len });
        }
        Ok(())
    }

    /// Fills `buf` with the bytes at `addr`. Fails unless every byte was copied.
    pub fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), ReadError> {
        if buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = Self::check_range(addr, buf.len()) {
            return self.fail(e);
        }
        let wanted = buf.len();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let got = match &self.backend {
            Backend::Vm { pid } => {
                let local = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: wanted,
                };
                let remote = libc::iovec {
                    iov_base: addr as *mut libc::c_void,
                    iov_len: wanted,
                };
                // SAFETY: `local` describes `buf`, which we own mutably; the
                // remote range is only read by the kernel, which validates it.
                unsafe { libc::process_vm_readv(*pid, &local, 1, &remote, 1, 0) }
            }
            Backend::Mem { file } => {
                return match pread_full(file, addr, buf) {
                    Ok(got) if got == wanted => Ok(()),
                    Ok(got) => self.fail(ReadError::Short { addr, wanted, got }),
                    Err(e) => self.fail(e),
                };
            }
        };
        if got < 0 {
            return self.fail(ReadError::Os {
                addr,
                source: std::sync::Arc::new(std::io::Error::last_os_error()),
            });
        }
        let got = got as usize;
        if got != wanted {
            return self.fail(ReadError::Short { addr, wanted, got });
        }
        Ok(())
    }

    /// Fills each `(addr, buf)` pair, with one system call per 1024 ranges on
    /// the `process_vm_readv` backend. Fails unless every byte of every range
    /// was copied (which range failed is not reported).
    pub fn read_many(&self, reqs: &mut [(usize, &mut [u8])]) -> Result<(), ReadError> {
        let first = reqs.first().map(|r| r.0).unwrap_or(0);
        for (addr, buf) in reqs.iter() {
            if let Err(e) = Self::check_range(*addr, buf.len()) {
                return self.fail(e);
            }
        }
        match &self.backend {
            Backend::Mem { .. } => {
                for (addr, buf) in reqs.iter_mut() {
                    self.read(*addr, buf)?;
                }
                Ok(())
            }
            Backend::Vm { pid } => {
                let mut local: Vec<libc::iovec> = Vec::with_capacity(reqs.len().min(MAX_IOV));
                let mut remote: Vec<libc::iovec> = Vec::with_capacity(reqs.len().min(MAX_IOV));
                for group in reqs.chunks_mut(MAX_IOV) {
                    local.clear();
                    remote.clear();
                    let mut wanted = 0usize;
                    for (addr, buf) in group.iter_mut() {
                        if buf.is_empty() {
                            continue;
                        }
                        wanted += buf.len();
                        local.push(libc::iovec {
                            iov_base: buf.as_mut_ptr().cast(),
                            iov_len: buf.len(),
                        });
                        remote.push(libc::iovec {
                            iov_base: *addr as *mut libc::c_void,
                            iov_len: buf.len(),
                        });
                    }
                    if local.is_empty() {
                        continue;
                    }
                    self.calls.fetch_add(1, Ordering::Relaxed);
                    // SAFETY: each local iovec describes a distinct buffer we
                    // hold mutably; remote ranges are validated by the kernel.
                    let got = unsafe {
                        libc::process_vm_readv(
                            *pid,
                            local.as_ptr(),
                            local.len() as libc::c_ulong,
                            remote.as_ptr(),
                            remote.len() as libc::c_ulong,
                            0,
                        )
                    };
                    if got < 0 {
                        return self.fail(ReadError::Os {
                            addr: first,
                            source: std::sync::Arc::new(std::io::Error::last_os_error()),
                        });
                    }
                    if got as usize != wanted {
                        return self.fail(ReadError::Short {
                            addr: first,
                            wanted,
                            got: got as usize,
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// Reads `N` bytes.
    #[inline]
    pub fn read_array<const N: usize>(&self, addr: usize) -> Result<[u8; N], ReadError> {
        let mut b = [0u8; N];
        self.read(addr, &mut b)?;
        Ok(b)
    }

    /// Reads a native-endian `usize` (a pointer value, never followed here).
    #[inline]
    pub fn read_usize(&self, addr: usize) -> Result<usize, ReadError> {
        self.read_array::<{ std::mem::size_of::<usize>() }>(addr)
            .map(usize::from_ne_bytes)
    }

    /// Reads a native-endian `u64`.
    #[inline]
    pub fn read_u64(&self, addr: usize) -> Result<u64, ReadError> {
        self.read_array::<8>(addr).map(u64::from_ne_bytes)
    }

    /// Reads a native-endian `i64`.
    #[inline]
    pub fn read_i64(&self, addr: usize) -> Result<i64, ReadError> {
        self.read_array::<8>(addr).map(i64::from_ne_bytes)
    }

    /// Reads a native-endian `u32`.
    #[inline]
    pub fn read_u32(&self, addr: usize) -> Result<u32, ReadError> {
        self.read_array::<4>(addr).map(u32::from_ne_bytes)
    }

    /// Reads a native-endian `i32`.
    #[inline]
    pub fn read_i32(&self, addr: usize) -> Result<i32, ReadError> {
        self.read_array::<4>(addr).map(i32::from_ne_bytes)
    }

    /// Reads one byte.
    #[inline]
    pub fn read_u8(&self, addr: usize) -> Result<u8, ReadError> {
        self.read_array::<1>(addr).map(|b| b[0])
    }
}

/// A source of bytes for decoding code objects, strings and line tables:
/// the copying [`MemoryReader`], or [`DirectMem`]'s plain loads for the
/// calling thread's own live objects.
pub trait Mem {
    /// Fills `buf` with the bytes at `addr`; fails unless every byte was read.
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), ReadError>;

    /// A native-endian `usize` at `addr`.
    fn read_usize(&self, addr: usize) -> Result<usize, ReadError> {
        let mut b = [0u8; std::mem::size_of::<usize>()];
        Mem::read(self, addr, &mut b)?;
        Ok(usize::from_ne_bytes(b))
    }
}

impl Mem for MemoryReader {
    #[inline]
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), ReadError> {
        MemoryReader::read(self, addr, buf)
    }
}

/// Longest single read [`DirectMem`] performs (a name, path or line table is
/// capped below this by its decoder; anything longer is refused).
pub const DIRECT_MAX_READ: usize = 4 << 20;

/// Plain loads (`memcpy` from the address) instead of system calls, for the
/// calling thread's own stack while it holds the GIL: its thread state, the
/// frames reached from it, and the code objects, strings and bytes those
/// frames reference are alive and not written by anyone else until the
/// calling thread lets go of the GIL.
///
/// Only the obvious nonsense is refused (the zero page, a range that wraps,
/// reads longer than [`DIRECT_MAX_READ`]); anything else is dereferenced, so
/// the safety rests on the contract of [`DirectMem::new`]. The probed variant
/// ([`DirectMem::probed`]) first copies every range through a
/// [`MemoryReader`] (a read of unmapped memory then fails instead of
/// faulting): the start-up check runs the direct walk that way once before
/// it is trusted without the probe.
#[derive(Debug, Clone, Copy)]
pub struct DirectMem<'a> {
    probe: Option<&'a MemoryReader>,
}

impl DirectMem<'static> {
    /// Direct loads without a probe.
    ///
    /// # Safety
    /// Every range read through it must be mapped and readable, and must not
    /// be written concurrently, for as long as the value is used: the caller
    /// only passes it to code that follows live pointers from the calling
    /// thread's own thread state, with the GIL held.
    pub unsafe fn new() -> DirectMem<'static> {
        DirectMem { probe: None }
    }
}

impl<'a> DirectMem<'a> {
    /// Direct loads, each preceded by a copy of the same range through
    /// `reader` (a failed copy fails the read without touching memory).
    ///
    /// # Safety
    /// A range that the probe copied must stay mapped until the direct load
    /// right after it (nothing unmaps the calling thread's live objects
    /// while it holds the GIL).
    pub unsafe fn probed(reader: &'a MemoryReader) -> DirectMem<'a> {
        DirectMem {
            probe: Some(reader),
        }
    }

    /// Whether every read is probed first.
    pub fn is_probed(&self) -> bool {
        self.probe.is_some()
    }

    /// One native-endian `u64` field at `addr` (a single load; probed: the copy).
    #[inline]
    pub fn load_u64(&self, addr: usize) -> Option<u64> {
        if !(MIN_ADDR..=usize::MAX - 8).contains(&addr) {
            return None;
        }
        if let Some(r) = self.probe {
            return r.read_u64(addr).ok();
        }
        // SAFETY: as for `Mem::read`: readable, not written concurrently.
        Some(unsafe { std::ptr::read_unaligned(addr as *const u64) })
    }

    /// One native-endian `u32` field at `addr` (see [`DirectMem::load_u64`]).
    #[inline]
    pub fn load_u32(&self, addr: usize) -> Option<u32> {
        if !(MIN_ADDR..=usize::MAX - 4).contains(&addr) {
            return None;
        }
        if let Some(r) = self.probe {
            return r.read_u32(addr).ok();
        }
        // SAFETY: as for `Mem::read`: readable, not written concurrently.
        Some(unsafe { std::ptr::read_unaligned(addr as *const u32) })
    }
}

impl Mem for DirectMem<'_> {
    #[inline]
    fn read(&self, addr: usize, buf: &mut [u8]) -> Result<(), ReadError> {
        let len = buf.len();
        if len == 0 {
            return Ok(());
        }
        if addr < MIN_ADDR || addr.checked_add(len).is_none() || len > DIRECT_MAX_READ {
            return Err(ReadError::BadAddress { addr, len });
        }
        if let Some(r) = self.probe {
            r.read(addr, buf)?;
        }
        // SAFETY: the range is readable and not written concurrently (the
        // contract of `DirectMem::new`, or proven mapped by the probe just
        // now, see `DirectMem::probed`); `buf` is ours and does not overlap
        // interpreter memory.
        unsafe { std::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), len) };
        Ok(())
    }
}

/// Ranges closer than this are read as one range: the bytes between them lie
/// on pages that one of the two already touches, so they are mapped too.
const MERGE_GAP: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Seg {
    addr: usize,
    off: usize,
    len: usize,
}

/// A set of memory ranges copied together: requested ranges are sorted,
/// merged when less than a page apart, and read with one vectored system call;
/// later lookups are served from the copy.
#[derive(Debug, Default)]
pub struct View {
    /// Sorted by address; may overlap.
    segs: Vec<Seg>,
    /// `reach[i]`: the largest end address of `segs[..=i]`, so that a lookup
    /// scans back only over segments that can still contain the range.
    reach: Vec<usize>,
    /// Backing store; only `..used` is meaningful. It never shrinks, so
    /// steady-state fetches do not re-zero it.
    buf: Vec<u8>,
    used: usize,
    scratch: Vec<(usize, usize)>,
}

impl View {
    /// An empty view.
    pub fn new() -> View {
        View::default()
    }

    /// Forgets every range.
    pub fn clear(&mut self) {
        self.segs.clear();
        self.reach.clear();
        self.used = 0;
    }

    /// Number of merged ranges held.
    pub fn segments(&self) -> usize {
        self.segs.len()
    }

    /// Copies `ranges` (`(addr, len)`) in one vectored read and adds them.
    /// All or nothing: on error the view is unchanged.
    pub fn fetch(
        &mut self,
        reader: &MemoryReader,
        ranges: &[(usize, usize)],
    ) -> Result<(), ReadError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.extend(
            ranges
                .iter()
                .copied()
                .filter(|r| r.1 > 0 && !self.contains(r.0, r.1)),
        );
        self.scratch = scratch;
        if self.scratch.is_empty() {
            return Ok(());
        }
        self.scratch.sort_unstable();
        // Merge.
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.scratch.len());
        for &(a, l) in &self.scratch {
            let end = a.saturating_add(l);
            match merged.last_mut() {
                Some((ma, ml)) if a <= ma.saturating_add(*ml).saturating_add(MERGE_GAP) => {
                    let mend = ma.saturating_add(*ml).max(end);
                    *ml = mend - *ma;
                }
                _ => merged.push((a, l)),
            }
        }
        let old_len = self.used;
        let total: usize = merged.iter().map(|r| r.1).sum();
        if self.buf.len() < old_len + total {
            self.buf.resize(old_len + total, 0);
        }
        let result = {
            let mut reqs: Vec<(usize, &mut [u8])> = Vec::with_capacity(merged.len());
            let mut rest: &mut [u8] = self.buf.get_mut(old_len..).unwrap_or_default();
            for &(a, l) in &merged {
                let (head, tail) = rest.split_at_mut(l.min(rest.len()));
                reqs.push((a, head));
                rest = tail;
            }
            reader.read_many(&mut reqs)
        };
        result?;
        self.used = old_len + total;
        let mut off = old_len;
        for (a, l) in merged {
            // Inserted in place: walks add ranges one at a time, and a full
            // sort per miss made a deep stack's walk quadratic.
            let i = self.segs.partition_point(|s| s.addr <= a);
            self.segs.insert(
                i,
                Seg {
                    addr: a,
                    off,
                    len: l,
                },
            );
            off += l;
        }
        self.reach.clear();
        let mut reach = 0usize;
        for s in &self.segs {
            reach = reach.max(s.addr.saturating_add(s.len));
            self.reach.push(reach);
        }
        Ok(())
    }

    /// Bytes copied since the last [`View::clear`].
    pub fn used(&self) -> usize {
        self.used
    }

    /// Whether `[addr, addr + len)` is held.
    pub fn contains(&self, addr: usize, len: usize) -> bool {
        self.find(addr, len).is_some()
    }

    fn find(&self, addr: usize, len: usize) -> Option<usize> {
        let end = addr.checked_add(len)?;
        let hit = |s: &Seg| addr >= s.addr && end <= s.addr + s.len;
        // Segments are sorted by address: the candidate is the last one
        // starting at or before `addr` (overlapping segments: scan).
        let i = self.segs.partition_point(|s| s.addr <= addr);
        // Scan back while an earlier segment can still reach `end`.
        for j in (0..i).rev() {
            if self.reach.get(j).is_none_or(|&r| r < end) {
                return None;
            }
            let s = self.segs.get(j)?;
            if hit(s) {
                return Some(s.off + (addr - s.addr));
            }
        }
        None
    }

    /// Where `[addr, addr + len)` starts in the copy, if held; stays valid
    /// until [`View::clear`] (later fetches only append).
    pub fn locate(&self, addr: usize, len: usize) -> Option<usize> {
        self.find(addr, len)
    }

    /// `len` copied bytes at position `off` of the copy (see [`View::locate`]).
    pub fn at(&self, off: usize, len: usize) -> Option<&[u8]> {
        self.buf
            .get(off..off.checked_add(len)?.min(self.used))
            .filter(|b| b.len() == len)
    }

    /// The copied bytes of `[addr, addr + len)`, if held.
    pub fn get(&self, addr: usize, len: usize) -> Option<&[u8]> {
        let off = self.find(addr, len)?;
        self.buf.get(off..off + len)
    }
}

/// `pread` until `buf` is full, EOF, or an error. Returns the bytes copied; an
/// error with nothing copied is returned as an error.
fn pread_full(file: &File, addr: usize, buf: &mut [u8]) -> Result<usize, ReadError> {
    // /proc/self/mem takes the address as a file offset (off_t, signed).
    if i64::try_from(addr).is_err() {
        return Err(ReadError::BadAddress {
            addr,
            len: buf.len(),
        });
    }
    let mut done = 0usize;
    while let Some(rest) = buf.get_mut(done..) {
        if rest.is_empty() {
            break;
        }
        match file.read_at(rest, (addr + done) as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if done == 0 => {
                return Err(ReadError::Os {
                    addr,
                    source: std::sync::Arc::new(e),
                })
            }
            Err(_) => break,
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readers() -> Vec<MemoryReader> {
        vec![
            MemoryReader::with_kind(ReaderKind::ProcessVmReadv).unwrap(),
            MemoryReader::with_kind(ReaderKind::ProcSelfMem).unwrap(),
        ]
    }

    /// Maps two pages and unmaps the second: returns (page address, page size).
    fn page_then_hole() -> (usize, usize) {
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        let base = p as usize;
        unsafe {
            std::ptr::write_bytes(p as *mut u8, 0xab, page);
            assert_eq!(libc::munmap((base + page) as *mut libc::c_void, page), 0);
        }
        (base, page)
    }

    #[test]
    fn default_is_process_vm_readv() {
        let r = MemoryReader::new().unwrap();
        assert_eq!(r.kind(), "process_vm_readv");
    }

    #[test]
    fn reads_stack_and_heap() {
        for r in readers() {
            let on_stack: [u8; 5] = *b"hello";
            let mut out = [0u8; 5];
            r.read(on_stack.as_ptr() as usize, &mut out).unwrap();
            assert_eq!(&out, b"hello", "{}", r.kind());

            let heap: Vec<u64> = (0..1000).collect();
            let mut out = vec![0u8; 8000];
            r.read(heap.as_ptr() as usize, &mut out).unwrap();
            assert_eq!(u64::from_ne_bytes(out[8 * 999..].try_into().unwrap()), 999);
            assert_eq!(r.read_u64(heap.as_ptr() as usize + 8 * 7).unwrap(), 7);
            let x: u32 = 0xdead_beef;
            assert_eq!(r.read_u32(&x as *const u32 as usize).unwrap(), 0xdead_beef);
            let p = Box::new(42usize);
            let pp: *const usize = &*p;
            assert_eq!(r.read_usize(pp as usize).unwrap(), 42);
            assert_eq!(r.errors(), 0);
        }
    }

    #[test]
    fn unmapped_is_an_error_not_a_crash() {
        let (base, page) = page_then_hole();
        for r in readers() {
            let mut out = [0u8; 16];
            assert!(r.read(base + page, &mut out).is_err(), "{}", r.kind());
            assert!(r.read(0, &mut out).is_err());
            assert!(r.read(8, &mut out).is_err());
            assert!(r.read(usize::MAX - 4, &mut out).is_err());
            assert!(r.errors() >= 4);
        }
    }

    #[test]
    fn short_read_across_mapping_end_fails() {
        let (base, page) = page_then_hole();
        for r in readers() {
            let mut out = [0u8; 64];
            let e = r.read(base + page - 16, &mut out).unwrap_err();
            assert!(
                matches!(e, ReadError::Short { got: 16, .. } | ReadError::Os { .. }),
                "{}: {e:?}",
                r.kind()
            );
            // The mapped part alone is fine.
            let mut ok = [0u8; 16];
            r.read(base + page - 16, &mut ok).unwrap();
            assert_eq!(ok, [0xab; 16]);
        }
    }

    #[test]
    fn read_many_vectored() {
        let (base, page) = page_then_hole();
        let a: [u8; 4] = [1, 2, 3, 4];
        let b: Vec<u8> = vec![9; 300];
        for r in readers() {
            let mut x = [0u8; 4];
            let mut y = [0u8; 300];
            let mut z = [0u8; 8];
            {
                let mut reqs: [(usize, &mut [u8]); 3] = [
                    (a.as_ptr() as usize, &mut x),
                    (b.as_ptr() as usize, &mut y),
                    (base, &mut z),
                ];
                r.read_many(&mut reqs).unwrap();
            }
            assert_eq!(x, a);
            assert_eq!(y[299], 9);
            assert_eq!(z, [0xab; 8]);

            let mut bad = [0u8; 8];
            let mut reqs: [(usize, &mut [u8]); 2] =
                [(a.as_ptr() as usize, &mut x), (base + page, &mut bad)];
            assert!(r.read_many(&mut reqs).is_err(), "{}", r.kind());

            // More ranges than one system call takes.
            let many: Vec<u64> = (0..3000).collect();
            let mut outs = vec![[0u8; 8]; 3000];
            let mut reqs: Vec<(usize, &mut [u8])> = outs
                .iter_mut()
                .enumerate()
                .map(|(i, o)| (many.as_ptr() as usize + 8 * i, &mut o[..]))
                .collect();
            r.read_many(&mut reqs).unwrap();
            assert_eq!(u64::from_ne_bytes(outs[2999]), 2999);
        }
    }

    #[test]
    fn reads_other_threads_stack() {
        use std::sync::mpsc;
        let (tx, rx) = mpsc::channel();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let h = std::thread::spawn(move || {
            let local: [u8; 8] = *b"threaded";
            tx.send(local.as_ptr() as usize).unwrap();
            done_rx.recv().unwrap();
            std::hint::black_box(&local);
        });
        let addr = rx.recv().unwrap();
        for r in readers() {
            assert_eq!(&r.read_array::<8>(addr).unwrap(), b"threaded");
        }
        done_tx.send(()).unwrap();
        h.join().unwrap();
    }
    /// Overlapping segments added one fetch at a time (as a walk's misses
    /// are) are all found; a range no segment reaches is not.
    #[test]
    fn view_finds_ranges_in_overlapping_segments() {
        let data: Vec<u64> = (0..8192).collect();
        let d = data.as_ptr() as usize;
        let r = MemoryReader::new().unwrap();
        let mut v = View::new();
        // A long segment, then short ones starting inside it and past it.
        v.fetch(&r, &[(d, 8 * 1500)]).unwrap();
        for i in (1000..1990).step_by(10).chain((3000..8000).step_by(1000)) {
            v.fetch(&r, &[(d + 8 * i, 8 * 20)]).unwrap();
        }
        let g = |a: usize| {
            v.get(a, 8)
                .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        };
        for i in [0, 5, 999, 1000, 1499, 1500, 1999, 3000, 3019, 7019] {
            assert_eq!(g(d + 8 * i), Some(i as u64), "{i}");
        }
        for i in [2000, 2005, 2500, 3020, 7020, 8000] {
            assert_eq!(g(d + 8 * i), None, "{i}");
        }
        // A range that straddles two segments is not held as one.
        assert!(v.get(d + 8 * 3015, 64).is_none());
    }

    #[test]
    fn view_merges_and_serves() {
        let (base, page) = page_then_hole();
        let data: Vec<u64> = (0..4096).collect();
        let d = data.as_ptr() as usize;
        for r in readers() {
            let mut v = View::new();
            v.fetch(
                &r,
                &[
                    (d + 8 * 10, 16),
                    (d, 8),
                    (d + 8 * 100, 8),
                    (d + 8 * 3000, 8),
                ],
            )
            .unwrap();
            // 0, 10, 100 merge (gaps < a page); 3000*8 = 24000 is further.
            assert_eq!(v.segments(), 2);
            fn g(v: &View, a: usize) -> u64 {
                u64::from_ne_bytes(v.get(a, 8).unwrap().try_into().unwrap())
            }
            assert_eq!(g(&v, d + 8 * 11), 11);
            assert_eq!(g(&v, d + 8 * 50), 50); // inside the merged gap
            assert_eq!(g(&v, d + 8 * 3000), 3000);
            assert!(v.get(d + 8 * 2000, 8).is_none());
            // All or nothing.
            assert!(v.fetch(&r, &[(d + 8 * 2000, 8), (base + page, 8)]).is_err());
            assert!(v.get(d + 8 * 2000, 8).is_none());
            assert_eq!(g(&v, d + 8 * 3000), 3000);
            v.fetch(&r, &[(base, 8)]).unwrap();
            assert_eq!(v.get(base, 8).unwrap(), [0xab; 8]);
            v.clear();
            assert!(v.get(base, 8).is_none());
        }
    }
    /// Under a seccomp filter that refuses process_vm_readv with EPERM, the
    /// probe picks /proc/self/mem (checked in a forked child).
    #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
    #[test]
    fn falls_back_when_process_vm_readv_is_refused() {
        #[repr(C)]
        struct SockFilter {
            code: u16,
            jt: u8,
            jf: u8,
            k: u32,
        }
        #[repr(C)]
        struct SockFprog {
            len: u16,
            filter: *const SockFilter,
        }
        const LD_W_ABS: u16 = 0x20;
        const JEQ_K: u16 = 0x15;
        const RET_K: u16 = 0x06;
        const NR_PROCESS_VM_READV: u32 = 310;
        const RET_ERRNO: u32 = 0x0005_0000;
        const RET_ALLOW: u32 = 0x7fff_0000;
        let prog = [
            SockFilter {
                code: LD_W_ABS,
                jt: 0,
                jf: 0,
                k: 0,
            },
            SockFilter {
                code: JEQ_K,
                jt: 0,
                jf: 1,
                k: NR_PROCESS_VM_READV,
            },
            SockFilter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: RET_ERRNO | libc::EPERM as u32,
            },
            SockFilter {
                code: RET_K,
                jt: 0,
                jf: 0,
                k: RET_ALLOW,
            },
        ];
        let fprog = SockFprog {
            len: prog.len() as u16,
            filter: prog.as_ptr(),
        };
        unsafe {
            let pid = libc::fork();
            assert!(pid >= 0);
            if pid == 0 {
                let ok = libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                    && libc::prctl(
                        libc::PR_SET_SECCOMP,
                        2,
                        &fprog as *const SockFprog as usize,
                        0,
                        0,
                    ) == 0;
                let code = if !ok {
                    2
                } else {
                    let x: u64 = 42;
                    match MemoryReader::new() {
                        Ok(r)
                            if r.kind() == "/proc/self/mem"
                                && r.read_u64(&x as *const u64 as usize).ok() == Some(42) =>
                        {
                            0
                        }
                        Ok(_) => 3,
                        Err(_) => 4,
                    }
                };
                libc::_exit(code);
            }
            let mut status = 0;
            assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
            assert!(libc::WIFEXITED(status));
            assert_eq!(libc::WEXITSTATUS(status), 0, "child status");
        }
    }
}
