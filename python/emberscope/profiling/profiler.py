"""The Profiler object and the process-wide lifecycle (atexit, SIGTERM, fork).

All sampling, aggregation and export happen in the native extension; this
module configures it, keeps one profiler per process, tells it thread names,
restarts it in forked children and flushes it at exit. No method here raises
into the application: failures become one logged warning.
"""

import atexit
import os
import signal
import sys
import threading

from emberscope import _config
from emberscope import _log
from emberscope import _nativelib
from emberscope.profiling import _fallback
from emberscope.profiling import _locks
from emberscope.profiling import _monitoring
from emberscope.profiling import _threads

__all__ = ["Profiler", "active_profiler"]

_state_lock = threading.RLock()
_active = None  # the running Profiler of this process, if any
_process_hooks_installed = False


def active_profiler():
    """The Profiler currently running in this process, or None."""
    return _active


class Profiler(object):
    """A continuous profiler for the current process.

    Arguments left to ``None`` fall back to the environment (``DD_SERVICE``,
    ``DD_ENV``, ``DD_VERSION``, ``DD_PROFILING_TAGS`` + ``DD_TAGS``, the
    agent URL variables). ``tags`` replaces the tags from the environment.
    ``api_key`` (else ``DD_API_KEY``) is used for agentless uploads
    (``DD_PROFILING_AGENTLESS=true``); it is never logged. Any other keyword uses the names of
    ``Config.as_native_dict()``, e.g. ``output_pprof=``, ``upload_interval=``.

    Only one profiler runs per process; ``start()`` on a second one logs a
    warning and does nothing. Can be used as a context manager.
    """

    def __init__(self, service=None, env=None, version=None, tags=None, url=None,
                 api_key=None, **overrides):
        self._config = None
        self._native = None
        self._running = False
        self._start_info = {}
        self._fallback = False
        self._tool_id = None
        try:
            args = dict(overrides)
            args.update(service=service, env=env, version=version, tags=tags, url=url,
                        api_key=api_key)
            self._config = _config.from_env().with_overrides(args, origin="Profiler")
        except Exception as exc:
            _log.warn("could not configure the profiler: %s; profiling disabled", exc)

    # -- introspection -------------------------------------------------
    @property
    def config(self):
        """The effective :class:`emberscope._config.Config` (None if broken)."""
        return self._config

    @property
    def running(self):
        return self._running

    @property
    def sampler(self):
        """'native', 'fallback', 'off' or None (not started)."""
        return self._start_info.get("sampler") if self._running else None

    @property
    def start_info(self):
        """A copy of the dict returned by the native ``start``."""
        return dict(self._start_info)

    def __repr__(self):
        return "<emberscope Profiler running=%s sampler=%s>" % (self._running, self.sampler)

    # -- lifecycle -----------------------------------------------------
    def start(self):
        """Start profiling. Returns True when started; never raises."""
        try:
            return self._start()
        except Exception as exc:
            _log.warn("could not start the profiler: %s", exc)
            return False

    def stop(self, flush=True, timeout=None):
        """Stop profiling; with ``flush`` the last partial period is exported.
        ``timeout`` (seconds) bounds the native shutdown; by default it is
        the upload timeout (DD_PROFILING_API_TIMEOUT_MS). Never raises."""
        try:
            return self._stop(flush, timeout)
        except Exception as exc:
            _log.warn("error while stopping the profiler: %s", exc)
            return False

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.stop(flush=True)
        return False

    def _start(self):
        global _active
        config = self._config
        if config is None:
            return False
        with _state_lock:
            if _active is not None:
                if _active is self:
                    _log.warn("this profiler is already running; start() ignored")
                else:
                    _log.warn("a profiler is already running in this process; start() ignored")
                return False
            native = _nativelib.get()
            if native is None:
                return False
            _threads.install()
            try:
                settings = config.as_native_dict()
                settings["process"] = _process_info()
                info = native.start(settings)
            except Exception as exc:
                _log.warn("could not start the profiler: %s", exc)
                return False
            self._native = native
            self._running = True
            self._start_info = dict(info) if isinstance(info, dict) else {}
            _active = self

        _threads.enable(native)
        _threads.register_all()

        info = self._start_info
        sampler = info.get("sampler")
        if sampler == "fallback":
            _log.warn("native sampler unavailable (%s); using the fallback sampler",
                      info.get("reason") or "no reason given")
            try:
                _fallback.start(native)
                self._fallback = True
            except Exception as exc:
                _log.warn("could not start the fallback sampler: %s", exc)
        elif sampler == "off":
            _log.debug("stack sampling off: %s", info.get("reason"))

        if (config.exception and sys.version_info >= (3, 12)
                and info.get("exceptions") == "monitoring" and _monitoring.available()):
            try:
                self._tool_id = _monitoring.register(native.on_raise)
            except Exception as exc:
                _log.warn("could not enable exception sampling: %s", exc)

        # collectors (issue 5): the lock wrappers, when the native layer records lock events.
        if info.get("lock") == "on":
            self._locks = _locks.start(native)

        _install_process_hooks()
        _install_sigterm_handler()
        _log.debug("profiler started: %r", info)
        return True

    def _stop(self, flush, timeout):
        global _active
        with _state_lock:
            if not self._running:
                return False
            self._running = False
            if _active is self:
                _active = None
            native = self._native
        _threads.disable()
        if getattr(self, "_locks", False):  # collectors (issue 5)
            self._locks = False
            _locks.stop()
        if self._tool_id is not None:
            tool_id, self._tool_id = self._tool_id, None
            _monitoring.unregister(tool_id)
        if self._fallback:
            self._fallback = False
            _fallback.stop()
        if timeout is None:
            # Exit is never delayed by more than the upload timeout (the final profile is
            # encoded and sent within it); without a flush there is nothing to wait for.
            timeout = 1.0
            if flush and self._config is not None:
                timeout = max(0.1, self._config.api_timeout_ms / 1000.0)
        try:
            native.stop(bool(flush), float(timeout))
        finally:
            _restore_sigterm_handler()
        _log.debug("profiler stopped (flush=%s)", flush)
        return True


