//! Hand-made method descriptors for the hot methods of [`ProfiledLock`] and [`ProfiledRLock`].
//!
//! pyo3's methods cost a trampoline (panic guard, reference pool), tuple-based argument
//! parsing (abi3 for 3.8 has no vectorcall) and, to reach the real lock, a call through a
//! bound-method object: about 350 instructions per `acquire` or `release` on top of the real
//! lock's own. `lock_install_fast(Lock, RLock)` (called once by the Python layer on its
//! subclasses of the two wrappers) puts method descriptors (`PyDescr_NewMethod`) for
//! `acquire`, `release`, `__enter__`, `__exit__` and RLock's `_release_save` on those
//! classes. Their C functions here:
//!
//! * take the *real* method's calling convention (`ml_flags` of `_thread.lock`'s or
//!   `_thread.RLock`'s method descriptor: `METH_VARARGS|METH_KEYWORDS` for `acquire` and
//!   `__enter__`, `METH_VARARGS` for `__exit__`, `METH_NOARGS` for `release` on 3.8-3.14;
//!   the `METH_FASTCALL` forms are handled too), so the arguments reach the real method
//!   unchanged: same parsing, same errors, same docstring, no conversion;
//! * call the real method's C function (`ml_meth`, read once from its descriptor:
//!   `PyMethodDescrObject` is `PyObject_HEAD, d_type, d_name, d_qualname, d_method` on
//!   3.8-3.14) on the wrapped lock. Unsampled, that is the whole method: a countdown update
//!   (acquire) or one load (release), a type check, and a tail call of the real function,
//!   about 25 instructions. Everything else (a sampled acquire, the release that ends a
//!   sampled hold) runs out of line through the wrapper's protocol
//!   ([`ProfiledLock::acquire_sampled`] and friends), as do the pyo3 methods.
//!
//! A real method is used only when its descriptor checks out (a `method_descriptor` whose
//! `d_type` is the lock type, whose `ml_name` is the expected name, with a known
//! convention); otherwise that method keeps its pyo3 version. A wrapped object of another
//! type than the one the table was read from (not made by `threading`) is called through its
//! bound method, with the arguments converted. No panic can cross the C boundary: the
//! direct path does nothing that can panic and the recording code catches its own. A failure
//! sets a Python exception, as the real method would. `_native.lock_fast_methods()` lists
//! what was installed (tests, debugging).

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::OnceLock;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};

use crate::lock_types::{ProfiledLock, ProfiledRLock, Raw, RealCall};
use crate::locks;

// Method flags (`methodobject.h`; pyo3-ffi hides METH_FASTCALL under abi3 before 3.10, but
// the interpreter honours it from 3.7 on).
const METH_VARARGS: c_int = 0x0001;
const METH_KEYWORDS: c_int = 0x0002;
const METH_NOARGS: c_int = 0x0004;
const METH_COEXIST: c_int = 0x0040;
const METH_FASTCALL: c_int = 0x0080;

/// The calling conventions handled here (as `u8` const generic parameters below).
const NOARGS: u8 = 0;
const VARARGS: u8 = 1;
const VARARGS_KW: u8 = 2;
const FAST: u8 = 3;
const FAST_KW: u8 = 4;

fn conv_of(flags: c_int) -> Option<u8> {
    match flags & !METH_COEXIST {
        METH_NOARGS => Some(NOARGS),
        METH_VARARGS => Some(VARARGS),
        f if f == METH_VARARGS | METH_KEYWORDS => Some(VARARGS_KW),
        METH_FASTCALL => Some(FAST),
        f if f == METH_FASTCALL | METH_KEYWORDS => Some(FAST_KW),
        _ => None,
    }
}

fn conv_flags(conv: u8) -> c_int {
    match conv {
        NOARGS => METH_NOARGS,
        VARARGS => METH_VARARGS,
        VARARGS_KW => METH_VARARGS | METH_KEYWORDS,
        FAST => METH_FASTCALL,
        _ => METH_FASTCALL | METH_KEYWORDS,
    }
}

