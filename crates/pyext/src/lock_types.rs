//! Native wrappers for `threading.Lock` and `threading.RLock` (the lock collector's hot path).
//!
//! `emberscope.profiling._locks` makes the patched `threading.Lock()`/`RLock()` return a
//! [`ProfiledLock`]/[`ProfiledRLock`] around a real lock, through a Python subclass that adds
//! `__weakref__` (pyo3 offers weak references on abi3 from Python 3.9 only), forwards
//! `__reduce_ex__` (the real lock's pickling error) and, as read-only properties reading the
//! real lock's attribute, every attribute of the real lock's type that the wrapper does not
//! define itself (`_at_fork_reinit`, `_recursion_count`, `locked` on RLock 3.14, ...), so
//! `hasattr` answers as for the real lock on every version. The classes have no
//! `__getattr__`: it would take method calls such as `self._lock.__enter__()` (Condition)
//! off the interpreter's fast path.
//!
//! On those subclasses the hot methods (`acquire`, `release`, `__enter__`, `__exit__`,
//! RLock's `_release_save`) are hand-made method descriptors ([`crate::lock_methods`]) with
//! the real method's calling convention that call its C function directly: an unsampled
//! operation is a countdown update (acquire) or a load (release) and a tail call of the real
//! lock's function. The `#[pymethods]` versions below remain on the base classes, and are
//! what runs when the real lock's methods are not what `lock_methods` expects. Both paths
//! run the same protocol around "the real call" ([`RealCall`]): the unsampled part inline,
//! the rest out of line ([`ProfiledLock::acquire_sampled`], [`ProfiledLock::release_with`]
//! and their RLock versions), so they record the same events.
//!
//! A sampled acquire takes the time before and after the real acquire and records the wait
//! ([`crate::locks::record_acquired`]); the release that frees the lock records the hold
//! time. The lock's `file:line:variable` name is resolved once, on its first sampled
//! operation, by the Python layer's `_name_of` (registered with `lock_set_namer`). The
//! recording runs under `catch_unwind` (a panic there drops the event), so nothing can
//! unwind into the interpreter from a wrapped call.
//!
//! Everything the real lock has is kept: `acquire(blocking, timeout)` with its own argument
//! checking and errors (the arguments go to the real method unchanged), context-manager use,
//! `locked()`, and for RLock `_is_owned()`, `_release_save()`, `_acquire_restore()` (what
//! `threading.Condition` uses). A sampled hold that started before a fork is not recorded by
//! the child ([`crate::locks::record_released`] checks). Nothing here takes a lock or runs
//! code other than the real lock's methods and, once per lock, `_name_of`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::locks;

/// The Python layer's `_name_of(wrapper) -> str`.
static NAMER: OnceLock<Py<PyAny>> = OnceLock::new();

/// `_native.lock_set_namer(fn)`: the function that names a lock on its first sampled use.
#[pyfunction]
fn lock_set_namer(f: Py<PyAny>) {
    let _ = NAMER.set(f);
}

/// A new reference or, when null, a Python exception is set (the C calling convention).
pub(crate) type Raw = *mut ffi::PyObject;

/// A pyo3 result as a C-convention result.
fn to_raw(py: Python<'_>, r: PyResult<Py<PyAny>>) -> Raw {
    match r {
        Ok(o) => o.into_ptr(),
        Err(e) => {
            e.restore(py);
            ptr::null_mut()
        }
    }
}

/// A C-convention result as a pyo3 result.
///
/// # Safety
/// `r` is null with an exception set, or a new reference.
unsafe fn from_raw(py: Python<'_>, r: Raw) -> PyResult<Py<PyAny>> {
    if r.is_null() {
        Err(PyErr::fetch(py))
    } else {
        // SAFETY: a new reference (caller's contract).
        Ok(unsafe { Bound::from_owned_ptr(py, r) }.unbind())
    }
}

/// Whether an acquire result means "acquired". The real locks return `True`/`False`;
/// anything else is asked for its truth value (an error there counts as false and is
/// cleared: the caller gets the result object itself, unchanged).
///
/// # Safety
/// GIL held; `r` is a valid object.
unsafe fn acquired(r: Raw) -> bool {
    // SAFETY: GIL held, valid object (caller's contract).
    unsafe {
        if r == ffi::Py_True() {
            return true;
        }
        if r == ffi::Py_False() {
            return false;
        }
        match ffi::PyObject_IsTrue(r) {
            1 => true,
            0 => false,
            _ => {
                ffi::PyErr_Clear();
                false
            }
        }
    }
}

