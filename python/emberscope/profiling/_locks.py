"""Lock profiling: thin wrappers around the threading and asyncio lock factories.

``threading.Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition`` and
``asyncio.Lock``, ``Semaphore``, ``BoundedSemaphore``, ``Condition`` are replaced while the
profiler runs. ``Lock`` and ``RLock``, the hot ones, become native wrapper objects
(``emberscope._native.ProfiledLock``/``ProfiledRLock``, see crates/pyext/src/lock_types.rs
and lock_methods.rs): no Python code of ours runs on their unsampled operations, which
call the real lock's C methods directly. The other wrappers are Python
subclasses whose every acquire asks the native layer whether to sample it (one call
returning 0 almost always); unsampled operations then just delegate to the real lock. A sampled
acquire's wait and the matching release's hold time are recorded by the native layer,
scaled so totals estimate all acquisitions.

Rules that keep the wrappers safe: nothing on an acquire/release path takes another lock,
and nothing calls back into arbitrary Python code. The only extra work is the native calls
and, once per lock on its first sampled acquire, finding the variable name the lock is bound
to (plain dict scans of the caller's namespaces). Locks created by the standard library's
own synchronisation modules (and by emberscope) are left unwrapped.
"""

import os
import sys
import threading

from emberscope import _log

__all__ = ["start", "stop", "installed"]

# Locks created from these top-level packages are not wrapped (as the reference does).
EXCLUDED_PACKAGES = frozenset((
    "emberscope", "ddtrace", "threading", "asyncio", "concurrent", "logging", "http",
    "importlib", "_weakrefset", "_threading_local",
))

_THIS_FILE = __file__[:-1] if __file__.endswith((".pyc", ".pyo")) else __file__

_get_ident = threading.get_ident


def _disabled_enter():
    return 0


_enter = _disabled_enter
_acquired = None
_released = None

_originals = {}
_asyncio_finder = None


def installed():
    """Whether the lock factories are currently replaced."""
    return bool(_originals)


# -- names -------------------------------------------------------------------

def _creation_site(depth):
    """``file:line`` of the frame ``depth`` levels above the caller, or None when that frame
    belongs to an excluded package (the lock is then not profiled)."""
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:
        return None
    try:
        module = frame.f_globals.get("__name__") or ""
    except Exception:
        module = ""
    if module.partition(".")[0] in EXCLUDED_PACKAGES:
        return None
    code = frame.f_code
    return "%s:%d" % (os.path.basename(code.co_filename), frame.f_lineno or 0)


def _user_frame():
    frame = sys._getframe(2)
    while frame is not None:
        code = frame.f_code
        if code.co_filename != _THIS_FILE:
            module = frame.f_globals.get("__name__") or ""
            if module.partition(".")[0] not in EXCLUDED_PACKAGES:
                return frame
        frame = frame.f_back
    return None


def _search(namespace, targets):
    try:
        for key, value in list(namespace.items()):
            for target in targets:
                if value is target:
                    return key
    except Exception:
        pass
    return None


def _name_of(obj):
    """``file:line:variable`` for ``obj`` (a wrapper), resolved once and cached. The variable
    is searched for in the acquiring frame's locals, its globals, then the attributes of its
    ``self``."""
    name = obj._es_name
    if name is not None:
        return name
    site = obj._es_site or "<unknown>:0"
    targets = [obj]
    owner = getattr(obj, "_es_owner", None)
    if owner is not None:
        owner = owner()
        if owner is not None:
            targets.append(owner)
    var = None
    try:
        frame = _user_frame()
        if frame is not None:
            f_locals = frame.f_locals
            var = _search(f_locals, targets) or _search(frame.f_globals, targets)
            if var is None:
                this = f_locals.get("self") if hasattr(f_locals, "get") else None
                attrs = getattr(this, "__dict__", None) if this is not None else None
                if isinstance(attrs, dict):
                    var = _search(attrs, targets)
    except Exception:
        var = None
    name = "%s:%s" % (site, var) if var else site
    obj._es_name = name
    return name


# -- threading ---------------------------------------------------------------

_NativeLock = None
_NativeRLock = None


def _native_classes(native, orig_lock, orig_rlock):
    """Python subclasses of the native wrappers. They add weak-reference support (which pyo3
    offers on abi3 from Python 3.9 only) and, as read-only properties reading the wrapped
    lock's attribute, every attribute of the real lock's type that the wrapper does not
    define itself (``_at_fork_reinit``, ``_recursion_count``, ...): ``hasattr`` answers as
    for the real lock, and the classes keep the default attribute lookup (no
    ``__getattr__``), which method calls such as ``self._lock.__enter__()`` depend on for
    their fast path. The native layer then puts its direct-call hot methods on them
    (``lock_install_fast``)."""
    class Lock(native.ProfiledLock):
        __slots__ = ("__weakref__",)

        def __reduce_ex__(self, protocol):
            # the real lock's own error (TypeError: cannot pickle '_thread.lock' object)
            return self._es_lock.__reduce_ex__(protocol)

    class RLock(native.ProfiledRLock):
        __slots__ = ("__weakref__",)

        def __reduce_ex__(self, protocol):
            return self._es_lock.__reduce_ex__(protocol)

    try:
        native.lock_install_fast(Lock, RLock)
    except Exception as exc:
        _log.warn("lock profiling: direct lock methods unavailable (%s)", exc)
    import operator
    for cls, real in ((Lock, orig_lock), (RLock, orig_rlock)):
        try:
            real_type = type(real())
        except Exception:
            continue
        for name in dir(real_type):
            if not hasattr(cls, name):
                setattr(cls, name, property(operator.attrgetter("_es_lock." + name)))
    Lock.__module__ = RLock.__module__ = __name__
    Lock.__qualname__ = Lock.__name__ = "ProfiledLock"
    RLock.__qualname__ = RLock.__name__ = "ProfiledRLock"
    return Lock, RLock


