//! Runtime discovery and the [`Sampler`]: finds `_PyRuntime` and the main
//! interpreter once (with the GIL held), turns the generated layout into the
//! resolved models the walkers use, checks the layout against the running
//! interpreter (`_Py_DebugOffsets` on 3.13+, then the calling thread's own
//! state and stack), then samples all threads without the GIL.
//!
//! One [`Sampler::sample_all`]:
//! 1. one vectored read copies the globals (thread-list head, finalizing,
//!    GIL fields, 3.14 code-object generation) together with every thread
//!    state seen last time and the memory its last walk used (its "plan":
//!    the data-stack window, frames outside it, the `cframe` slot, glibc's
//!    TID slot; ranges less than a page apart are merged);
//! 2. the thread list is walked (capped, revisit detection, back-link
//!    check); each thread's frames are collected from that copy, reading only
//!    what moved; a walk that fails validation is retried once from a fresh
//!    copy of its thread state;
//! 3. the code objects of all threads are validated together (one vectored
//!    read, or none when the cache may trust its entries, see
//!    [`crate::code::Trust`]);
//! 4. frames are produced, leaf first.
//!
//! In steady state that is 1–2 system calls per sample, whatever the number
//! of threads.

use std::ffi::{c_void, CStr};

use std::ops::Range;

use crate::code::{CacheStats, CodeCache, CodeLayout, CodeRef, Trust, TypeAddrs, DEFAULT_CAPACITY};
use crate::fasthash::{AddrMap, AddrSet};
use crate::layout::Layout;
use crate::linetable::LineFormat;
use crate::memory::{DirectMem, Mem, MemoryReader, ReaderKind, View};
use crate::stack::{DataStack, Drop, Fetch, FrameModel, Liveness, RawFrame, Walker};
use crate::strings::StrLayout;
use crate::threads::{self, HoldsGil, TopFrame, TstateModel, TstateSnap};
use crate::{debug_offsets, SampleStats, SamplerError, ThreadStack};

type VoidFn = unsafe extern "C" fn() -> *mut c_void;

/// `dlsym(RTLD_DEFAULT, name)` as an address (0 if absent).
fn sym(name: &CStr) -> usize {
    // SAFETY: dlsym with a valid NUL-terminated name has no other preconditions.
    unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) as usize }
}

/// A zero-argument C function returning a pointer, looked up by name.
fn sym_fn(name: &CStr) -> Option<VoidFn> {
    let p = sym(name);
    if p == 0 {
        return None;
    }
    // SAFETY: the symbol is a function of this signature in every supported
    // CPython (checked per name by the callers).
    Some(unsafe { std::mem::transmute::<usize, VoidFn>(p) })
}

/// ELF size of the symbol containing `addr` (glibc `dladdr1`).
#[cfg(target_env = "gnu")]
fn symbol_size(reader: &MemoryReader, addr: usize) -> Option<u64> {
    const RTLD_DL_SYMENT: libc::c_int = 1;
    // SAFETY: Dl_info is plain data; dladdr1 fills it and `extra`.
    let mut info: libc::Dl_info = unsafe { std::mem::zeroed() };
    let mut extra: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid out-pointers; addr is only looked up, not dereferenced.
    let r = unsafe { libc::dladdr1(addr as *const c_void, &mut info, &mut extra, RTLD_DL_SYMENT) };
    if r == 0 || extra.is_null() || info.dli_saddr as usize != addr {
        return None;
    }
    // Elf64_Sym.st_size is at byte 16.
    reader.read_u64(extra as usize + 16).ok()
}

#[cfg(not(target_env = "gnu"))]
fn symbol_size(_reader: &MemoryReader, _addr: usize) -> Option<u64> {
    None
}

fn need(v: Option<u32>, name: &'static str) -> Result<usize, SamplerError> {
    v.map(|x| x as usize).ok_or_else(|| {
        SamplerError::LayoutMismatch(format!("generated layout lacks {name} for this version"))
    })
}

/// Where the GIL's holder fields are.
#[derive(Debug, Clone, Copy)]
struct GilModel {
    last_holder: usize,
    locked: usize,
}

/// Ranges a thread's previous walk used, prefetched with its thread state.
#[derive(Debug, Default)]
struct Plan {
    ranges: Vec<(usize, usize)>,
    seen: u64,
}

/// At most this many merged ranges are prefetched per thread.
const PLAN_MAX_RANGES: usize = 512;
/// At most this many bytes are prefetched per thread: enough for the frame
/// objects of a stack a few thousand deep (3.8–3.10: ~0.5 MB per 1000).
const PLAN_MAX_BYTES: usize = 2 << 20;
/// At most this many bytes of plans are prefetched per sample, all threads
/// together (threads beyond it get their thread state only).
const TICK_PLAN_MAX_BYTES: usize = 4 << 20;
/// 3.11–3.13: cached code objects are re-checked at least this often (samples).
pub const DEFAULT_REVALIDATE_EVERY: u64 = 16;

/// One thread's walk, between frame collection and code resolution.
#[derive(Debug)]
struct Work {
    snap: TstateSnap,
    raw: Range<usize>,
    truncated: bool,
    err: Option<Drop>,
    native_id: Option<u32>,
}

/// Samples the Python threads of the current process. See the crate docs.
pub struct Sampler {
    reader: MemoryReader,
    version: (u32, u32, u32),
    layout: &'static Layout,
    runtime: usize,
    interp: usize,
    threads_head_addr: usize,
    finalizing_addr: Option<usize>,
    gil: Option<GilModel>,
    tmodel: TstateModel,
    walker: Walker,
    cache: CodeCache,
    pthread_tid_off: Option<usize>,
    get_tstate: Option<VoidFn>,
    none_addr: usize,
    generation_addr: Option<usize>,
    warnings: Vec<String>,
    seen: AddrSet,
    tbuf: Vec<u8>,
    epoch: u64,
    view: View,
    retry_view: View,
    code_view: View,
    touched: Vec<(usize, usize)>,
    raw: Vec<RawFrame>,
    works: Vec<Work>,
    refs: Vec<CodeRef>,
    plans: AddrMap<Plan>,
    drops: [u64; Drop::ALL.len()],
    /// `epoch` of the previous `sample_all`.
    last_all: u64,
    debug_checked: usize,
    /// [`Sampler::sample_current`] may walk with direct loads (set by
    /// [`Sampler::verify_current`]).
    direct_ok: bool,
}

impl std::fmt::Debug for Sampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sampler")
            .field("version", &self.version)
            .field("reader", &self.reader.kind())
            .field("runtime", &format_args!("{:#x}", self.runtime))
            .field("interp", &format_args!("{:#x}", self.interp))
            .finish()
    }
}

// SAFETY: every field is owned data or a plain C function pointer; the
// Sampler never hands out interpreter pointers.
unsafe impl Send for Sampler {}