/// The real lock operation a wrapper method runs inside its protocol: a new reference, or
/// null with a Python exception set. A trait rather than a closure so the direct path
/// ([`crate::lock_methods`]) is inlined into each method's entry point.
pub(crate) trait RealCall {
    fn call(self) -> Raw;
}

impl<F: FnOnce() -> Raw> RealCall for F {
    #[inline(always)]
    fn call(self) -> Raw {
        self()
    }
}

/// What both wrappers hold.
struct Core {
    inner: Py<PyAny>,
    /// The real lock's bound `acquire`/`release` (the `#[pymethods]` fallback path only).
    acquire: Py<PyAny>,
    release: Py<PyAny>,
    site: Option<String>,
    owner: Option<Py<PyAny>>,
    name: OnceLock<String>,
    /// Acquire time of the sampled acquisition that holds the lock, 0 if none.
    held: AtomicU64,
}

impl Core {
    fn new(
        inner: &Bound<'_, PyAny>,
        site: Option<String>,
        owner: Option<Py<PyAny>>,
    ) -> PyResult<Core> {
        Ok(Core {
            acquire: inner.getattr("acquire")?.unbind(),
            release: inner.getattr("release")?.unbind(),
            inner: inner.clone().unbind(),
            site,
            owner,
            name: OnceLock::new(),
            held: AtomicU64::new(0),
        })
    }

    /// The real `acquire(*args, **kwargs)` through the bound method (fallback path).
    fn call_acquire(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> Raw {
        let r = if args.is_empty() && kwargs.is_none_or(|k| k.is_empty()) {
            self.acquire.call0(py)
        } else {
            self.acquire.bind(py).call(args, kwargs).map(Bound::unbind)
        };
        to_raw(py, r)
    }

    fn call_release(&self, py: Python<'_>) -> Raw {
        to_raw(py, self.release.call0(py))
    }

    fn name(&self, py: Python<'_>, this: &Bound<'_, PyAny>) -> &str {
        if let Some(n) = self.name.get() {
            return n;
        }
        let resolved = NAMER
            .get()
            .and_then(|f| f.call1(py, (this,)).ok())
            .and_then(|n| n.extract::<String>(py).ok());
        let name = resolved
            .or_else(|| self.site.clone())
            .unwrap_or_else(|| "<unknown>:0".to_string());
        // `_name_of` itself sets `_es_name`; either value is the same string.
        self.name.get_or_init(|| name)
    }

    /// After a sampled acquire succeeded: records the wait since `t0` and keeps the time
    /// the lock was taken.
    /// The recording code (naming, stack capture, recorder) is the only part of a wrapped
    /// call that does more than atomics and C calls: a panic there is caught and the event
    /// dropped, so none can reach the interpreter.
    #[cold]
    fn sampled_acquire(&self, py: Python<'_>, slf: Raw, t0: u64) {
        let now = catch_unwind(AssertUnwindSafe(|| {
            // SAFETY: `slf` is the wrapper being called (alive for the call).
            let this = unsafe { Borrowed::from_ptr(py, slf) };
            let name = self.name(py, &this);
            locks::record_acquired(py, t0, name)
        }))
        .unwrap_or(0);
        self.held.store(now, Ordering::Relaxed);
    }

    /// After the release that ends a sampled hold taken at `t` (0: none).
    #[cold]
    fn sampled_release(&self, py: Python<'_>, slf: Raw, t: u64) {
        if t != 0 {
            let _ = catch_unwind(AssertUnwindSafe(|| {
                // SAFETY: as in `sampled_acquire`.
                let this = unsafe { Borrowed::from_ptr(py, slf) };
                let name = self.name(py, &this);
                locks::record_released(py, t, name);
            }));
        }
    }

    fn repr(&self, py: Python<'_>) -> PyResult<String> {
        Ok(self.inner.bind(py).repr()?.to_string())
    }
}

/// The `#[pymethods]` block of a wrapper class: its own methods, then the common ones.
macro_rules! wrapper_methods {
    ($ty:ident, { $($own:tt)* }) => {
        #[pymethods]
        impl $ty {
        $($own)*

        #[pyo3(signature = (*args, **kwargs))]
        fn acquire(
            slf: &Bound<'_, Self>,
            args: &Bound<'_, PyTuple>,
            kwargs: Option<&Bound<'_, PyDict>>,
        ) -> PyResult<Py<PyAny>> {
            let py = slf.py();
            let this = slf.get();
            let r = this.acquire_with(py, slf.as_ptr(), || this.core.call_acquire(py, args, kwargs));
            // SAFETY: the protocol returns the real call's result (C convention).
            unsafe { from_raw(py, r) }
        }

        fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
            Self::acquire(slf, &PyTuple::empty(slf.py()), None)
        }

        fn release(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
            let py = slf.py();
            let this = slf.get();
            let r = this.release_with(py, slf.as_ptr(), || this.core.call_release(py));
            // SAFETY: as in `acquire`.
            unsafe { from_raw(py, r) }
        }

        #[pyo3(signature = (*_args))]
        fn __exit__(slf: &Bound<'_, Self>, _args: &Bound<'_, PyTuple>) -> PyResult<Py<PyAny>> {
            Self::release(slf)
        }

        fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
            self.core.repr(py)
        }

        #[getter]
        fn _es_site(&self) -> Option<String> {
            self.core.site.clone()
        }

        #[getter]
        fn _es_name(&self) -> Option<String> {
            self.core.name.get().cloned()
        }

        #[setter(_es_name)]
        fn set_es_name(&self, name: String) {
            let _ = self.core.name.set(name);
        }

        #[getter]
        fn _es_owner(&self, py: Python<'_>) -> Option<Py<PyAny>> {
            self.core.owner.as_ref().map(|o| o.clone_ref(py))
        }

        #[getter]
        fn _es_lock(&self, py: Python<'_>) -> Py<PyAny> {
            self.core.inner.clone_ref(py)
        }
        }
    };
}