type VarArgsFn = unsafe extern "C" fn(Raw, Raw) -> Raw;
type VarArgsKwFn = unsafe extern "C" fn(Raw, Raw, Raw) -> Raw;
type FastFn = unsafe extern "C" fn(Raw, *const Raw, ffi::Py_ssize_t) -> Raw;
type FastKwFn = unsafe extern "C" fn(Raw, *const Raw, ffi::Py_ssize_t, Raw) -> Raw;

/// What a method does around the real call.
#[derive(Clone, Copy)]
enum Op {
    LockAcquire,
    LockRelease,
    RLockAcquire,
    RLockRelease,
    RLockReleaseSave,
    /// Not installed: only called (RLock `_is_owned` for the sampled path).
    Plain,
}

struct Slot {
    rlock: bool,
    name: &'static CStr,
    op: Op,
}

const fn slot(rlock: bool, name: &'static CStr, op: Op) -> Slot {
    Slot { rlock, name, op }
}

const SLOTS: [Slot; 10] = [
    slot(false, c"acquire", Op::LockAcquire),
    slot(false, c"__enter__", Op::LockAcquire),
    slot(false, c"release", Op::LockRelease),
    slot(false, c"__exit__", Op::LockRelease),
    slot(true, c"acquire", Op::RLockAcquire),
    slot(true, c"__enter__", Op::RLockAcquire),
    slot(true, c"release", Op::RLockRelease),
    slot(true, c"__exit__", Op::RLockRelease),
    slot(true, c"_release_save", Op::RLockReleaseSave),
    slot(true, c"_is_owned", Op::Plain),
];
const IS_OWNED: usize = 9;
const N: usize = SLOTS.len();

/// A real lock method: its C function, convention and docstring.
#[derive(Clone, Copy)]
struct Real {
    meth: *mut c_void,
    conv: u8,
    doc: *const c_char,
}

/// The real lock types and their methods, read once.
struct Table {
    real: [Option<Real>; N],
    /// Keeps the two types (and so the method tables they point to) alive.
    _types: [Py<PyAny>; 2],
}

// SAFETY: the raw pointers are immutable after construction and point to static method
// tables of types kept alive by `_types`.
unsafe impl Send for Table {}
// SAFETY: as above.
unsafe impl Sync for Table {}

static TABLE: OnceLock<Table> = OnceLock::new();

/// What the hot path reads, set once (before any descriptor is installed) from [`TABLE`]:
/// slot `s`'s real C function, null when the slot has none or (`_is_owned`) not the
/// convention it is called with. An installed slot's descriptor has the convention its
/// real function was read with, so `DIRECT[s]` is always called with its own.
static DIRECT: [AtomicPtr<c_void>; N] = [const { AtomicPtr::new(ptr::null_mut()) }; N];
/// The types the real functions belong to: `_thread.lock`, `_thread.RLock`.
static REAL_TYPE: [AtomicPtr<ffi::PyTypeObject>; 2] =
    [const { AtomicPtr::new(ptr::null_mut()) }; 2];

/// `PyMethodDescrObject`'s head (CPython 3.8-3.14, default builds; abi3 extensions do not
/// load in free-threaded builds).
#[repr(C)]
struct MethodDescr {
    ob_refcnt: ffi::Py_ssize_t,
    ob_type: *mut ffi::PyTypeObject,
    d_type: *mut ffi::PyTypeObject,
    d_name: *mut ffi::PyObject,
    d_qualname: *mut ffi::PyObject,
    d_method: *mut ffi::PyMethodDef,
}