impl Sampler {
    /// Finds the runtime. Caller MUST hold the GIL (it may call
    /// `PyInterpreterState_Main` and the current-thread-state getter once,
    /// resolved with `dlsym(RTLD_DEFAULT, ..)`; libpython is not linked).
    ///
    /// `version` = `sys.version_info[:3]`. Locates `_PyRuntime` by `dlsym`,
    /// else through the C API; finds `PyCode_Type`, `PyUnicode_Type`,
    /// `PyBytes_Type` and `_Py_NoneStruct` by `dlsym`; cross-checks
    /// `_Py_DebugOffsets` on 3.13+; then checks the layout against the calling
    /// thread's own state (its thread id, its interpreter, its stack).
    ///
    /// # Safety
    /// The calling thread must hold the GIL of an initialized CPython of
    /// `version` running in this process.
    pub unsafe fn discover(version: (u32, u32, u32)) -> Result<Sampler, SamplerError> {
        // SAFETY: forwarded contract.
        unsafe { Self::discover_with(version, None) }
    }

    /// [`Sampler::discover`] with a forced memory backend (`None`: probe).
    ///
    /// # Safety
    /// As for [`Sampler::discover`].
    pub unsafe fn discover_with(
        version: (u32, u32, u32),
        reader: Option<ReaderKind>,
    ) -> Result<Sampler, SamplerError> {
        if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
            return Err(SamplerError::UnsupportedPlatform {
                arch: std::env::consts::ARCH,
                os: std::env::consts::OS,
            });
        }
        let layout = Layout::for_version(version.0, version.1)
            .filter(|_| crate::supported(version))
            .ok_or(SamplerError::UnsupportedVersion(
                version.0, version.1, version.2,
            ))?;
        let minor = version.1;
        let reader = match reader {
            None => MemoryReader::new()?,
            Some(kind) => {
                MemoryReader::with_kind(kind).map_err(|source| SamplerError::MemoryBackend {
                    kind: kind.as_str(),
                    source,
                })?
            }
        };
        let mut warnings = Vec::new();

        let code_type = sym(c"PyCode_Type");
        let unicode_type = sym(c"PyUnicode_Type");
        let bytes_type = sym(c"PyBytes_Type");
        let none_addr = sym(c"_Py_NoneStruct");
        for (v, n) in [
            (code_type, "PyCode_Type"),
            (unicode_type, "PyUnicode_Type"),
            (bytes_type, "PyBytes_Type"),
            (none_addr, "_Py_NoneStruct"),
        ] {
            if v == 0 {
                return Err(SamplerError::SymbolNotFound(n));
            }
        }
        let frame_type = if minor <= 10 { sym(c"PyFrame_Type") } else { 0 };

        // Cross-check the version with Py_Version (3.11+).
        if minor >= 11 {
            let pv = sym(c"Py_Version");
            if pv != 0 {
                if let Ok(hex) = reader.read_u32(pv) {
                    let running = (hex >> 24, (hex >> 16) & 0xff, (hex >> 8) & 0xff);
                    if running != version {
                        return Err(SamplerError::LayoutMismatch(format!(
                            "discover() was told {}.{}.{} but Py_Version says {}.{}.{}",
                            version.0, version.1, version.2, running.0, running.1, running.2
                        )));
                    }
                }
            }
        }

        let main_fn = sym_fn(c"PyInterpreterState_Main");
        let get_tstate = if minor >= 13 {
            sym_fn(c"PyThreadState_GetUnchecked")
        } else {
            sym_fn(c"_PyThreadState_UncheckedGet")
        };
        // SAFETY: the caller holds the GIL; the function only reads a global.
        let api_interp = main_fn.map(|f| unsafe { f() } as usize).unwrap_or(0);

        // _PyRuntime: the symbol, else interp->runtime (3.9+).
        let mut runtime = sym(c"_PyRuntime");
        if runtime == 0 {
            if let (Some(off), true) = (layout.interp_runtime, api_interp != 0) {
                runtime = reader
                    .read_usize(api_interp.wrapping_add(off as usize))
                    .map_err(|e| SamplerError::Read {
                        what: "PyInterpreterState.runtime",
                        source: e,
                    })?;
            }
            if runtime == 0 {
                warnings.push(
                    "_PyRuntime not found: GIL state unavailable (holds_gil is always false)"
                        .to_string(),
                );
            }
        }

        let interp = if runtime != 0 {
            let main_off = need(
                layout.runtime_interpreters_main,
                "runtime_interpreters_main",
            )?;
            let i = reader
                .read_usize(runtime.wrapping_add(main_off))
                .map_err(|e| SamplerError::Read {
                    what: "_PyRuntime.interpreters.main",
                    source: e,
                })?;
            if api_interp != 0 && i != api_interp {
                return Err(SamplerError::LayoutMismatch(format!(
                    "_PyRuntime.interpreters.main is {i:#x} but PyInterpreterState_Main() is {api_interp:#x}"
                )));
            }
            i
        } else {
            api_interp
        };
        if interp == 0 {
            return Err(SamplerError::RuntimeNotFound(
                "neither _PyRuntime nor PyInterpreterState_Main is available (is the interpreter initialized?)".into(),
            ));
        }
        let interp_id = reader
            .read_i64(interp.wrapping_add(need(layout.interp_id, "interp_id")?))
            .map_err(|e| SamplerError::Read {
                what: "PyInterpreterState.id",
                source: e,
            })?;
        if interp_id != 0 {
            return Err(SamplerError::LayoutMismatch(format!(
                "main interpreter id reads {interp_id}, expected 0"
            )));
        }

        let mut debug_checked = 0usize;
        if runtime != 0 {
            if let (Some(size), Some(want)) = (symbol_size(&reader, runtime), layout.runtime_sizeof)
            {
                if size != u64::from(want) {
                    warnings.push(format!(
                        "sizeof(_PyRuntimeState) is {size} here but {want} in the {}.{}.{} headers the layout was generated from",
                        layout.version.0, layout.version.1, layout.version.2
                    ));
                }
            }
            if minor >= 13 {
                debug_checked = debug_offsets::check(&reader, layout, runtime, version)?.1;
            }
        }

        // GIL fields.
        let gil = {
            let gil_base = if minor <= 11 {
                match (runtime, layout.runtime_gil) {
                    (0, _) | (_, None) => 0,
                    (r, Some(off)) => r.wrapping_add(off as usize),
                }
            } else {
                let p = layout
                    .interp_ceval_gil
                    .and_then(|o| reader.read_usize(interp.wrapping_add(o as usize)).ok())
                    .unwrap_or(0);
                if p != 0 {
                    p
                } else {
                    interp.wrapping_add(need(layout.interp_gil, "interp_gil")?)
                }
            };
            if gil_base == 0 {
                None
            } else {
                Some(GilModel {
                    last_holder: gil_base
                        .wrapping_add(need(layout.gil_last_holder, "gil_last_holder")?),
                    locked: gil_base.wrapping_add(need(layout.gil_locked, "gil_locked")?),
                })
            }
        };