class _LockFactory(object):
    """The patched ``threading.Lock``/``RLock``: a callable object, not a function, so that,
    like the builtin it replaces, it stays unbound when stored as a class attribute
    (werkzeug's ``Map.lock_class = threading.Lock`` then ``self.lock_class()``): a function
    there would receive ``self`` and pass it on to ``_thread.allocate_lock``."""

    def __init__(self, orig, wrap):
        self._orig = orig
        self._wrap = wrap
        self.__doc__ = getattr(orig, "__doc__", None)

    def __call__(self, *args, **kwargs):
        lock = self._orig(*args, **kwargs)
        site = _creation_site(1)
        if site is None:
            return lock
        return self._wrap(lock, site)


def _make_threading(orig):
    orig_lock = orig["Lock"]
    orig_rlock = orig["RLock"]
    orig_condition = orig["Condition"]
    orig_semaphore = orig["Semaphore"]
    orig_bounded = orig["BoundedSemaphore"]

    Lock = _LockFactory(orig_lock, _NativeLock)
    RLock = _LockFactory(orig_rlock, _NativeRLock)

    class Condition(orig_condition):
        __doc__ = orig_condition.__doc__

        def __init__(self, lock=None):
            if lock is None:
                site = _creation_site(1)
                if site is not None:
                    import weakref
                    lock = _NativeRLock(orig_rlock(), site, weakref.ref(self))
            orig_condition.__init__(self, lock)

    class _SemaphoreMixin(object):
        def _es_setup(self):
            self._es_site = _creation_site(2)
            self._es_name = None
            self._es_held = {}

        def acquire(self, blocking=True, timeout=None):
            t = _enter() if self._es_site is not None else 0
            if not t:
                return super(_SemaphoreMixin, self).acquire(blocking, timeout)
            ok = super(_SemaphoreMixin, self).acquire(blocking, timeout)
            if ok:
                self._es_held[_get_ident()] = _acquired(t, self._es_name or _name_of(self))
            return ok

        def __enter__(self):
            return self.acquire()

        def release(self, *args, **kwargs):
            held = self._es_held
            t = held.pop(_get_ident(), 0) if held else 0
            super(_SemaphoreMixin, self).release(*args, **kwargs)
            if t:
                _released(t, self._es_name or _name_of(self))

        def __exit__(self, t, v, tb):
            self.release()

    class Semaphore(_SemaphoreMixin, orig_semaphore):
        __doc__ = orig_semaphore.__doc__

        def __init__(self, value=1):
            orig_semaphore.__init__(self, value)
            self._es_setup()

    class BoundedSemaphore(_SemaphoreMixin, orig_bounded):
        __doc__ = orig_bounded.__doc__

        def __init__(self, value=1):
            orig_bounded.__init__(self, value)
            self._es_setup()

    for cls, base in ((Condition, orig_condition), (Semaphore, orig_semaphore),
                      (BoundedSemaphore, orig_bounded)):
        cls.__name__ = base.__name__
        cls.__qualname__ = base.__qualname__
        cls.__module__ = base.__module__
    return {"Lock": Lock, "RLock": RLock, "Condition": Condition, "Semaphore": Semaphore,
            "BoundedSemaphore": BoundedSemaphore}


# -- asyncio -----------------------------------------------------------------

def _current_task_key():
    try:
        import asyncio
        task = asyncio.current_task()
    except Exception:
        task = None
    return id(task) if task is not None else _get_ident()