/// `threading.Lock` with sampled wait and hold times.
#[pyclass(frozen, subclass, module = "emberscope._native")]
pub struct ProfiledLock {
    core: Core,
}

impl ProfiledLock {
    /// The real lock.
    #[inline]
    pub(crate) fn inner_ptr(&self) -> *mut ffi::PyObject {
        self.core.inner.as_ptr()
    }

    /// Whether a sampled hold is on (its release has work to do).
    #[inline(always)]
    pub(crate) fn holding(&self) -> bool {
        self.core.held.load(Ordering::Relaxed) != 0
    }

    /// `acquire`/`__enter__` around `call`, the real acquire. Unsampled: the countdown and
    /// the real call, nothing after it (a tail call in the direct methods).
    #[inline(always)]
    pub(crate) fn acquire_with(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        if locks::tick() {
            return self.acquire_sampled(py, slf, call);
        }
        call.call()
    }

    /// The acquire after [`locks::tick`] fired (the direct methods call it themselves).
    #[cold]
    #[inline(never)]
    pub(crate) fn acquire_sampled(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        let t = locks::enter_sampled();
        let r = call.call();
        if t == 0 {
            return r;
        }
        // SAFETY: `r` is the real call's result; GIL held.
        if !r.is_null() && unsafe { acquired(r) } {
            self.core.sampled_acquire(py, slf, t);
        }
        r
    }

    /// `release`/`__exit__` around `call`, the real release. Unlike an acquire, a release
    /// may run on another thread than the sampled acquire that set `held`.
    #[inline(always)]
    pub(crate) fn release_with(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        if self.holding() {
            return self.release_held(py, slf, call);
        }
        call.call()
    }

    /// The release while a sampled hold is on (the direct methods call it themselves).
    #[cold]
    #[inline(never)]
    pub(crate) fn release_held(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        let t = self.core.held.swap(0, Ordering::Relaxed);
        let r = call.call();
        if t != 0 {
            if r.is_null() {
                self.core.held.store(t, Ordering::Relaxed);
            } else {
                self.core.sampled_release(py, slf, t);
            }
        }
        r
    }
}

wrapper_methods!(ProfiledLock, {
    #[new]
    #[pyo3(signature = (lock, site=None, owner=None))]
    fn new(
        lock: &Bound<'_, PyAny>,
        site: Option<String>,
        owner: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Core::new(lock, site, owner).map(|core| ProfiledLock { core })
    }

    fn locked(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.core
            .inner
            .bind(py)
            .call_method0("locked")
            .map(Bound::unbind)
    }
});

/// `threading.RLock` with sampled wait and hold times; the hold time runs from the
/// outermost sampled acquire to the release that frees the lock.
#[pyclass(frozen, subclass, module = "emberscope._native")]
pub struct ProfiledRLock {
    core: Core,
    /// Recursion depth since the sampled outermost acquire (0 when not sampled).
    depth: AtomicU64,
}

impl ProfiledRLock {
    /// The real lock.
    #[inline]
    pub(crate) fn inner_ptr(&self) -> *mut ffi::PyObject {
        self.core.inner.as_ptr()
    }

    /// Whether a sampled hold is on (its release has work to do).
    #[inline(always)]
    pub(crate) fn holding(&self) -> bool {
        self.core.held.load(Ordering::Relaxed) != 0
    }

    fn reset(&self) {
        self.core.held.store(0, Ordering::Relaxed);
        self.depth.store(0, Ordering::Relaxed);
    }