        let tmodel = tstate_model(layout, minor)?;
        let (frame_model, line_format) = frame_model(layout, minor, frame_type)?;
        let code_layout = code_layout(layout, minor, line_format)?;
        let strs = str_layout(layout)?;
        let generation_addr = layout
            .interp_code_object_generation
            .map(|o| interp.wrapping_add(o as usize));
        let trust = match (minor, generation_addr) {
            (_, Some(_)) => Trust::Generation,
            (11..=13, None) => Trust::Age {
                max_age: DEFAULT_REVALIDATE_EVERY,
            },
            _ => Trust::Never,
        };
        let cache = CodeCache::new(
            code_layout,
            strs,
            TypeAddrs {
                code: code_type,
                unicode: unicode_type,
                bytes: bytes_type,
            },
            trust,
            DEFAULT_CAPACITY,
        );
        let pthread_tid_off = if tmodel.native_thread_id.is_none() {
            let off = threads::find_pthread_tid_offset(&reader);
            if off.is_none() {
                warnings.push(
                    "kernel thread ids unavailable: glibc struct pthread tid not found".to_string(),
                );
            }
            off
        } else {
            None
        };

        let mut s = Sampler {
            threads_head_addr: interp
                .wrapping_add(need(layout.interp_threads_head, "interp_threads_head")?),
            finalizing_addr: match (runtime, layout.runtime_finalizing) {
                (0, _) | (_, None) => None,
                (r, Some(o)) => Some(r.wrapping_add(o as usize)),
            },
            reader,
            version,
            layout,
            runtime,
            interp,
            gil,
            tmodel,
            walker: Walker::new(frame_model, line_format),
            cache,
            pthread_tid_off,
            get_tstate,
            none_addr,
            generation_addr,
            warnings,
            seen: AddrSet::default(),
            tbuf: Vec::new(),
            epoch: 0,
            view: View::new(),
            retry_view: View::new(),
            code_view: View::new(),
            touched: Vec::new(),
            raw: Vec::new(),
            works: Vec::new(),
            refs: Vec::new(),
            plans: AddrMap::default(),
            drops: [0; Drop::ALL.len()],
            last_all: 0,
            debug_checked,
            direct_ok: false,
        };
        // SAFETY: the caller holds the GIL.
        s.self_check(unsafe { s.current_tstate() })?;
        Ok(s)
    }

    /// Checks the layout against the calling thread: its thread state must be
    /// in the main interpreter's list, carry our pthread id (and TID on
    /// 3.11+), and its stack must walk without a validation failure.
    fn self_check(&mut self, tstate: usize) -> Result<(), SamplerError> {
        if tstate == 0 {
            self.warnings
                .push("no current thread state to self-check the layout against".to_string());
            return Ok(());
        }
        let mismatch = |m: String| Err(SamplerError::LayoutMismatch(m));
        let Some(snap) = self.tmodel.read(&self.reader, tstate, &mut self.tbuf) else {
            return mismatch(format!(
                "cannot read the current PyThreadState at {tstate:#x}"
            ));
        };
        if snap.interp != self.interp {
            return mismatch(format!(
                "PyThreadState.interp of the calling thread is {:#x}, expected the main interpreter {:#x}",
                snap.interp, self.interp
            ));
        }
        // SAFETY: no preconditions.
        let (me, tid) = unsafe { (libc::pthread_self() as u64, libc::gettid()) };
        if snap.thread_id != me {
            return mismatch(format!(
                "PyThreadState.thread_id is {:#x}, expected pthread_self() {:#x}",
                snap.thread_id, me
            ));
        }
        if self.tmodel.native_thread_id.is_some() && snap.native_id != Some(tid as u32) {
            return mismatch(format!(
                "PyThreadState.native_thread_id is {:?}, expected gettid() {tid}",
                snap.native_id
            ));
        }
        let head = self
            .reader
            .read_usize(self.threads_head_addr)
            .map_err(|e| SamplerError::Read {
                what: "the thread-state list head",
                source: e,
            })?;
        let mut found = false;
        threads::for_each_tstate(
            &self.reader,
            &self.tmodel,
            self.interp,
            head,
            &mut self.seen,
            &mut self.tbuf,
            |s| found |= s.addr == tstate,
        );
        if !found {
            return mismatch(
                "the calling thread's PyThreadState is not in the main interpreter's thread list"
                    .to_string(),
            );
        }
        if self.sample_tstate(tstate, usize::MAX).is_none() {
            return mismatch(
                "walking the calling thread's own (stable) stack failed validation".to_string(),
            );
        }
        Ok(())
    }

    /// `"process_vm_readv"` or `"/proc/self/mem"`.
    pub fn reader_kind(&self) -> &'static str {
        self.reader.kind()
    }

    /// The `sys.version_info[:3]` given to [`Sampler::discover`].
    pub fn version(&self) -> (u32, u32, u32) {
        self.version
    }

    /// The generated layout in use.
    pub fn layout(&self) -> &'static Layout {
        self.layout
    }

    /// Non-fatal findings of discovery (e.g. no kernel TIDs on 3.8–3.10).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Code-object cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.cache.stats()
    }

    /// Stacks dropped by [`Sampler::sample_all`] since discovery, per reason.
    pub fn drop_counts(&self) -> Vec<(&'static str, u64)> {
        Drop::ALL
            .iter()
            .map(|d| (d.name(), self.drops.get(*d as usize).copied().unwrap_or(0)))
            .collect()
    }

    /// Number of `_Py_DebugOffsets` fields found equal to the generated
    /// layout at discovery (0 before 3.13).
    pub fn debug_offsets_checked(&self) -> usize {
        self.debug_checked
    }

    /// Total read system calls since discovery.
    pub fn read_calls(&self) -> u64 {
        self.reader.calls()
    }

    /// Total failed memory reads since discovery.
    pub fn read_errors(&self) -> u64 {
        self.reader.errors()
    }

    /// Address of `_Py_NoneStruct` (for exception-state checks by callers).
    pub fn none_addr(&self) -> usize {
        self.none_addr
    }

    /// Address of the calling thread's `PyThreadState` (via the dlsym'd
    /// unchecked getter; GIL held). 0 if there is none.
    ///
    /// # Safety
    /// The calling thread should hold the GIL (the getter reads a
    /// thread-local; without an attached thread state it returns 0).
    pub unsafe fn current_tstate(&self) -> usize {
        match self.get_tstate {
            // SAFETY: _PyThreadState_UncheckedGet / PyThreadState_GetUnchecked
            // take no arguments and never fail.
            Some(f) => unsafe { f() as usize },
            None => 0,
        }
    }

    /// 3.11–3.13: re-check cached code objects at least every `samples`
    /// samples (1 = every sample, exact but slower; default
    /// [`DEFAULT_REVALIDATE_EVERY`]). No effect on 3.8–3.10 (always checked)
    /// and 3.14 (exact invalidation through the code-object generation).
    pub fn set_code_revalidation(&mut self, samples: u64) {
        if (11..=13).contains(&self.version.1) {
            self.cache.set_trust(Trust::Age {
                max_age: samples.max(1),
            });
        }
    }

    /// The GIL holder's thread state, 0 if free or unknown.
    fn gil_holder(&self, locked: u32, last_holder: usize) -> usize {
        if locked != 0 {
            last_holder
        } else {
            0
        }
    }

    /// Collects the raw frames of one copied thread state into `self.raw`,
    /// reading through `self.view` (or `self.retry_view`), recording the
    /// ranges used in `self.touched`. Also returns the kernel TID.
    fn collect_one(&mut self, snap: &TstateSnap, retry: bool) -> (Result<bool, Drop>, Option<u32>) {
        let mut fetch = Fetch {
            reader: &self.reader,
            view: if retry {
                &mut self.retry_view
            } else {
                &mut self.view
            },
            touched: &mut self.touched,
        };
        let top = match self.tmodel.top {
            TopFrame::Direct(_) => Ok(snap.top_field),
            TopFrame::ViaCFrame { current_frame, .. } => {
                if snap.top_field == 0 {
                    Ok(0)
                } else {
                    fetch
                        .usize_at(snap.top_field.wrapping_add(current_frame))
                        .map_err(|_| Drop::Read)
                }
            }
        };
        let collected = top.and_then(|top| {
            self.walker.collect(
                &mut fetch,
                top,
                DataStack {
                    chunk: snap.chunk,
                    top: snap.stack_top,
                    limit: snap.stack_limit,
                },
                &mut self.raw,
                !retry,
            )
        });
        let native_id = match (snap.native_id, self.pthread_tid_off) {
            (Some(t), _) => Some(t),
            (None, Some(off)) => (snap.thread_id as usize)
                .checked_add(off)
                .and_then(|a| fetch.u32_at(a).ok())
                .and_then(|v| threads::plausible_tid(u64::from(v))),
            (None, None) => None,
        };
        (collected, native_id)
    }

    /// Copies the thread state at `addr` together with the ranges its last
    /// walk used, then collects its raw frames. `None`: the thread state is
    /// unreadable or belongs to another interpreter.
    fn visit(&mut self, addr: usize) -> Option<Work> {
        if addr == 0 || addr % 8 != 0 {
            return None;
        }
        let len = self.tmodel.read_len;
        if !self.view.contains(addr, len) {
            // Not prefetched with the others (a new thread): this thread
            // state with the ranges its last walk used, if any.
            let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(PLAN_MAX_RANGES + 1);
            ranges.push((addr, len));
            if let Some(p) = self.plans.get(&addr) {
                ranges.extend_from_slice(&p.ranges);
            }
            if self.view.fetch(&self.reader, &ranges).is_err() {
                // A prefetched range went away; the thread state alone, then.
                self.view.fetch(&self.reader, &[(addr, len)]).ok()?;
            }
        }
        let mut snap = self.tmodel.parse(addr, self.view.get(addr, len)?)?;
        if snap.interp != self.interp {
            return None;
        }
        let start = self.raw.len();
        self.touched.clear();
        let (mut collected, mut native_id) = self.collect_one(&snap, false);
        if collected.is_err() {
            // The prefetched copy and later reads disagreed (the thread moved
            // on mid-walk: an invalid frame, or a finished one, see
            // `stack::Liveness`). Retry once from a fresh copy of the thread
            // state, reading frames one by one; the retry accepts a finished
            // top frame (one that is returning).
            self.raw.truncate(start);
            self.retry_view.clear();
            let fresh = self
                .retry_view
                .fetch(&self.reader, &[(addr, len)])
                .ok()
                .and_then(|()| self.tmodel.parse(addr, self.retry_view.get(addr, len)?))
                .filter(|s| s.interp == self.interp);
            if let Some(fresh) = fresh {
                snap = fresh;
                self.touched.clear();
                (collected, native_id) = self.collect_one(&snap, true);
            }
        }
        // Remember what this walk touched for the next one.
        self.touched.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(self.touched.len().min(64));
        let mut bytes = 0usize;
        for &(a, l) in self.touched.iter() {
            let end = a.saturating_add(l);
            match merged.last_mut() {
                Some((ma, ml)) if a <= ma.saturating_add(*ml).saturating_add(4096) => {
                    let mend = ma.saturating_add(*ml).max(end);
                    *ml = mend - *ma;
                }
                _ => merged.push((a, l)),
            }
        }
        merged.retain(|&(_, l)| {
            bytes += l;
            bytes <= PLAN_MAX_BYTES
        });
        merged.truncate(PLAN_MAX_RANGES);
        let plan = self.plans.entry(addr).or_default();
        plan.ranges = merged;
        plan.seen = self.epoch;
        let (truncated, err) = match collected {
            Ok(t) => (t, None),
            Err(d) => {
                self.raw.truncate(start);
                (false, Some(d))
            }
        };
        Some(Work {
            snap,
            raw: start..self.raw.len(),
            truncated,
            err,
            native_id,
        })
    }

    /// Validates the code objects of all collected walks in one go.
    fn resolve_codes(&mut self, generation: Option<u64>) {
        self.refs.clear();
        for w in &self.works {
            if let Some(raw) = self.raw.get(w.raw.clone()) {
                self.refs.extend(raw.iter().filter_map(RawFrame::code_ref));
            }
        }
        let gen = match (generation, self.generation_addr) {
            (Some(g), Some(a)) => Some((g, a)),
            _ => None,
        };
        self.cache
            .resolve(&self.reader, &mut self.code_view, &self.refs, gen);
    }

    fn finish(&mut self, w: &Work, max_frames: usize) -> Result<ThreadStack, Drop> {
        if let Some(d) = w.err {
            return Err(d);
        }
        let raw = self.raw.get(w.raw.clone()).ok_or(Drop::Read)?;
        let walked = self
            .walker
            .finish(raw, &mut self.cache, max_frames, w.truncated)?;
        Ok(ThreadStack {
            thread_id: w.snap.thread_id,
            native_id: w.native_id,
            frames: walked.frames,
            omitted: walked.omitted,
            holds_gil: w.snap.holds_flag.unwrap_or(false),
        })
    }

    /// The addresses and sizes of the per-sample globals: threads head,
    /// finalizing, GIL locked, GIL last holder, code-object generation.
    fn global_ranges(&self) -> [Option<(usize, usize)>; 5] {
        [
            Some((self.threads_head_addr, 8)),
            self.finalizing_addr.map(|a| (a, 8)),
            self.gil.map(|g| (g.locked, 4)),
            self.gil.map(|g| (g.last_holder, 8)),
            self.generation_addr.map(|a| (a, 8)),
        ]
    }

    /// Clears the view and copies, in one vectored read, the per-sample
    /// globals plus (`prefetch`) every thread state seen last time with the
    /// ranges its walk used. Falls back to less on failure. Then parses
    /// `(threads head, finalizing, gil locked, gil last_holder, generation)`.
    fn load_globals(&mut self, prefetch: bool) -> Option<(usize, bool, u32, usize, Option<u64>)> {
        self.view.clear();
        let globals: Vec<(usize, usize)> = self.global_ranges().into_iter().flatten().collect();
        let mut ranges = globals.clone();
        let mut tstates_only = globals.clone();
        if prefetch {
            let len = self.tmodel.read_len;
            let mut plans: Vec<(u64, usize)> =
                self.plans.iter().map(|(a, p)| (p.seen, *a)).collect();
            plans.sort_unstable();
            let mut budget = TICK_PLAN_MAX_BYTES;
            for (seen, addr) in plans.into_iter().rev() {
                if seen < self.last_all {
                    continue; // not seen in the previous sample
                }
                ranges.push((addr, len));
                tstates_only.push((addr, len));
                if let Some(p) = self.plans.get(&addr) {
                    let bytes: usize = p.ranges.iter().map(|r| r.1).sum();
                    if bytes <= budget {
                        budget -= bytes;
                        ranges.extend_from_slice(&p.ranges);
                    }
                }
            }
        }
        if self.view.fetch(&self.reader, &ranges).is_err()
            && self.view.fetch(&self.reader, &tstates_only).is_err()
        {
            self.view.fetch(&self.reader, &globals).ok()?;
        }
        let v = &self.view;
        let word = |r: Option<(usize, usize)>| -> Option<u64> {
            match r {
                None => Some(0),
                Some((a, l)) => {
                    let b = v.get(a, l)?;
                    let mut w = [0u8; 8];
                    w.get_mut(..l)?.copy_from_slice(b);
                    Some(u64::from_ne_bytes(w))
                }
            }
        };
        let [head, fin, locked, holder, gen] = self.global_ranges();
        Some((
            word(head)? as usize,
            word(fin)? != 0,
            word(locked)? as u32,
            word(holder)? as usize,
            match gen {
                Some(_) => Some(word(gen)?),
                None => None,
            },
        ))
    }

    /// Walk every thread of the main interpreter. Never blocks, never takes
    /// the GIL. Clears and fills `out`.
    pub fn sample_all(&mut self, max_frames: usize, out: &mut Vec<ThreadStack>) -> SampleStats {
        out.clear();
        self.epoch += 1;
        let errors_before = self.reader.errors();
        let load = self.load_globals(true);
        self.last_all = self.epoch;
        let mut stats = SampleStats::default();
        let Some((head, finalizing, locked, last_holder, generation)) = load else {
            stats.read_errors = self.reader.errors() - errors_before;
            return stats;
        };
        if finalizing {
            // Thread states are being torn down; nothing useful to report.
            stats.read_errors = self.reader.errors() - errors_before;
            return stats;
        }
        let holder = self.gil_holder(locked, last_holder);

        // Walk the thread list (capped, revisit detection, back-link check),
        // collecting each thread's raw frames.
        self.raw.clear();
        self.works.clear();
        self.seen.clear();
        let mut cur = head;
        while cur != 0 {
            if self.works.len() >= threads::MAX_THREADS || !self.seen.insert(cur) {
                stats.dropped_stacks += 1;
                break;
            }
            let Some(w) = self.visit(cur) else {
                // Unreadable or foreign element: the rest is unreachable.
                stats.dropped_stacks += 1;
                break;
            };
            cur = w.snap.next;
            self.works.push(w);
        }

        self.resolve_codes(generation);
        let works = std::mem::take(&mut self.works);
        for w in &works {
            match self.finish(w, max_frames) {
                Ok(mut ts) => {
                    if w.snap.holds_flag.is_none() {
                        ts.holds_gil = holder != 0 && holder == w.snap.addr;
                    }
                    stats.threads += 1;
                    stats.frames += ts.frames.len() as u64;
                    out.push(ts);
                }
                Err(d) => {
                    stats.dropped_stacks += 1;
                    if let Some(c) = self.drops.get_mut(d as usize) {
                        *c += 1;
                    }
                }
            }
        }
        self.works = works;
        let epoch = self.epoch;
        if self.plans.len() > self.works.len() {
            self.plans.retain(|_, p| p.seen == epoch);
        }
        stats.read_errors = self.reader.errors() - errors_before;
        stats
    }

    /// Walk one thread given its `PyThreadState` address (used for the calling
    /// thread: self-check at start and exception samples; the caller holds the
    /// GIL there). `None` if it cannot be read, is not a thread of the main
    /// interpreter, or its stack fails validation.
    pub fn sample_tstate(&mut self, tstate: usize, max_frames: usize) -> Option<ThreadStack> {
        self.epoch += 1;
        let (locked, last_holder, generation) = match self.load_globals(false) {
            Some((_, _, l, h, g)) => (l, h, g),
            None => (0, 0, None),
        };
        self.raw.clear();
        self.works.clear();
        let w = self.visit(tstate)?;
        self.works.push(w);
        self.resolve_codes(generation);
        let works = std::mem::take(&mut self.works);
        let result = works.first().and_then(|w| {
            let mut ts = self.finish(w, max_frames).ok()?;
            if w.snap.holds_flag.is_none() {
                let holder = self.gil_holder(locked, last_holder);
                ts.holds_gil = holder != 0 && holder == w.snap.addr;
            }
            Some(ts)
        });
        self.works = works;
        result
    }
}

