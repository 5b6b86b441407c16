"""Guarded access to the Rust extension ``emberscope._native``.

The import is attempted once per process; when it fails (e.g. a source
checkout without a build, or an interpreter the wheel was not built for) the
reason is kept and profiling is disabled with a single warning.
"""

import threading

from emberscope import _log

_lock = threading.Lock()
_tried = False
_module = None
_reason = None


def _load():
    global _tried, _module, _reason
    with _lock:
        if _tried:
            return
        try:
            from emberscope import _native as module

            _module = module
        except Exception as exc:  # ImportError, OSError from the loader, ...
            _reason = "%s: %s" % (type(exc).__name__, exc) if str(exc) else type(exc).__name__
        _tried = True


def get(warn=True):
    """The native module, or None (after one warning when ``warn``)."""
    if not _tried:
        _load()
    if _module is None and warn:
        _log.warn_once("native extension unavailable: %s; profiling disabled", _reason)
    return _module


def unavailable_reason():
    if not _tried:
        _load()
    return _reason
