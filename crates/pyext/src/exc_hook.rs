//! Exception collection on CPython 3.8–3.11, where `sys.monitoring` does not exist.
//!
//! Every exception that Python code raises or catches is instantiated through its type's
//! `tp_new` slot (a `raise X(...)`, or the normalisation of a C-level error before an
//! `except` clause sees it). At start-up this module points the `tp_new` slot of every
//! exception class whose constructor is written in C at [`exc_new`], which calls the class's
//! original constructor and then counts the new exception. The unsampled path is one hash
//! lookup and one countdown decrement; only sampled exceptions read the stack.
//!
//! Safety rules, in order of importance:
//! * the slot offset comes from the generated layout and is verified against
//!   `PyType_GetSlot` on a heap subclass before anything is written;
//! * classes whose `tp_new` is the generic `slot_tp_new` (a Python `__new__`) are left alone
//!   (dispatching them through [`exc_new`] could recurse), as are `MemoryError` and
//!   `RecursionError`, which must not run extra code at the moment they are created;
//! * the originals are never forgotten: when profiling stops, [`exc_new`] keeps calling them
//!   and only the counting stops;
//! * a pending error of the caller is saved and restored around the sampled path.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use emberscope_sync::Mutex;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyType};

type NewFunc = unsafe extern "C" fn(
    *mut ffi::PyTypeObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;

struct Hook {
    originals: HashMap<usize, NewFunc>,
    base_new: NewFunc,
}

static HOOK: Mutex<Option<Hook>> = Mutex::new(None);
static ENABLED: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Reads a function pointer slot of a live type object (GIL held).
unsafe fn read_slot(t: *mut ffi::PyTypeObject, off: usize) -> usize {
    // SAFETY: caller guarantees `t` is a live type object and `off` a pointer-sized slot.
    unsafe { std::ptr::read((t as *const u8).add(off) as *const usize) }
}

unsafe fn write_slot(t: *mut ffi::PyTypeObject, off: usize, value: usize) {
    // SAFETY: as read_slot; the GIL serialises every access to type slots.
    unsafe { std::ptr::write((t as *mut u8).add(off) as *mut usize, value) }
}

fn all_exception_types<'py>(py: Python<'py>) -> PyResult<Vec<Bound<'py, PyType>>> {
    let base = py.get_type::<pyo3::exceptions::PyBaseException>();
    let mut out = vec![base.clone()];
    let mut i = 0;
    while i < out.len() && out.len() < 100_000 {
        let subs = out[i].call_method0("__subclasses__")?;
        for s in subs.try_iter()? {
            let t = s?.cast_into::<PyType>()?;
            if !out.iter().any(|o| o.is(&t)) {
                out.push(t);
            }
        }
        i += 1;
    }
    Ok(out)
}

/// Installs the hook (idempotent) and enables counting. `tp_new_off` is
/// `offsetof(PyTypeObject, tp_new)` from the generated layout.
pub fn install(py: Python<'_>, tp_new_off: usize) -> Result<(), String> {
    let mut hook = HOOK.lock();
    if hook.is_some() {
        ENABLED.store(true, Ordering::Release);
        return Ok(());
    }
    let probes = PyDict::new(py);
    py.run(
        c"class Probe(BaseException):\n    pass\nclass SlotNew(BaseException):\n    def __new__(cls, *a, **k):\n        return BaseException.__new__(cls, *a, **k)\n",
        None,
        Some(&probes),
    )
    .map_err(|e| format!("could not create probe classes: {e}"))?;
    let get = |name: &str| -> Result<*mut ffi::PyTypeObject, String> {
        probes
            .get_item(name)
            .ok()
            .flatten()
            .map(|t| t.as_ptr() as *mut ffi::PyTypeObject)
            .ok_or_else(|| format!("probe class {name} missing"))
    };
    let probe = get("Probe")?;
    let slot_new_type = get("SlotNew")?;
    let base = py.get_type::<pyo3::exceptions::PyBaseException>();
    let base_ptr = base.as_ptr() as *mut ffi::PyTypeObject;
    // SAFETY: GIL held; probe classes and BaseException are live type objects.
    let (probe_slot, slot_new, probe_read, base_read) = unsafe {
        (
            ffi::PyType_GetSlot(probe, ffi::Py_tp_new) as usize,
            ffi::PyType_GetSlot(slot_new_type, ffi::Py_tp_new) as usize,
            read_slot(probe, tp_new_off),
            read_slot(base_ptr, tp_new_off),
        )
    };
    if probe_slot == 0 || probe_read != probe_slot || base_read != probe_slot || slot_new == 0 {
        return Err(format!(
            "the tp_new slot offset {tp_new_off} does not match this interpreter"
        ));
    }
    // SAFETY: verified above to be BaseException's tp_new, a `newfunc`.
    let base_new: NewFunc = unsafe { std::mem::transmute::<usize, NewFunc>(base_read) };
    let skip: Vec<usize> = [
        py.get_type::<pyo3::exceptions::PyMemoryError>().as_ptr() as usize,
        py.get_type::<pyo3::exceptions::PyRecursionError>().as_ptr() as usize,
        probe as usize,
        slot_new_type as usize,
    ]
    .to_vec();
    let types =
        all_exception_types(py).map_err(|e| format!("cannot list exception classes: {e}"))?;
    let mut originals = HashMap::with_capacity(types.len());
    let hook_addr = exc_new as NewFunc as usize;
    for t in &types {
        let tp = t.as_ptr() as *mut ffi::PyTypeObject;
        if skip.contains(&(tp as usize)) {
            continue;
        }
        // SAFETY: GIL held, `tp` is a live type object, offset verified.
        let cur = unsafe { read_slot(tp, tp_new_off) };
        if cur == 0 || cur == slot_new || cur == hook_addr {
            continue;
        }
        // SAFETY: a non-null tp_new slot holds a `newfunc`.
        let f: NewFunc = unsafe { std::mem::transmute::<usize, NewFunc>(cur) };
        originals.insert(tp as usize, f);
    }
    // Only write once every original is recorded.
    for &tp in originals.keys() {
        // SAFETY: as above.
        unsafe { write_slot(tp as *mut ffi::PyTypeObject, tp_new_off, hook_addr) };
    }
    *hook = Some(Hook {
        originals,
        base_new,
    });
    ENABLED.store(true, Ordering::Release);
    Ok(())
}

