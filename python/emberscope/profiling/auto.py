"""Importing this module starts a profiler configured from the environment.

``emberscope-run`` imports it when ``DD_PROFILING_ENABLED`` is true; an
application can also ``import emberscope.profiling.auto`` as its first
import. Forked children are restarted automatically; ``start_profiler()``
starts one explicitly (it does nothing when a profiler already runs).
"""

from emberscope import _log
from emberscope.profiling import profiler as _profiler_module

profiler = None


def start_profiler():
    """Start a Profiler() from the environment unless one already runs in
    this process. Returns the running Profiler (or None). Never raises."""
    global profiler
    try:
        active = _profiler_module.active_profiler()
        if active is not None:
            profiler = active
            return active
        candidate = _profiler_module.Profiler()
        if candidate.start():
            profiler = candidate
            return candidate
    except Exception as exc:
        _log.warn("could not start the profiler: %s", exc)
    return None


start_profiler()