# -- process hooks ---------------------------------------------------------

def _atexit_stop():
    profiler = _active
    if profiler is not None:
        profiler.stop(flush=True)


def _fork_prepare():
    profiler = _active
    if profiler is None or not profiler._running:
        return
    try:
        profiler._native.fork_prepare()
    except Exception as exc:
        _log.warn("profiler fork preparation failed: %s", exc)


def _fork_parent():
    profiler = _active
    if profiler is None or not profiler._running:
        return
    try:
        profiler._native.fork_parent()
    except Exception as exc:
        _log.warn("profiler could not resume after fork: %s", exc)


def _fork_child():
    global _state_lock
    # Another thread may have held the lock at fork time: it never unlocks here.
    _state_lock = threading.RLock()
    profiler = _active
    if profiler is None or not profiler._running:
        return
    try:
        profiler._native.fork_child()
    except Exception as exc:
        _log.warn("profiler could not restart in the forked child: %s", exc)
        return
    if profiler._fallback:
        try:
            _fallback.restart_after_fork()
        except Exception as exc:
            _log.warn("could not restart the fallback sampler after fork: %s", exc)
    _threads.register_all()


def _install_process_hooks():
    global _process_hooks_installed
    if _process_hooks_installed:
        return
    _process_hooks_installed = True
    try:
        atexit.register(_atexit_stop)
    except Exception as exc:
        _log.warn("could not register the exit flush: %s", exc)
    register_at_fork = getattr(os, "register_at_fork", None)
    if register_at_fork is not None:
        try:
            register_at_fork(before=_fork_prepare, after_in_parent=_fork_parent,
                             after_in_child=_fork_child)
        except Exception as exc:
            _log.warn("could not register fork hooks: %s", exc)


def _on_sigterm(signum, frame):
    try:
        profiler = _active
        if profiler is not None:
            profiler.stop(flush=True)
    finally:
        # Die from the signal itself so the exit status is the application's.
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except Exception:
            pass
        os.kill(os.getpid(), signal.SIGTERM)


def _in_main_thread():
    try:
        return threading.current_thread() is threading.main_thread()
    except Exception:
        return False


def _install_sigterm_handler():
    """Flush on SIGTERM, but only if nobody handles SIGTERM already."""
    try:
        if not _in_main_thread():
            return
        if signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
            return
        signal.signal(signal.SIGTERM, _on_sigterm)
    except Exception as exc:
        _log.debug("SIGTERM handler not installed: %s", exc)


def _restore_sigterm_handler():
    try:
        if _in_main_thread() and signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    except Exception:
        pass


def _process_info():
    """Facts about this interpreter that the native exporter needs (code provenance, process
    tags); gathered here because they are cheap to ask Python and awkward to find otherwise."""
    info = {"argv": [], "orig_argv": [], "cwd": "", "site_packages": [], "stdlib_dir": "",
            "python_version": "%d.%d.%d" % tuple(sys.version_info[:3])}
    try:
        info["argv"] = [str(a) for a in sys.argv]
        info["orig_argv"] = [str(a) for a in getattr(sys, "orig_argv", [])]
        info["cwd"] = os.getcwd()
    except Exception:
        pass
    try:
        import site
        import sysconfig
        dirs = []
        for d in list(site.getsitepackages()) + [site.getusersitepackages()] + list(sys.path):
            d = os.path.abspath(d) if d else ""
            base = os.path.basename(d)
            if base in ("site-packages", "dist-packages") and os.path.isdir(d) and d not in dirs:
                dirs.append(d)
        info["site_packages"] = dirs
        info["stdlib_dir"] = sysconfig.get_paths().get("stdlib", "")
    except Exception:
        pass
    return info