/// Stops counting (the slots keep pointing at [`exc_new`], which keeps calling the originals).
pub fn disable() {
    ENABLED.store(false, Ordering::Release);
}

/// Finds the original constructor for `subtype`: its own, else its nearest hooked ancestor's.
fn original_for(subtype: *mut ffi::PyTypeObject) -> NewFunc {
    let mut guard = HOOK.lock();
    let Some(hook) = guard.as_mut() else {
        // Unreachable in practice: slots are only redirected after HOOK is set.
        return fallback_new;
    };
    if let Some(f) = hook.originals.get(&(subtype as usize)) {
        return *f;
    }
    // A class created after install inherited our slot: walk its bases (tp_base) through the
    // C API, which works for heap types on every version; static types were all recorded.
    let mut t = subtype;
    for _ in 0..64 {
        // SAFETY: GIL held; `t` is a live type object.
        let base = unsafe { ffi::PyType_GetSlot(t, ffi::Py_tp_base) } as *mut ffi::PyTypeObject;
        if base.is_null() {
            // SAFETY: GIL held. PyType_GetSlot may set an error on static types (3.8/3.9).
            unsafe { ffi::PyErr_Clear() };
            break;
        }
        if let Some(f) = hook.originals.get(&(base as usize)).copied() {
            if hook.originals.len() < 1_000_000 {
                hook.originals.insert(subtype as usize, f);
            }
            return f;
        }
        t = base;
    }
    hook.base_new
}

unsafe extern "C" fn fallback_new(
    t: *mut ffi::PyTypeObject,
    a: *mut ffi::PyObject,
    k: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: same contract as any newfunc: GIL held, valid arguments.
    unsafe { ffi::PyType_GenericNew(t, a, k) }
}

/// The `tp_new` installed on exception classes.
///
/// # Safety
/// Called by the interpreter as a `newfunc`, with the GIL held.
unsafe extern "C" fn exc_new(
    subtype: *mut ffi::PyTypeObject,
    args: *mut ffi::PyObject,
    kwds: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    let orig = original_for(subtype);
    // SAFETY: `orig` is the class's own constructor, called with the arguments we got.
    let obj = unsafe { orig(subtype, args, kwds) };
    if !obj.is_null() && ENABLED.load(Ordering::Acquire) && !IN_HOOK.with(|c| c.get()) {
        IN_HOOK.with(|c| c.set(true));
        // SAFETY: the GIL is held inside a newfunc.
        let py = unsafe { Python::assume_attached() };
        // Save any error the caller has pending, so our Python calls cannot consume it.
        let (mut et, mut ev, mut tb) = (
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        // SAFETY: GIL held; the three out-pointers are valid.
        unsafe { ffi::PyErr_Fetch(&mut et, &mut ev, &mut tb) };
        // SAFETY: obj is a new, valid reference we only borrow here.
        let exc = unsafe { Bound::from_borrowed_ptr(py, obj) };
        crate::exceptions::on_created(py, &exc);
        // SAFETY: GIL held; restores exactly what was fetched (and drops any error of ours).
        unsafe {
            ffi::PyErr_Clear();
            ffi::PyErr_Restore(et, ev, tb);
        }
        IN_HOOK.with(|c| c.set(false));
    }
    obj
}
