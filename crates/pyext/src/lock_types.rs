//! Native wrappers for `threading.Lock` and `threading.RLock` (the lock collector's hot path).
//!
//! `emberscope.profiling._locks` makes the patched `threading.Lock()`/`RLock()` return a
//! [`ProfiledLock`]/[`ProfiledRLock`] around a real lock (through a Python subclass that only
//! adds `__weakref__`: pyo3 offers weak references on abi3 from Python 3.9 only). An unsampled `acquire`/`release`
//! (99 % at the default `DD_PROFILING_CAPTURE_PCT`) is one countdown update and one call of
//! the real lock's bound method, with no Python frame of ours in between: a pure-Python
//! wrapper cost 0.5-1.5 µs per operation, enough to double the CPU of lock-heavy code.
//!
//! A sampled acquire takes the time before and after the real acquire and records the wait
//! ([`crate::locks::record_acquired`]); the release that frees the lock records the hold
//! time. The lock's `file:line:variable` name is resolved once, on its first sampled
//! operation, by the Python layer's `_name_of` (registered with `lock_set_namer`).
//!
//! Everything the real lock has is kept: `acquire(blocking, timeout)` with its own argument
//! checking and errors, context-manager use, `locked()`, and for RLock `_is_owned()`,
//! `_release_save()`, `_acquire_restore()` (what `threading.Condition` uses); any other
//! attribute, `_at_fork_reinit` included, is looked up on the real lock, so `hasattr` answers
//! as for the real lock on every version. A sampled hold that started before a fork is not
//! recorded by the child ([`crate::locks::record_released`] checks). Nothing here takes a
//! lock or runs code other than the real lock's methods and, once per lock, `_name_of`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

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

/// What both wrappers hold.
struct Core {
    inner: Py<PyAny>,
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

    fn call_acquire(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if args.is_empty() && kwargs.is_none_or(|k| k.is_empty()) {
            self.acquire.call0(py)
        } else {
            self.acquire.bind(py).call(args, kwargs).map(Bound::unbind)
        }
    }

    fn name(&self, py: Python<'_>, this: &Bound<'_, PyAny>) -> String {
        if let Some(n) = self.name.get() {
            return n.clone();
        }
        let resolved = NAMER
            .get()
            .and_then(|f| f.call1(py, (this,)).ok())
            .and_then(|n| n.extract::<String>(py).ok());
        let name = resolved
            .or_else(|| self.site.clone())
            .unwrap_or_else(|| "<unknown>:0".to_string());
        let _ = self.name.set(name.clone());
        name
    }

    /// After a sampled acquire succeeded: records the wait since `t0` and keeps the time
    /// the lock was taken.
    fn sampled_acquire(&self, py: Python<'_>, this: &Bound<'_, PyAny>, t0: u64) {
        let name = self.name(py, this);
        let now = locks::record_acquired(py, t0, &name);
        self.held.store(now, Ordering::Relaxed);
    }

    /// After the release that ends a sampled hold taken at `t` (0: none).
    fn sampled_release(&self, py: Python<'_>, this: &Bound<'_, PyAny>, t: u64) {
        if t != 0 {
            let name = self.name(py, this);
            locks::record_released(py, t, &name);
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

        #[pyo3(signature = (*_args))]
        fn __exit__(slf: &Bound<'_, Self>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
            Self::release(slf)
        }

        fn __getattr__(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
            self.core.inner.bind(py).getattr(name).map(Bound::unbind)
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

    #[pyo3(signature = (*args, **kwargs))]
    fn acquire(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let t = locks::enter();
        let r = this.core.call_acquire(py, args, kwargs)?;
        if t != 0 && r.is_truthy(py)? {
            this.core.sampled_acquire(py, slf.as_any(), t);
        }
        Ok(r)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let t = locks::enter();
        let r = this.core.acquire.call0(py)?;
        if t != 0 {
            this.core.sampled_acquire(py, slf.as_any(), t);
        }
        Ok(r)
    }

    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let t = this.core.held.swap(0, Ordering::Relaxed);
        if let Err(e) = this.core.release.call0(py) {
            if t != 0 {
                this.core.held.store(t, Ordering::Relaxed);
            }
            return Err(e);
        }
        this.core.sampled_release(py, slf.as_any(), t);
        Ok(())
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
    fn reset(&self) {
        self.core.held.store(0, Ordering::Relaxed);
        self.depth.store(0, Ordering::Relaxed);
    }

    fn is_owned(&self, py: Python<'_>) -> bool {
        self.core
            .inner
            .bind(py)
            .call_method0("_is_owned")
            .and_then(|r| r.is_truthy())
            .unwrap_or(false)
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

    #[pyo3(signature = (*args, **kwargs))]
    fn acquire(
        slf: &Bound<'_, Self>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let this = slf.get();
        let t = locks::enter();
        if t != 0 && !this.is_owned(py) {
            let r = this.core.call_acquire(py, args, kwargs)?;
            if r.is_truthy(py)? {
                this.depth.store(1, Ordering::Relaxed);
                this.core.sampled_acquire(py, slf.as_any(), t);
            }
            return Ok(r);
        }
        let r = this.core.call_acquire(py, args, kwargs)?;
        if this.core.held.load(Ordering::Relaxed) != 0 && r.is_truthy(py)? {
            this.depth.fetch_add(1, Ordering::Relaxed);
        }
        Ok(r)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        Self::acquire(slf, &PyTuple::empty(slf.py()), None)
    }

    fn release(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let t = this.core.held.load(Ordering::Relaxed);
        if t != 0 && this.is_owned(py) {
            let depth = this.depth.load(Ordering::Relaxed).saturating_sub(1);
            if depth == 0 {
                this.reset();
                if let Err(e) = this.core.release.call0(py) {
                    this.core.held.store(t, Ordering::Relaxed);
                    this.depth.store(1, Ordering::Relaxed);
                    return Err(e);
                }
                this.core.sampled_release(py, slf.as_any(), t);
                return Ok(());
            }
            this.depth.store(depth, Ordering::Relaxed);
        }
        this.core.release.call0(py).map(|_| ())
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
        let t = this.core.held.load(Ordering::Relaxed);
        if t != 0 && this.is_owned(py) {
            this.reset();
            let state = this
                .core
                .inner
                .bind(py)
                .call_method0("_release_save")?
                .unbind();
            this.core.sampled_release(py, slf.as_any(), t);
            return Ok(state);
        }
        this.core
            .inner
            .bind(py)
            .call_method0("_release_save")
            .map(Bound::unbind)
    }

    fn _acquire_restore(&self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        self.core
            .inner
            .bind(py)
            .call_method1("_acquire_restore", (state,))
            .map(|_| ())
    }
});

/// Registers the wrapper classes and `lock_set_namer`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProfiledLock>()?;
    m.add_class::<ProfiledRLock>()?;
    m.add_function(wrap_pyfunction!(lock_set_namer, m)?)?;
    Ok(())
}