/// The C function behind `ty.__dict__[name]`, when it is the method descriptor we expect.
fn read_real(
    ty: &Bound<'_, PyAny>,
    name: &CStr,
    method_descriptor: &Bound<'_, PyAny>,
) -> Option<Real> {
    let key = name.to_str().ok()?;
    let descr = ty.getattr("__dict__").ok()?.get_item(key).ok()?;
    if !descr.get_type().is(method_descriptor) {
        return None;
    }
    let d = descr.as_ptr() as *const MethodDescr;
    // SAFETY: `descr` is a method_descriptor (checked), whose layout starts as
    // `MethodDescr`; it is alive while `descr` is.
    let (d_type, def) = unsafe { ((*d).d_type, (*d).d_method) };
    if d_type as *mut ffi::PyObject != ty.as_ptr() || def.is_null() {
        return None;
    }
    // SAFETY: `def` is the descriptor's `PyMethodDef`, static in the interpreter.
    let def = unsafe { &*def };
    if def.ml_name.is_null() || def.ml_meth.is_null() {
        return None;
    }
    // SAFETY: a NUL-terminated name (checked non-null).
    if unsafe { CStr::from_ptr(def.ml_name) } != name {
        return None;
    }
    Some(Real {
        meth: def.ml_meth.as_ptr(),
        conv: conv_of(def.ml_flags)?,
        doc: def.ml_doc,
    })
}