def _make_asyncio(locks):
    orig_lock = locks.Lock
    orig_condition = locks.Condition
    orig_semaphore = locks.Semaphore
    orig_bounded = locks.BoundedSemaphore

    class Lock(orig_lock):
        __doc__ = orig_lock.__doc__

        def __init__(self, *args, **kwargs):
            orig_lock.__init__(self, *args, **kwargs)
            self._es_site = _creation_site(1)
            self._es_name = None
            self._es_held = 0
            self._es_owner = None

        async def acquire(self):
            t = _enter() if self._es_site is not None else 0
            if not t:
                return await orig_lock.acquire(self)
            r = await orig_lock.acquire(self)
            self._es_held = _acquired(t, self._es_name or _name_of(self))
            return r

        def release(self):
            t = self._es_held
            if t:
                self._es_held = 0
                orig_lock.release(self)
                _released(t, self._es_name or _name_of(self))
            else:
                orig_lock.release(self)

    class Condition(orig_condition):
        __doc__ = orig_condition.__doc__

        def __init__(self, lock=None, *args, **kwargs):
            orig_condition.__init__(self, lock, *args, **kwargs)
            own = getattr(self, "_lock", None)
            if lock is None and isinstance(own, Lock) and own._es_site is None:
                # The default lock (made by asyncio.locks, so not profiled by itself) is
                # named after the Condition's creation site and variable.
                site = _creation_site(1)
                if site is not None:
                    import weakref
                    own._es_site = site
                    own._es_owner = weakref.ref(self)

    class _SemaphoreMixin(object):
        def _es_setup(self):
            self._es_site = _creation_site(2)
            self._es_name = None
            self._es_held = {}

        async def acquire(self):
            t = _enter() if self._es_site is not None else 0
            if not t:
                return await super(_SemaphoreMixin, self).acquire()
            r = await super(_SemaphoreMixin, self).acquire()
            self._es_held[_current_task_key()] = _acquired(t, self._es_name or _name_of(self))
            return r

        def release(self):
            held = self._es_held
            t = held.pop(_current_task_key(), 0) if held else 0
            super(_SemaphoreMixin, self).release()
            if t:
                _released(t, self._es_name or _name_of(self))

    class Semaphore(_SemaphoreMixin, orig_semaphore):
        __doc__ = orig_semaphore.__doc__

        def __init__(self, value=1, *args, **kwargs):
            orig_semaphore.__init__(self, value, *args, **kwargs)
            self._es_setup()

    class BoundedSemaphore(_SemaphoreMixin, orig_bounded):
        __doc__ = orig_bounded.__doc__

        def __init__(self, value=1, *args, **kwargs):
            orig_bounded.__init__(self, value, *args, **kwargs)
            self._es_setup()

    for cls, base in ((Lock, orig_lock), (Condition, orig_condition),
                      (Semaphore, orig_semaphore), (BoundedSemaphore, orig_bounded)):
        cls.__name__ = base.__name__
        cls.__qualname__ = base.__qualname__
        cls.__module__ = base.__module__
    return {"Lock": Lock, "Condition": Condition, "Semaphore": Semaphore,
            "BoundedSemaphore": BoundedSemaphore}


def _patch(module, replacements):
    for attr, new in replacements.items():
        key = (module.__name__, attr)
        if key not in _originals:
            _originals[key] = (module, getattr(module, attr))
        setattr(module, attr, new)


def _patch_asyncio_locks(locks):
    if ("asyncio.locks", "Lock") in _originals:
        return
    replacements = _make_asyncio(locks)
    _patch(locks, replacements)
    asyncio = sys.modules.get("asyncio")
    if asyncio is not None and hasattr(asyncio, "Lock"):
        _patch(asyncio, replacements)


class _PatchingLoader(object):
    """Runs the real loader of ``asyncio.locks``, then replaces its classes (before
    ``asyncio/__init__`` re-exports them)."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            if _originals:
                _patch_asyncio_locks(module)
        except Exception as exc:
            _log.warn("could not profile asyncio locks: %s", exc)

    def __getattr__(self, name):
        return getattr(self._loader, name)


class _AsyncioFinder(object):
    def find_spec(self, name, path=None, target=None):
        if name != "asyncio.locks":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader)
                return spec
        return None

    def invalidate_caches(self):
        pass


# -- lifecycle ---------------------------------------------------------------

def start(native):
    """Replaces the lock factories. Returns True on success; never raises."""
    global _enter, _acquired, _released, _asyncio_finder, _NativeLock, _NativeRLock
    try:
        if _originals:
            return True
        _enter = native.lock_enter
        _acquired = native.lock_acquired
        _released = native.lock_released
        names = ("Lock", "RLock", "Condition", "Semaphore", "BoundedSemaphore")
        orig = dict((n, getattr(threading, n)) for n in names)
        if _NativeLock is None:
            _NativeLock, _NativeRLock = _native_classes(native, orig["Lock"], orig["RLock"])
        native.lock_set_namer(_name_of)
        _patch(threading, _make_threading(orig))
        locks = sys.modules.get("asyncio.locks")
        if locks is not None:
            _patch_asyncio_locks(locks)
        else:
            _asyncio_finder = _AsyncioFinder()
            sys.meta_path.insert(0, _asyncio_finder)
        return True
    except Exception as exc:
        _log.warn("lock profiling unavailable: %s", exc)
        try:
            stop()
        except Exception:
            pass
        return False


def stop():
    """Puts the original factories back. Locks created meanwhile keep working (and stop
    recording: the native layer samples nothing once the session ends)."""
    global _asyncio_finder
    finder, _asyncio_finder = _asyncio_finder, None
    if finder is not None:
        try:
            sys.meta_path.remove(finder)
        except ValueError:
            pass
    for (modname, attr), (module, value) in list(_originals.items()):
        try:
            setattr(module, attr, value)
        except Exception:
            pass
    _originals.clear()