/// How a direct walk of the calling thread ended.
#[derive(Debug)]
enum DirectWalk {
    /// Read: the stack, or `None` where [`Sampler::sample_tstate`] has none
    /// either (another interpreter's thread, a stack failing validation).
    Done(Option<ThreadStack>),
    /// Not answered directly (a thread state that is not the calling
    /// thread's, a chain past [`crate::stack::DEPTH_CAP`]): use the
    /// copy-based walk.
    GaveUp(&'static str),
}

/// The calling thread, read with plain loads instead of copies.
///
/// The copy-based walk ([`Sampler::sample_tstate`]) is built for threads
/// that run while it reads them: every byte goes through a system call so a
/// pointer freed mid-walk cannot fault. The calling thread with the GIL held
/// is not such a thread: its thread state, its frame chain, the code objects
/// those frames hold references to, and their names and line tables stay
/// alive and unchanged until it lets go of the GIL. Following live pointers
/// from its own thread state with plain loads reads exactly the memory the
/// copy-based walk would copy, so [`Sampler::sample_current`] applies the
/// same walker ([`Walker::collect_direct`]: the same frame rules), the same
/// code cache ([`CodeCache::resolve_direct`]: header compared in place) and
/// the same [`Walker::finish`], and returns the same [`ThreadStack`].
impl Sampler {
    /// Whether [`Sampler::sample_current`] walks with direct loads (after a
    /// successful [`Sampler::verify_current`]).
    pub fn direct_enabled(&self) -> bool {
        self.direct_ok
    }