fn build_table(py: Python<'_>) -> PyResult<&'static Table> {
    if let Some(t) = TABLE.get() {
        return Ok(t);
    }
    let thread = py.import("_thread")?;
    let lock_ty = thread.getattr("LockType")?;
    let rlock_ty = thread.getattr("RLock")?;
    let method_descriptor = py.get_type::<PyString>().getattr("join")?.get_type();
    let mut real = [None; N];
    for (r, slot) in real.iter_mut().zip(SLOTS.iter()) {
        let ty = if slot.rlock { &rlock_ty } else { &lock_ty };
        *r = read_real(ty, slot.name, method_descriptor.as_any());
    }
    if real[IS_OWNED].is_some_and(|r| r.conv != NOARGS) {
        real[IS_OWNED] = None;
    }
    let table = TABLE.get_or_init(|| Table {
        real,
        _types: [lock_ty.clone().unbind(), rlock_ty.clone().unbind()],
    });
    REAL_TYPE[0].store(
        lock_ty.as_ptr() as *mut ffi::PyTypeObject,
        Ordering::Relaxed,
    );
    REAL_TYPE[1].store(
        rlock_ty.as_ptr() as *mut ffi::PyTypeObject,
        Ordering::Relaxed,
    );
    for (d, r) in DIRECT.iter().zip(table.real.iter()) {
        d.store(r.map_or(ptr::null_mut(), |r| r.meth), Ordering::Relaxed);
    }
    Ok(table)
}

/// Slot `s`'s real method on `inner`, the arguments in convention `C` (what the
/// interpreter passed: `p0` the argument tuple or vector, `n` the vector's length, `p1` the
/// keyword dict or names).
///
/// # Safety
/// GIL held; `inner` alive; the arguments valid for `C`, which is slot `s`'s installed
/// convention (or `NOARGS` for `IS_OWNED`).
#[inline(always)]
unsafe fn call_real<const C: u8>(
    s: usize,
    inner: Raw,
    p0: Raw,
    n: ffi::Py_ssize_t,
    p1: Raw,
) -> Raw {
    let meth = DIRECT[s].load(Ordering::Relaxed);
    let ty = REAL_TYPE[SLOTS[s].rlock as usize].load(Ordering::Relaxed);
    // SAFETY: GIL held, `inner` alive; a non-null `meth` has convention `C` (see `DIRECT`)
    // and `inner` is an instance of the type it belongs to.
    unsafe {
        if meth.is_null() || ffi::Py_TYPE(inner) != ty {
            return call_generic::<C>(inner, SLOTS[s].name, p0, n, p1);
        }
        match C {
            NOARGS => std::mem::transmute::<*mut c_void, VarArgsFn>(meth)(inner, ptr::null_mut()),
            VARARGS => std::mem::transmute::<*mut c_void, VarArgsFn>(meth)(inner, p0),
            VARARGS_KW => std::mem::transmute::<*mut c_void, VarArgsKwFn>(meth)(inner, p0, p1),
            FAST => std::mem::transmute::<*mut c_void, FastFn>(meth)(inner, p0 as *const Raw, n),
            _ => std::mem::transmute::<*mut c_void, FastKwFn>(meth)(inner, p0 as *const Raw, n, p1),
        }
    }
}

/// `getattr(inner, name)(*args, **kwargs)`, for wrapped objects of another type.
///
/// # Safety
/// As [`call_real`].
#[cold]
#[inline(never)]
unsafe fn call_generic<const C: u8>(
    inner: Raw,
    name: &CStr,
    p0: Raw,
    n: ffi::Py_ssize_t,
    p1: Raw,
) -> Raw {
    // SAFETY: GIL held; every pointer below is checked or comes from the interpreter.
    unsafe {
        let bound = ffi::PyObject_GetAttrString(inner, name.as_ptr());
        if bound.is_null() {
            return ptr::null_mut();
        }
        let r = match C {
            NOARGS => ffi::PyObject_CallObject(bound, ptr::null_mut()),
            VARARGS => ffi::PyObject_Call(bound, p0, ptr::null_mut()),
            VARARGS_KW => ffi::PyObject_Call(bound, p0, p1),
            FAST => call_vector(bound, p0 as *const Raw, n, ptr::null_mut()),
            _ => call_vector(bound, p0 as *const Raw, n, p1),
        };
        ffi::Py_DECREF(bound);
        r
    }
}

/// `f(*args[:n], **dict(zip(kwnames, args[n:])))`.
///
/// # Safety
/// GIL held; `args` holds `n` + `len(kwnames)` objects.
unsafe fn call_vector(f: Raw, args: *const Raw, n: ffi::Py_ssize_t, kwnames: Raw) -> Raw {
    // SAFETY: GIL held; indices stay within the vector's documented length.
    unsafe {
        let tuple = ffi::PyTuple_New(n);
        if tuple.is_null() {
            return ptr::null_mut();
        }
        for i in 0..n {
            let o = *args.offset(i);
            ffi::Py_INCREF(o);
            ffi::PyTuple_SetItem(tuple, i, o);
        }
        let mut kwargs = ptr::null_mut();
        if !kwnames.is_null() {
            kwargs = ffi::PyDict_New();
            if kwargs.is_null() {
                ffi::Py_DECREF(tuple);
                return ptr::null_mut();
            }
            for j in 0..ffi::PyTuple_Size(kwnames) {
                let key = ffi::PyTuple_GetItem(kwnames, j);
                if key.is_null() || ffi::PyDict_SetItem(kwargs, key, *args.offset(n + j)) < 0 {
                    ffi::Py_DECREF(tuple);
                    ffi::Py_DECREF(kwargs);
                    return ptr::null_mut();
                }
            }
        }
        let r = ffi::PyObject_Call(f, tuple, kwargs);
        ffi::Py_DECREF(tuple);
        if !kwargs.is_null() {
            ffi::Py_DECREF(kwargs);
        }
        r
    }
}

fn set_error(msg: &CStr) -> Raw {
    // SAFETY: called with the GIL held; static message.
    unsafe { ffi::PyErr_SetString(ffi::PyExc_SystemError, msg.as_ptr()) };
    ptr::null_mut()
}

/// Slot `s`'s real method with the arguments of one call, as the protocol's real call.
struct Direct<const C: u8> {
    s: usize,
    inner: Raw,
    p0: Raw,
    n: ffi::Py_ssize_t,
    p1: Raw,
}

impl<const C: u8> Direct<C> {
    /// # Safety
    /// As [`call_real`], until the call is made.
    #[inline(always)]
    unsafe fn new(s: usize, inner: Raw, p0: Raw, n: ffi::Py_ssize_t, p1: Raw) -> Self {
        Direct {
            s,
            inner,
            p0,
            n,
            p1,
        }
    }
}

impl<const C: u8> RealCall for Direct<C> {
    #[inline(always)]
    fn call(self) -> Raw {
        // SAFETY: `new`'s contract.
        unsafe { call_real::<C>(self.s, self.inner, self.p0, self.n, self.p1) }
    }
}

/// `slf` as the wrapper it is (None when null).
macro_rules! wrapper_ref {
    ($name:ident, $ty:ty) => {
        /// # Safety
        /// `slf` is null or a live instance of the class or of a subclass, alive for `'a`:
        /// the descriptors are installed on such classes only (checked by
        /// `lock_install_fast`) and check `self`'s type before calling.
        #[inline(always)]
        unsafe fn $name<'a>(py: Python<'_>, slf: Raw) -> Option<&'a $ty> {
            // SAFETY: the caller's contract.
            let b = unsafe { Borrowed::from_ptr_or_opt(py, slf) }?;
            // SAFETY: as above: `slf` is one of ours.
            let p: *const $ty = unsafe { b.cast_unchecked::<$ty>() }.get();
            // SAFETY: the object (and so its contents) lives for `'a`.
            Some(unsafe { &*p })
        }
    };
}
wrapper_ref!(lock_ref, ProfiledLock);
wrapper_ref!(rlock_ref, ProfiledRLock);