    fn is_owned(&self, py: Python<'_>) -> bool {
        crate::lock_methods::rlock_is_owned(py, self.core.inner.bind(py))
    }

    /// `acquire`/`__enter__` around `call`, the real acquire. Unsampled: the countdown, the
    /// real call and one load (a re-entry into a sampled hold counts its depth).
    #[inline(always)]
    pub(crate) fn acquire_with(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        if locks::tick() {
            return self.acquire_sampled(py, slf, call);
        }
        let r = call.call();
        // After the call: another thread's sampled hold ends (held = 0) before we get the lock.
        if self.core.held.load(Ordering::Relaxed) != 0 {
            self.reentered(r);
        }
        r
    }

    /// An acquire while a sampled hold is on: a re-entry by the owner when it succeeds.
    #[cold]
    #[inline(never)]
    pub(crate) fn reentered(&self, r: Raw) {
        // SAFETY: the real call's result; GIL held.
        if !r.is_null() && unsafe { acquired(r) } {
            self.depth.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The acquire after [`locks::tick`] fired (the direct methods call it themselves).
    #[cold]
    #[inline(never)]
    pub(crate) fn acquire_sampled(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        let t = locks::enter_sampled();
        if t == 0 || self.is_owned(py) {
            // A re-entry is not an acquisition of its own: no event.
            let r = call.call();
            if self.core.held.load(Ordering::Relaxed) != 0 {
                self.reentered(r);
            }
            return r;
        }
        let r = call.call();
        // SAFETY: the real call's result; GIL held.
        if !r.is_null() && unsafe { acquired(r) } {
            self.depth.store(1, Ordering::Relaxed);
            self.core.sampled_acquire(py, slf, t);
        }
        r
    }

    /// `release`/`__exit__` around `call`, the real release.
    #[inline(always)]
    pub(crate) fn release_with(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        if self.holding() {
            return self.release_held(py, slf, call, false);
        }
        call.call()
    }

    /// `_release_save` around `call`, the real one (frees the lock at any depth).
    #[inline(always)]
    pub(crate) fn release_save_with(&self, py: Python<'_>, slf: Raw, call: impl RealCall) -> Raw {
        if self.holding() {
            return self.release_held(py, slf, call, true);
        }
        call.call()
    }

    /// A release while a sampled hold is on: by its owner, one level down or (at depth 1,
    /// or `all`) the release that frees the lock and ends the hold.
    /// The release while a sampled hold is on (the direct methods call it themselves).
    #[cold]
    #[inline(never)]
    pub(crate) fn release_held(
        &self,
        py: Python<'_>,
        slf: Raw,
        call: impl RealCall,
        all: bool,
    ) -> Raw {
        let t = self.core.held.load(Ordering::Relaxed);
        if t == 0 || !self.is_owned(py) {
            return call.call();
        }
        let depth = self.depth.load(Ordering::Relaxed);
        if !all && depth > 1 {
            self.depth.store(depth - 1, Ordering::Relaxed);
            return call.call();
        }
        self.reset();
        let r = call.call();
        if r.is_null() {
            self.core.held.store(t, Ordering::Relaxed);
            self.depth.store(depth.max(1), Ordering::Relaxed);
        } else {
            self.core.sampled_release(py, slf, t);
        }
        r
    }
}

wrapper_methods!(ProfiledRLock, {
    #[new]
    #[pyo3(signature = (lock, site=None, owner=None))]
    fn new(
        lock: &Bound<'_, PyAny>,
        site: Option<String>,
        owner: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        Core::new(lock, site, owner).map(|core| ProfiledRLock {
            core,
            depth: AtomicU64::new(0),
        })
    }

    fn _is_owned(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.core
            .inner
            .bind(py)
            .call_method0("_is_owned")
            .map(Bound::unbind)
    }

    fn _release_save(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let r = this.release_save_with(py, slf.as_ptr(), || {
            to_raw(
                py,
                this.core
                    .inner
                    .bind(py)
                    .call_method0("_release_save")
                    .map(Bound::unbind),
            )
        });
        // SAFETY: the protocol returns the real call's result (C convention).
        unsafe { from_raw(py, r) }
    }

    fn _acquire_restore(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.core
            .inner
            .bind(py)
            .call_method1("_acquire_restore", (state,))
            .map(Bound::unbind)
    }
});

/// Registers the wrapper classes and `lock_set_namer`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProfiledLock>()?;
    m.add_class::<ProfiledRLock>()?;
    m.add_function(wrap_pyfunction!(lock_set_namer, m)?)?;
    crate::lock_methods::register(m)
}
