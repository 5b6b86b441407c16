//! emberscope-sampler: reads CPython interpreter state from inside the
//! process, from a native thread that never takes the GIL.
//!
//! Every Python thread's frame chain is copied out of our own memory with
//! `process_vm_readv(getpid())` (or `/proc/self/mem`), never by dereferencing an
//! interpreter pointer, so a thread that frees or reuses memory mid-walk can at
//! worst produce a dropped stack, never a crash.
//!
//! Layout of the crate (one module per concern, versioned bindings apart):
//!
//! | module | concern |
//! |---|---|
//! | [`memory`] | copying bytes: `MemoryReader` |
//! | [`layout`] | generated offsets per CPython minor version |
//! | [`debug_offsets`] | 3.13+ `_Py_DebugOffsets` cross-check |
//! | [`strings`] | `str` / `bytes` decoding |
//! | [`linetable`] | the three line-table formats |
//! | [`code`] | cache of decoded code objects |
//! | [`threads`] | the thread-state list, thread ids |
//! | [`stack`] | walking one thread's frames |
//! | [`sampler`] | runtime discovery and the [`Sampler`] itself |
//!
//! Supported: CPython 3.8–3.14, default (GIL) builds, x86_64 Linux.

pub mod code;
pub mod debug_offsets;
pub mod fasthash;
pub mod layout;
pub mod linetable;
pub mod memory;
pub mod sampler;
pub mod stack;
pub mod strings;
pub mod threads;

use std::sync::Arc;

pub use sampler::Sampler;

/// A Python function as reported in frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncInfo {
    /// `co_qualname` on 3.11+, `co_name` before.
    pub name: String,
    /// `co_filename`.
    pub filename: String,
    /// `co_firstlineno`.
    pub firstlineno: u32,
}

/// One frame of a sampled stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The function, shared between all frames of the same code object.
    pub func: Arc<FuncInfo>,
    /// Current line, 0 if unknown.
    pub line: u32,
}

/// One thread's stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadStack {
    /// `pthread_t` ident, equal to `threading.get_ident()`.
    pub thread_id: u64,
    /// Kernel TID, if known.
    pub native_id: Option<u32>,
    /// Frames, leaf first, at most `max_frames`.
    pub frames: Vec<Frame>,
    /// Exact number of further frames not in `frames` (counted up to the
    /// depth cap).
    pub omitted: u32,
    /// Whether the thread held the GIL when sampled (best effort).
    pub holds_gil: bool,
}

/// Counters of one [`Sampler::sample_all`] call.
#[derive(Default, Clone, Debug)]
pub struct SampleStats {
    /// Thread stacks produced.
    pub threads: u32,
    /// Frames put into those stacks.
    pub frames: u64,
    /// Memory reads that failed during the call.
    pub read_errors: u64,
    /// Threads whose stack was dropped because it failed validation (memory
    /// changed under the walk), or that could not be reached.
    pub dropped_stacks: u32,
}

/// Whether `version` (`sys.version_info[:3]`) can be sampled on this platform.
pub fn supported(version: (u32, u32, u32)) -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux"))
        && version.0 == 3
        && (8..=14).contains(&version.1)
        && layout::Layout::for_version(version.0, version.1).is_some()
}

/// Why a [`Sampler`] could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    /// Not x86_64 Linux.
    #[error(
        "emberscope's sampler supports x86_64 Linux only (this is {arch} {os}); profiling is disabled"
    )]
    UnsupportedPlatform {
        /// Target architecture.
        arch: &'static str,
        /// Target OS.
        os: &'static str,
    },
    /// A Python version without a generated layout.
    #[error(
        "CPython {0}.{1}.{2} is not supported (supported: 3.8 to 3.14); profiling is disabled"
    )]
    UnsupportedVersion(u32, u32, u32),
    /// A build the layouts do not describe (e.g. free-threaded).
    #[error("unsupported CPython build: {0}")]
    UnsupportedBuild(String),
    /// A symbol could not be found with `dlsym(RTLD_DEFAULT, ..)`.
    #[error(
        "symbol {0} not found in the process; is this CPython, and was it linked with its symbols exported (-export-dynamic)?"
    )]
    SymbolNotFound(&'static str),
    /// Neither `_PyRuntime` nor the C API led to the interpreter.
    #[error("cannot locate the interpreter: {0}")]
    RuntimeNotFound(String),
    /// No way to read our own memory.
    #[error(transparent)]
    MemoryAccess(#[from] memory::NoBackend),
    /// The requested memory backend does not work here.
    #[error("memory backend {kind} is unavailable: {source}")]
    MemoryBackend {
        /// `"process_vm_readv"` or `"/proc/self/mem"`.
        kind: &'static str,
        /// Why the probe read failed.
        source: std::io::Error,
    },
    /// A read needed at start-up failed.
    #[error("cannot read {what} from the interpreter: {source}")]
    Read {
        /// What was being read.
        what: &'static str,
        /// The read error.
        source: memory::ReadError,
    },
    /// `_Py_DebugOffsets` is missing or malformed.
    #[error("_Py_DebugOffsets check failed: {0}")]
    DebugOffsets(String),
    /// The running interpreter does not match the generated layout.
    #[error("interpreter layout mismatch: {0}")]
    LayoutMismatch(String),
}