fn no_self() -> Raw {
    set_error(c"emberscope: lock method called without self")
}

/// One wrapped call: slot `S`'s method, arguments in convention `C`.
///
/// # Safety
/// Called by the interpreter through a descriptor of slot `S` installed by
/// [`lock_install_fast`] with convention `C`: the GIL is held and `slf` is an instance of
/// the descriptor's class, a subclass of the slot's wrapper class (method descriptors check
/// `self`'s type before calling); the arguments as the interpreter passes them for `C`.
#[inline(always)]
unsafe fn run<const S: usize, const C: u8>(slf: Raw, p0: Raw, n: ffi::Py_ssize_t, p1: Raw) -> Raw {
    // SAFETY: the GIL is held (we are called from Python).
    let py = unsafe { Python::assume_attached() };
    // Everything but the countdown, the real call and a load or two is out of line
    // (`run_slow`): this compiles to about 20 instructions and, mostly, a tail call.
    match SLOTS[S].op {
        Op::LockAcquire | Op::LockRelease => {
            // SAFETY: our contract (`slf` is a wrapper of this class, alive for the call).
            let Some(this) = (unsafe { lock_ref(py, slf) }) else {
                return no_self();
            };
            let slow = if matches!(SLOTS[S].op, Op::LockAcquire) {
                locks::tick()
            } else {
                this.holding()
            };
            if slow {
                // SAFETY: our own contract.
                return unsafe { run_slow::<S, C>(py, slf, p0, n, p1) };
            }
            // SAFETY: GIL held, `inner` owned by the wrapper, arguments as passed to us.
            unsafe { call_real::<C>(S, this.inner_ptr(), p0, n, p1) }
        }
        Op::RLockAcquire => {
            // SAFETY: as above.
            let Some(this) = (unsafe { rlock_ref(py, slf) }) else {
                return no_self();
            };
            if locks::tick() {
                // SAFETY: our own contract.
                return unsafe { run_slow::<S, C>(py, slf, p0, n, p1) };
            }
            // SAFETY: as above.
            let r = unsafe { call_real::<C>(S, this.inner_ptr(), p0, n, p1) };
            // After the call: another thread's sampled hold ends before we get the lock.
            if this.holding() {
                this.reentered(r);
            }
            r
        }
        Op::RLockRelease | Op::RLockReleaseSave => {
            // SAFETY: as above.
            let Some(this) = (unsafe { rlock_ref(py, slf) }) else {
                return no_self();
            };
            if this.holding() {
                // SAFETY: our own contract.
                return unsafe { run_slow::<S, C>(py, slf, p0, n, p1) };
            }
            // SAFETY: as above.
            unsafe { call_real::<C>(S, this.inner_ptr(), p0, n, p1) }
        }
        Op::Plain => set_error(c"emberscope: lock method not wrapped"),
    }
}

