"""The fallback sampler: a daemon Python thread that drives the native layer.

Used when the native GIL-free sampler cannot run (``DD_PROFILING_STACK_V2_ENABLED``
is false, or the native layer reports it cannot read this process). The
thread only paces the work: ``_native.fallback_tick()`` does one sampling round
(it calls ``sys._current_frames()`` itself) and returns the number of
seconds until the next one. Waiting on an Event makes stop immediate.
"""

import threading

from emberscope import _log

THREAD_NAME = "emberscope-fallback-sampler"
MIN_INTERVAL = 0.001  # never spin
MAX_INTERVAL = 60.0

_thread = None
_stop_event = None
_native = None


def _sanitize(interval):
    try:
        value = float(interval)
    except (TypeError, ValueError):
        return 0.01
    if value != value:  # NaN
        return 0.01
    return min(max(value, MIN_INTERVAL), MAX_INTERVAL)


def _run(native, stop_event):
    while not stop_event.is_set():
        try:
            interval = native.fallback_tick()
        except Exception as exc:
            _log.warn("fallback sampler stopped: %s", exc)
            return
        stop_event.wait(_sanitize(interval))


def start(native):
    """Start the sampler thread (no-op when it already runs)."""
    global _thread, _stop_event, _native
    _native = native
    if _thread is not None and _thread.is_alive():
        return _thread
    stop_event = threading.Event()
    thread = threading.Thread(target=_run, args=(native, stop_event), name=THREAD_NAME)
    thread.daemon = True
    thread.start()
    _thread, _stop_event = thread, stop_event
    return thread


def stop(timeout=1.0):
    """Stop the sampler thread and wait up to ``timeout`` seconds for it."""
    global _thread, _stop_event, _native
    thread, stop_event = _thread, _stop_event
    _thread = _stop_event = None
    _native = None
    if stop_event is not None:
        stop_event.set()
    if thread is not None and thread is not threading.current_thread() and thread.is_alive():
        try:
            thread.join(timeout)
        except Exception:
            pass


def restart_after_fork():
    """In a forked child the old thread no longer exists: start a new one."""
    global _thread, _stop_event
    native = _native
    _thread = _stop_event = None
    if native is not None:
        start(native)


def is_running():
    return _thread is not None and _thread.is_alive()
