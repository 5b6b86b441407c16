"""Tell the native sampler the names of Python threads.

The native sampler never takes the GIL, so it cannot read ``Thread.name``
itself; Python pushes (ident, name, native id) triples to it: for every
existing thread when profiling starts (and again in a forked child), from
each new thread just before it runs its target, and whenever a thread is
renamed. The patches are installed once per process and stay in place; they
do nothing while no profiler is running.
"""

import threading

from emberscope import _log

_native = None  # set while a profiler runs; the patches push names only then
_installed = False
_orig_bootstrap_inner = None
_orig_set_native_id = None
_orig_name_property = None
_get_native_id = getattr(threading, "get_native_id", None)


def _push(ident, name, native_id):
    native = _native
    if native is None or ident is None:
        return
    try:
        native.set_thread_name(int(ident), str(name), None if native_id is None else int(native_id))
    except Exception as exc:
        _log.warn_once("could not register thread names with the native sampler: %s", exc)


def _thread_native_id(thread):
    try:
        return getattr(thread, "native_id", None)
    except Exception:
        return None


def _announce_current(thread):
    """Called in the new thread itself, before its target runs."""
    if _native is None:
        return
    try:
        ident = threading.get_ident()
        native_id = _get_native_id() if _get_native_id is not None else None
        _push(ident, thread.name, native_id)
    except Exception as exc:
        _log.warn_once("could not register a new thread with the native sampler: %s", exc)


def _emberscope_bootstrap_inner(self):
    _announce_current(self)
    return _orig_bootstrap_inner(self)


def _emberscope_set_native_id(self):
    # Runs in the new thread itself, before its target, and returns: unlike a wrapper around
    # _bootstrap_inner it leaves no extra frame under every thread's stack in the profiles.
    _orig_set_native_id(self)
    _announce_current(self)


def _emberscope_set_name(self, name):
    _orig_name_property.fset(self, name)
    if _native is None:
        return
    try:
        ident = self.ident
        if ident is not None:
            _push(ident, _orig_name_property.fget(self), _thread_native_id(self))
    except Exception as exc:
        _log.warn_once("could not push a thread rename to the native sampler: %s", exc)


def install():
    """Patch threading.Thread once per process (idempotent)."""
    global _installed, _orig_bootstrap_inner, _orig_set_native_id, _orig_name_property
    if _installed:
        return
    _installed = True
    try:
        set_native = threading.Thread.__dict__.get("_set_native_id")
        current = threading.Thread.__dict__.get("_bootstrap_inner")
        if set_native is not None and not getattr(set_native, "_emberscope_patch", False):
            _orig_set_native_id = set_native
            _emberscope_set_native_id._emberscope_patch = True
            threading.Thread._set_native_id = _emberscope_set_native_id
        elif current is not None and not getattr(current, "_emberscope_patch", False):
            _orig_bootstrap_inner = current
            _emberscope_bootstrap_inner._emberscope_patch = True
            threading.Thread._bootstrap_inner = _emberscope_bootstrap_inner
    except Exception as exc:
        _log.warn("could not patch threading.Thread: %s", exc)
    try:
        prop = threading.Thread.__dict__.get("name")
        if (isinstance(prop, property) and prop.fset is not None
                and not getattr(prop.fset, "_emberscope_patch", False)):
            _orig_name_property = prop
            _emberscope_set_name._emberscope_patch = True
            threading.Thread.name = property(prop.fget, _emberscope_set_name, prop.fdel, prop.__doc__)
    except Exception as exc:
        _log.warn("could not patch threading.Thread.name: %s", exc)


def register_all():
    """Push the name of every live thread (main thread included)."""
    if _native is None:
        return
    try:
        threads = list(threading.enumerate())
    except Exception:
        threads = []
    try:
        main = threading.main_thread()
        if main not in threads:
            threads.append(main)
        current = threading.current_thread()
        if current not in threads:
            threads.append(current)
    except Exception:
        pass
    try:
        current = threading.current_thread()
    except Exception:
        current = None
    for thread in threads:
        try:
            if thread is current and _get_native_id is not None:
                # Ask the kernel: after a fork, 3.8's threading keeps the parent's native_id.
                native_id = _get_native_id()
            else:
                native_id = _thread_native_id(thread)
            _push(thread.ident, thread.name, native_id)
        except Exception as exc:
            _log.warn_once("could not register thread names with the native sampler: %s", exc)


def enable(native):
    """Start pushing names to ``native`` (patches installed if needed)."""
    global _native
    install()
    _native = native


def disable():
    global _native
    _native = None