/// The sampled and holding cases of [`run`] (whose countdown tick is taken): the wrapper's
/// full protocol.
///
/// # Safety
/// As [`run`].
#[cold]
#[inline(never)]
unsafe fn run_slow<const S: usize, const C: u8>(
    py: Python<'_>,
    slf: Raw,
    p0: Raw,
    n: ffi::Py_ssize_t,
    p1: Raw,
) -> Raw {
    match SLOTS[S].op {
        Op::LockAcquire | Op::LockRelease => {
            // SAFETY: our contract.
            let Some(this) = (unsafe { lock_ref(py, slf) }) else {
                return no_self();
            };
            // SAFETY: GIL held; `inner` is owned by `this`; arguments as passed to us.
            let call = unsafe { Direct::<C>::new(S, this.inner_ptr(), p0, n, p1) };
            if matches!(SLOTS[S].op, Op::LockAcquire) {
                this.acquire_sampled(py, slf, call)
            } else {
                this.release_with(py, slf, call)
            }
        }
        Op::RLockAcquire | Op::RLockRelease | Op::RLockReleaseSave => {
            // SAFETY: as above.
            let Some(this) = (unsafe { rlock_ref(py, slf) }) else {
                return no_self();
            };
            // SAFETY: as above.
            let call = unsafe { Direct::<C>::new(S, this.inner_ptr(), p0, n, p1) };
            match SLOTS[S].op {
                Op::RLockAcquire => this.acquire_sampled(py, slf, call),
                Op::RLockRelease => this.release_with(py, slf, call),
                _ => this.release_save_with(py, slf, call),
            }
        }
        Op::Plain => set_error(c"emberscope: lock method not wrapped"),
    }
}

// The entry points, one per slot and convention (the interpreter calls each with the
// signature its descriptor's `ml_flags` announce).

unsafe extern "C" fn w_noargs<const S: usize>(slf: Raw, _unused: Raw) -> Raw {
    // SAFETY: called by the interpreter with this convention (see `run`).
    unsafe { run::<S, NOARGS>(slf, ptr::null_mut(), 0, ptr::null_mut()) }
}

unsafe extern "C" fn w_varargs<const S: usize>(slf: Raw, args: Raw) -> Raw {
    // SAFETY: as above.
    unsafe { run::<S, VARARGS>(slf, args, 0, ptr::null_mut()) }
}

unsafe extern "C" fn w_varargs_kw<const S: usize>(slf: Raw, args: Raw, kwargs: Raw) -> Raw {
    // SAFETY: as above.
    unsafe { run::<S, VARARGS_KW>(slf, args, 0, kwargs) }
}

unsafe extern "C" fn w_fast<const S: usize>(
    slf: Raw,
    args: *const Raw,
    nargs: ffi::Py_ssize_t,
) -> Raw {
    // SAFETY: as above.
    unsafe { run::<S, FAST>(slf, args as Raw, nargs, ptr::null_mut()) }
}

unsafe extern "C" fn w_fast_kw<const S: usize>(
    slf: Raw,
    args: *const Raw,
    nargs: ffi::Py_ssize_t,
    kwnames: Raw,
) -> Raw {
    // SAFETY: as above.
    unsafe { run::<S, FAST_KW>(slf, args as Raw, nargs, kwnames) }
}

/// Slot `S`'s entry point for convention `conv`.
fn entry<const S: usize>(conv: u8) -> ffi::PyMethodDefPointer {
    match conv {
        NOARGS => ffi::PyMethodDefPointer {
            PyCFunction: w_noargs::<S>,
        },
        VARARGS => ffi::PyMethodDefPointer {
            PyCFunction: w_varargs::<S>,
        },
        VARARGS_KW => ffi::PyMethodDefPointer {
            PyCFunctionWithKeywords: w_varargs_kw::<S>,
        },
        // SAFETY (both): function pointers of the same size; the interpreter calls each
        // with the signature its `ml_flags` (METH_FASTCALL[|METH_KEYWORDS]) announce,
        // which is the one it is defined with.
        FAST => ffi::PyMethodDefPointer {
            PyCFunction: unsafe { std::mem::transmute::<FastFn, VarArgsFn>(w_fast::<S>) },
        },
        _ => ffi::PyMethodDefPointer {
            PyCFunction: unsafe { std::mem::transmute::<FastKwFn, VarArgsFn>(w_fast_kw::<S>) },
        },
    }
}

fn entry_for(s: usize, conv: u8) -> Option<ffi::PyMethodDefPointer> {
    Some(match s {
        0 => entry::<0>(conv),
        1 => entry::<1>(conv),
        2 => entry::<2>(conv),
        3 => entry::<3>(conv),
        4 => entry::<4>(conv),
        5 => entry::<5>(conv),
        6 => entry::<6>(conv),
        7 => entry::<7>(conv),
        8 => entry::<8>(conv),
        _ => return None,
    })
}