    /// The calling thread's stack, identical to
    /// `sample_tstate(current_tstate(), max_frames)`, read with plain loads
    /// once [`Sampler::verify_current`] has enabled that (else, and whenever
    /// the direct walk gives up, by the copy-based walk). `None`: no thread
    /// state, or the stack cannot be read or fails validation.
    ///
    /// # Safety
    /// The calling thread holds the GIL of the interpreter this sampler was
    /// discovered in, and keeps it for the duration of the call; the stack
    /// read is the calling thread's own (it is taken from its current thread
    /// state, and a thread state whose `thread_id` is not `pthread_self()` is
    /// not walked directly).
    pub unsafe fn sample_current(&mut self, max_frames: usize) -> Option<ThreadStack> {
        // SAFETY: forwarded contract (GIL held).
        let tstate = unsafe { self.current_tstate() };
        if tstate == 0 {
            return None;
        }
        if self.direct_ok {
            // SAFETY: forwarded contract: the live objects of the calling
            // thread are readable and nobody writes them meanwhile.
            let mem = unsafe { DirectMem::new() };
            if let DirectWalk::Done(r) = self.walk_direct(&mem, tstate, max_frames) {
                return r;
            }
        }
        self.sample_tstate(tstate, max_frames)
    }

    /// Enables the direct walk of [`Sampler::sample_current`] after proving,
    /// on the calling thread's current stack, that it returns exactly what the
    /// copy-based walk returns, for each of `max_frames` (at least one). The
    /// direct walk is run here with every load probed first by a copy
    /// ([`DirectMem::probed`]), so a layout that is wrong in a way the
    /// start-up checks missed makes this fail instead of faulting. On a
    /// difference the direct walk stays (or is turned) off.
    ///
    /// # Safety
    /// As for [`Sampler::sample_current`].
    pub unsafe fn verify_current(&mut self, max_frames: &[usize]) -> Result<(), String> {
        self.direct_ok = false;
        // SAFETY: forwarded contract (GIL held).
        let tstate = unsafe { self.current_tstate() };
        if tstate == 0 {
            return Err("no current thread state".into());
        }
        if max_frames.is_empty() {
            return Err("nothing to compare".into());
        }
        // The probe's own reader (the walk borrows the sampler mutably).
        let probe = MemoryReader::with_kind(self.reader.reader_kind())
            .map_err(|e| format!("no reader for the probe: {e}"))?;
        // The direct walk reads every header here (no trust), and decodes every code object
        // itself the first time (from an empty cache, after the copy-based walk decoded
        // them its own way).
        let trust = self.cache.trust();
        self.cache.set_trust(Trust::Never);
        let mut result = Ok(());
        for (i, &m) in max_frames.iter().enumerate() {
            let copied = self.sample_tstate(tstate, m);
            if i == 0 {
                self.cache.clear();
            }
            // SAFETY: forwarded contract; every load is probed by a copy.
            let mem = unsafe { DirectMem::probed(&probe) };
            let direct = match self.walk_direct(&mem, tstate, m) {
                DirectWalk::Done(r) => r,
                DirectWalk::GaveUp(why) => {
                    result = Err(format!("the direct walk gave up ({why})"));
                    break;
                }
            };
            if copied.is_none() {
                result = Err("the copy-based walk could not read the calling thread".into());
                break;
            }
            if direct != copied {
                result = Err(format!(
                    "max_frames {m}: the direct walk read {} where the copy-based walk read {}",
                    describe(direct.as_ref()),
                    describe(copied.as_ref())
                ));
                break;
            }
        }
        self.cache.set_trust(trust);
        self.direct_ok = result.is_ok();
        result
    }