/// Puts a descriptor for slot `s` on `cls`.
fn install_slot(cls: &Bound<'_, PyType>, s: usize, real: Real) -> PyResult<()> {
    let Some(meth) = entry_for(s, real.conv) else {
        return Ok(());
    };
    // The descriptor keeps a pointer to its definition: it lives as long as the process
    // (one per method and class, made once).
    let def: &'static mut ffi::PyMethodDef = Box::leak(Box::new(ffi::PyMethodDef {
        ml_name: SLOTS[s].name.as_ptr(),
        ml_meth: meth,
        ml_flags: conv_flags(real.conv),
        ml_doc: real.doc,
    }));
    let py = cls.py();
    // SAFETY: GIL held; `cls` is a live type; `def` is 'static.
    let descr = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PyDescr_NewMethod(cls.as_ptr() as *mut ffi::PyTypeObject, def),
        )
    }?;
    cls.setattr(SLOTS[s].name.to_str().unwrap_or("?"), descr)
}

/// `_native.lock_install_fast(lock_cls, rlock_cls)`: installs the direct methods on the two
/// classes (subclasses of `ProfiledLock` and `ProfiledRLock`: a descriptor whose type is the
/// object's exact type skips the subtype walk of its `self` check); returns the
/// `Class.method` names installed.
#[pyfunction]
fn lock_install_fast(
    lock_cls: &Bound<'_, PyType>,
    rlock_cls: &Bound<'_, PyType>,
) -> PyResult<Vec<String>> {
    // `run` relies on this: instances of the classes are wrapper objects.
    if !lock_cls.is_subclass_of::<ProfiledLock>()?
        || !rlock_cls.is_subclass_of::<ProfiledRLock>()?
    {
        return Err(pyo3::exceptions::PyTypeError::new_err(
            "lock_install_fast: not ProfiledLock/ProfiledRLock subclasses",
        ));
    }
    let table = build_table(lock_cls.py())?;
    for (s, slot) in SLOTS.iter().enumerate() {
        if matches!(slot.op, Op::Plain) {
            continue;
        }
        if let Some(real) = table.real[s] {
            install_slot(if slot.rlock { rlock_cls } else { lock_cls }, s, real)?;
        }
    }
    Ok(installed(table))
}

fn installed(t: &Table) -> Vec<String> {
    SLOTS
        .iter()
        .zip(t.real.iter())
        .filter(|(slot, r)| r.is_some() && !matches!(slot.op, Op::Plain))
        .map(|(slot, _)| {
            format!(
                "{}.{}",
                if slot.rlock { "RLock" } else { "Lock" },
                slot.name.to_str().unwrap_or("?")
            )
        })
        .collect()
}

/// `_native.lock_fast_methods()`: what `lock_install_fast` installed (empty before).
#[pyfunction]
fn lock_fast_methods() -> Vec<String> {
    TABLE.get().map(installed).unwrap_or_default()
}

/// Whether the calling thread owns the RLock `inner` (its `_is_owned()`; false on error).
pub(crate) fn rlock_is_owned(py: Python<'_>, inner: &Bound<'_, PyAny>) -> bool {
    // SAFETY: GIL held (`py`); `inner` alive; `_is_owned` is called without arguments
    // (`DIRECT[IS_OWNED]` is set only for a METH_NOARGS real method).
    let r = unsafe {
        call_real::<NOARGS>(
            IS_OWNED,
            inner.as_ptr(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
        )
    };
    // SAFETY: the C convention: a new reference or null with an exception set.
    match unsafe { Bound::from_owned_ptr_or_err(py, r) } {
        Ok(r) => r.is_truthy().unwrap_or(false),
        Err(_) => false,
    }
}

/// Registers `lock_install_fast` and `lock_fast_methods`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(lock_install_fast, m)?)?;
    m.add_function(wrap_pyfunction!(lock_fast_methods, m)?)?;
    Ok(())
}