    /// The direct walk of the thread state `tstate` of the calling thread.
    fn walk_direct(&mut self, mem: &DirectMem<'_>, tstate: usize, max_frames: usize) -> DirectWalk {
        if tstate % 8 != 0 {
            return DirectWalk::GaveUp("misaligned thread state");
        }
        let len = self.tmodel.read_len;
        self.tbuf.resize(len, 0);
        if Mem::read(mem, tstate, &mut self.tbuf).is_err() {
            return DirectWalk::GaveUp("thread state unreadable");
        }
        let Some(snap) = self.tmodel.parse(tstate, &self.tbuf) else {
            return DirectWalk::GaveUp("thread state unreadable");
        };
        if snap.interp != self.interp {
            return DirectWalk::Done(None);
        }
        // SAFETY: no preconditions (reads the thread pointer).
        let me = unsafe { libc::pthread_self() } as u64;
        if snap.thread_id != me {
            // Not the calling thread's: its frames may be running. (3.8–3.11's
            // getter returns the GIL holder's thread state, a global: a caller
            // without the GIL, against the contract, would get another thread's.)
            return DirectWalk::GaveUp("not the calling thread's thread state");
        }
        let top = match self.tmodel.top {
            TopFrame::Direct(_) => snap.top_field,
            TopFrame::ViaCFrame { current_frame, .. } => {
                if snap.top_field == 0 {
                    0
                } else {
                    match mem.read_usize(snap.top_field.wrapping_add(current_frame)) {
                        Ok(v) => v,
                        Err(_) => return DirectWalk::Done(None),
                    }
                }
            }
        };
        let stack = DataStack {
            chunk: snap.chunk,
            top: snap.stack_top,
            limit: snap.stack_limit,
        };
        self.raw.clear();
        let mut collected = self
            .walker
            .collect_direct(mem, top, stack, &mut self.raw, true);
        if collected.is_err() {
            // As the copy-based walk's retry: a finished top frame (one that
            // is returning) is accepted the second time.
            self.raw.clear();
            collected = self
                .walker
                .collect_direct(mem, top, stack, &mut self.raw, false);
        }
        let truncated = match collected {
            Ok(t) => t,
            Err(_) => return DirectWalk::Done(None),
        };
        if truncated {
            return DirectWalk::GaveUp("deeper than the depth cap");
        }
        // The kernel TID: the thread state's (3.11+), else glibc's
        // `struct pthread` of the calling thread itself.
        let native_id = match (snap.native_id, self.pthread_tid_off) {
            (Some(t), _) => Some(t),
            (None, Some(off)) => (snap.thread_id as usize)
                .checked_add(off)
                .and_then(|a| {
                    let mut b = [0u8; 4];
                    Mem::read(mem, a, &mut b).ok()?;
                    Some(u32::from_ne_bytes(b))
                })
                .and_then(|v| threads::plausible_tid(u64::from(v))),
            (None, None) => None,
        };
        self.refs.clear();
        self.refs
            .extend(self.raw.iter().filter_map(RawFrame::code_ref));
        // 3.14: the code-object generation, for the cache's exact trust.
        let generation = self.generation_addr.and_then(|a| {
            let mut b = [0u8; 8];
            Mem::read(mem, a, &mut b).ok()?;
            Some(u64::from_ne_bytes(b))
        });
        self.cache.resolve_direct(mem, &self.refs, generation);
        let walked = match self
            .walker
            .finish(&self.raw, &mut self.cache, max_frames, false)
        {
            Ok(w) => w,
            Err(_) => return DirectWalk::Done(None),
        };
        let holds_gil = match snap.holds_flag {
            Some(h) => h,
            None => self.gil.is_some_and(|g| {
                let mut locked = [0u8; 4];
                let mut holder = [0u8; 8];
                Mem::read(mem, g.locked, &mut locked).is_ok()
                    && Mem::read(mem, g.last_holder, &mut holder).is_ok()
                    && self.gil_holder(u32::from_ne_bytes(locked), usize::from_ne_bytes(holder))
                        == tstate
            }),
        };
        DirectWalk::Done(Some(ThreadStack {
            thread_id: snap.thread_id,
            native_id,
            frames: walked.frames,
            omitted: walked.omitted,
            holds_gil,
        }))
    }
}

/// A short description of a stack for self-check messages.
fn describe(ts: Option<&ThreadStack>) -> String {
    match ts {
        None => "nothing".into(),
        Some(t) => format!(
            "{} frames (+{} omitted, leaf {:?}:{}, tid {:?}, gil {})",
            t.frames.len(),
            t.omitted,
            t.frames.first().map(|f| f.func.name.as_str()),
            t.frames.first().map_or(0, |f| f.line),
            t.native_id,
            t.holds_gil
        ),
    }
}

fn tstate_model(l: &Layout, minor: u32) -> Result<TstateModel, SamplerError> {
    let next = need(l.tstate_next, "tstate_next")?;
    let interp = need(l.tstate_interp, "tstate_interp")?;
    let thread_id = need(l.tstate_thread_id, "tstate_thread_id")?;
    let native = l.tstate_native_thread_id.map(|v| v as usize);
    let top = match minor {
        8..=10 => TopFrame::Direct(need(l.tstate_frame, "tstate_frame")?),
        11 | 12 => TopFrame::ViaCFrame {
            cframe: need(l.tstate_cframe, "tstate_cframe")?,
            current_frame: need(l.cframe_current_frame, "cframe_current_frame")?,
        },
        _ => TopFrame::Direct(need(l.tstate_current_frame, "tstate_current_frame")?),
    };
    let holds = if let Some(off) = l.tstate_holds_gil {
        HoldsGil::Int(off as usize)
    } else if let (Some(off), Some(bit)) = (l.tstate_status, l.tstate_status_holds_gil_bit) {
        HoldsGil::StatusBit {
            off: off as usize,
            bit,
        }
    } else {
        HoldsGil::FromGil
    };
    let chunk = l.tstate_datastack_chunk.map(|v| v as usize);
    let dtop = l.tstate_datastack_top.map(|v| v as usize);
    let dlimit = l.tstate_datastack_limit.map(|v| v as usize);
    let top_off = match top {
        TopFrame::Direct(o) => o,
        TopFrame::ViaCFrame { cframe, .. } => cframe,
    };
    let holds_off = match holds {
        HoldsGil::FromGil => 0,
        HoldsGil::StatusBit { off, .. } | HoldsGil::Int(off) => off,
    };
    let read_len = [
        Some(next),
        Some(interp),
        Some(thread_id),
        native,
        Some(top_off),
        Some(holds_off),
        chunk,
        dtop,
        dlimit,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0)
        + 8;
    Ok(TstateModel {
        read_len,
        next,
        interp,
        thread_id,
        native_thread_id: native,
        top,
        holds,
        datastack_chunk: chunk,
        datastack_top: dtop,
        datastack_limit: dlimit,
    })
}

fn frame_model(
    l: &Layout,
    minor: u32,
    frame_type: usize,
) -> Result<(FrameModel, LineFormat), SamplerError> {
    let ob_type = need(l.object_ob_type, "object_ob_type")?;
    if minor <= 10 {
        let f_back = need(l.frameobj_f_back, "frameobj_f_back")?;
        let f_code = need(l.frameobj_f_code, "frameobj_f_code")?;
        let f_lasti = need(l.frameobj_f_lasti, "frameobj_f_lasti")?;
        let live = if minor == 10 {
            let finished = [
                need(l.frame_state_returned, "frame_state_returned")? as i8,
                need(l.frame_state_raised, "frame_state_raised")? as i8,
                need(l.frame_state_cleared, "frame_state_cleared")? as i8,
            ];
            Some(Liveness::State {
                state: need(l.frameobj_f_state, "frameobj_f_state")?,
                finished,
            })
        } else {
            Some(Liveness::Executing {
                executing: need(l.frameobj_f_executing, "frameobj_f_executing")?,
                stacktop: need(l.frameobj_f_stacktop, "frameobj_f_stacktop")?,
                co_flags: need(l.code_co_flags, "code_co_flags")?,
            })
        };
        let read_len = (f_back.max(f_code).max(f_lasti).max(ob_type) + 8)
            .max(live.map_or(0, |v| v.end()))
            .next_multiple_of(8);
        let fmt = if minor == 10 {
            LineFormat::Linetable310
        } else {
            LineFormat::Lnotab
        };
        return Ok((
            FrameModel::Object {
                f_back,
                f_code,
                f_lasti,
                ob_type,
                read_len,
                frame_type,
                live,
            },
            fmt,
        ));
    }
    let previous = need(l.iframe_previous, "iframe_previous")?;
    let code = match l.iframe_f_executable {
        Some(v) => v as usize,
        None => need(l.iframe_f_code, "iframe_f_code")?,
    };
    let instr = match l.iframe_instr_ptr {
        Some(v) => v as usize,
        None => need(l.iframe_prev_instr, "iframe_prev_instr")?,
    };
    let owner = need(l.iframe_owner, "iframe_owner")?;
    let func = match l.iframe_f_funcobj {
        Some(v) => v as usize,
        None => need(l.iframe_f_func, "iframe_f_func")?,
    };
    let read_len = (previous.max(code).max(instr).max(owner).max(func) + 8).next_multiple_of(8);
    let owner_generator = need(l.owner_generator, "owner_generator")? as u8;
    let skip_owner_from = if let Some(v) = l.owner_interpreter {
        Some(v as u8)
    } else {
        l.owner_cstack.map(|v| v as u8)
    };
    let max_owner = [
        l.owner_thread,
        l.owner_generator,
        l.owner_frame_object,
        l.owner_cstack,
        l.owner_interpreter,
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(0) as u8;
    Ok((
        FrameModel::Interp {
            previous,
            code,
            instr,
            owner,
            func,
            read_len,
            tag_mask: l.stackref_tag_bits.unwrap_or(0) as usize,
            null_bits: l.stackref_null_bits.map(|v| v as usize),
            owner_generator,
            skip_owner_from,
            max_owner,
            code_adaptive: need(l.code_co_code_adaptive, "code_co_code_adaptive")?,
            chunk_data: need(l.stackchunk_data, "stackchunk_data")?,
        },
        LineFormat::Locations,
    ))
}

fn code_layout(l: &Layout, minor: u32, fmt: LineFormat) -> Result<CodeLayout, SamplerError> {
    let modern = minor >= 11;
    Ok(CodeLayout {
        ob_type: need(l.object_ob_type, "object_ob_type")?,
        ob_size: if modern {
            Some(need(l.code_ob_size, "code_ob_size")?)
        } else {
            None
        },
        firstlineno: need(l.code_co_firstlineno, "code_co_firstlineno")?,
        filename: need(l.code_co_filename, "code_co_filename")?,
        name: need(l.code_co_name, "code_co_name")?,
        qualname: if modern {
            Some(need(l.code_co_qualname, "code_co_qualname")?)
        } else {
            None
        },
        linetable: match l.code_co_linetable {
            Some(v) => v as usize,
            None => need(l.code_co_lnotab, "code_co_lnotab")?,
        },
        co_code: if modern {
            None
        } else {
            Some(need(l.code_co_code, "code_co_code")?)
        },
        firsttraceable: if modern {
            Some(need(l.code_co_firsttraceable, "code_co_firsttraceable")?)
        } else {
            None
        },
        code_adaptive: l.code_co_code_adaptive.map(|v| v as usize),
        line_format: fmt,
        lasti_in_units: minor == 10,
    })
}

fn str_layout(l: &Layout) -> Result<StrLayout, SamplerError> {
    let kind_bits = need(l.unicode_state_kind_bits, "unicode_state_kind_bits")? as u32;
    Ok(StrLayout {
        ob_type: need(l.object_ob_type, "object_ob_type")?,
        length: need(l.unicode_length, "unicode_length")?,
        state: need(l.unicode_state, "unicode_state")?,
        ascii_size: need(l.ascii_sizeof, "ascii_sizeof")?,
        compact_size: need(l.compact_sizeof, "compact_sizeof")?,
        data_ptr: need(l.unicode_data, "unicode_data")?,
        kind_shift: need(l.unicode_state_kind_shift, "unicode_state_kind_shift")? as u32,
        kind_mask: (1u32 << kind_bits.min(31)) - 1,
        compact_bit: need(l.unicode_state_compact_bit, "unicode_state_compact_bit")? as u32,
        ascii_bit: need(l.unicode_state_ascii_bit, "unicode_state_ascii_bit")? as u32,
        bytes_size: need(l.bytes_ob_size, "bytes_ob_size")?,
        bytes_sval: need(l.bytes_ob_sval, "bytes_ob_sval")?,
    })
}

/// The frame model of a version, for the walker's unit tests.
#[cfg(test)]
pub(crate) fn tests_frame_model(l: &Layout, minor: u32) -> (FrameModel, LineFormat) {
    frame_model(l, minor, 0).unwrap_or_else(|e| unreachable!("{e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_build_for_every_version() {
        for minor in 8..=14 {
            let l = Layout::for_version(3, minor).unwrap();
            let t = tstate_model(l, minor).unwrap();
            assert!(t.read_len <= l.tstate_sizeof.unwrap() as usize + 8);
            let (f, fmt) = frame_model(l, minor, 0).unwrap();
            code_layout(l, minor, fmt).unwrap();
            str_layout(l).unwrap();
            if let FrameModel::Interp {
                skip_owner_from,
                max_owner,
                tag_mask,
                ..
            } = f
            {
                match minor {
                    11 => assert_eq!((skip_owner_from, max_owner), (None, 2)),
                    12 | 13 => assert_eq!((skip_owner_from, max_owner), (Some(3), 3)),
                    14 => {
                        assert_eq!((skip_owner_from, max_owner, tag_mask), (Some(3), 4, 3))
                    }
                    _ => unreachable!(),
                }
            } else if let FrameModel::Object { live, read_len, .. } = f {
                assert!(minor <= 10);
                // The finished-frame check is on, within the bytes copied.
                let live = live.unwrap();
                assert!(live.end() <= read_len);
                assert_eq!(
                    matches!(
                        live,
                        Liveness::State {
                            finished: [1, 3, 4],
                            ..
                        }
                    ),
                    minor == 10
                );
            }
        }
    }

    /// The direct walk reads whole ranges in place: each must lie inside
    /// the object it is read from (a thread state, a frame, a code object's
    /// header), or it could run into memory that is not there.
    #[test]
    fn direct_reads_stay_inside_objects() {
        for minor in 8..=14 {
            let l = Layout::for_version(3, minor).unwrap();
            let t = tstate_model(l, minor).unwrap();
            assert!(
                t.read_len <= l.tstate_sizeof.unwrap() as usize,
                "3.{minor}: thread state read {} > {}",
                t.read_len,
                l.tstate_sizeof.unwrap()
            );
            let (f, fmt) = frame_model(l, minor, 0).unwrap();
            let (read_len, size) = match f {
                FrameModel::Object { read_len, .. } => (read_len, l.frameobj_sizeof),
                FrameModel::Interp { read_len, .. } => (read_len, l.iframe_sizeof),
            };
            assert!(
                read_len <= 256 && read_len <= size.unwrap() as usize,
                "3.{minor}: frame"
            );
            let c = code_layout(l, minor, fmt).unwrap();
            let hdr_end = [
                Some(c.ob_type),
                c.ob_size,
                Some(c.firstlineno),
                Some(c.filename),
                Some(c.name),
                c.qualname,
                Some(c.linetable),
                c.co_code,
                c.firsttraceable,
            ]
            .into_iter()
            .flatten()
            .max()
            .unwrap()
                + 8;
            assert!(
                hdr_end <= 256 && hdr_end <= l.code_sizeof.unwrap() as usize,
                "3.{minor}: code header"
            );
        }
    }

    #[test]
    fn sampler_is_send() {
        fn send<T: Send>() {}
        send::<Sampler>();
    }

    #[test]
    fn discover_without_python_fails_cleanly() {
        // No CPython in the test binary: the type symbols are missing.
        let e = unsafe { Sampler::discover((3, 12, 1)) }.unwrap_err();
        assert!(
            matches!(e, SamplerError::SymbolNotFound("PyCode_Type")),
            "{e}"
        );
        let e = unsafe { Sampler::discover((3, 7, 0)) }.unwrap_err();
        assert!(
            matches!(e, SamplerError::UnsupportedVersion(3, 7, 0)),
            "{e}"
        );
        assert!(!crate::supported((3, 15, 0)));
        assert!(crate::supported((3, 8, 0)));
    }
}
