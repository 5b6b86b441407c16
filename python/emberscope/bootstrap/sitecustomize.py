"""emberscope bootstrap, imported by ``site`` in processes run by ``emberscope-run``.

``emberscope-run`` puts this directory first on ``PYTHONPATH``; the
interpreter's ``site`` module then imports this file as ``sitecustomize``.
It (1) makes sure the ``emberscope`` package is importable, (2) starts the
profiler when ``DD_PROFILING_ENABLED`` is true, and (3) runs the
application's own ``sitecustomize``, if any, exactly as ``site`` would have.
Nothing here raises into the application.
"""

import importlib
import os
import sys

_BOOTSTRAP_DIR = os.path.dirname(os.path.abspath(__file__))
_PACKAGE_DIR = os.path.dirname(_BOOTSTRAP_DIR)


def _stderr(message):
    try:
        if sys.stderr is not None:
            sys.stderr.write("emberscope: %s\n" % message)
    except Exception:
        pass


def _warn(message):
    try:
        from emberscope import _log

        _log.warn("%s", message)
    except Exception:
        _stderr(message)


def _same_dir(entry, directory):
    try:
        return os.path.realpath(entry or os.curdir) == os.path.realpath(directory)
    except Exception:
        return False


def _ensure_package_importable():
    """When only the bootstrap dir is on the path (e.g. another interpreter
    running under emberscope-run), load the package that contains this file
    without adding its whole site-packages to sys.path."""
    if "emberscope" in sys.modules:
        return True
    import importlib.util

    try:
        if importlib.util.find_spec("emberscope") is not None:
            return True
    except Exception:
        pass
    init = os.path.join(_PACKAGE_DIR, "__init__.py")
    if not os.path.isfile(init):
        return False
    spec = importlib.util.spec_from_file_location(
        "emberscope", init, submodule_search_locations=[_PACKAGE_DIR])
    module = importlib.util.module_from_spec(spec)
    sys.modules["emberscope"] = module
    try:
        spec.loader.exec_module(module)
    except Exception:
        sys.modules.pop("emberscope", None)
        raise
    return True


def _start_profiling():
    try:
        if not _ensure_package_importable():
            _warn("the emberscope package is not importable from %s; profiling disabled"
                  % _PACKAGE_DIR)
            return
        from emberscope import _config

        if _config.profiling_enabled():
            importlib.import_module("emberscope.profiling.auto")  # starts the profiler
    except Exception as exc:
        _warn("could not start profiling: %s" % (exc,))


def _chain_application_sitecustomize():
    """Import the sitecustomize that would have run without emberscope."""
    ours = sys.modules.get("sitecustomize")
    removed = [(i, p) for i, p in enumerate(sys.path) if _same_dir(p, _BOOTSTRAP_DIR)]
    for index, _ in reversed(removed):
        del sys.path[index]
    sys.modules.pop("sitecustomize", None)
    loaded = False
    try:
        importlib.import_module("sitecustomize")
        loaded = True
    except ImportError as exc:
        if getattr(exc, "name", None) != "sitecustomize":
            _report_like_site(exc)
    except Exception as exc:
        _report_like_site(exc)
    finally:
        for index, entry in removed:
            sys.path.insert(min(index, len(sys.path)), entry)
        if not loaded and ours is not None:
            sys.modules["sitecustomize"] = ours


def _report_like_site(exc):
    # Same behaviour as site.execsitecustomize() for a failing sitecustomize.
    try:
        if sys.flags.verbose:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        else:
            sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                             "%s: %s\n" % (exc.__class__.__name__, exc))
    except Exception:
        pass


try:
    _start_profiling()
finally:
    try:
        _chain_application_sitecustomize()
    except Exception as _exc:  # pragma: no cover - defensive
        _warn("could not run the application's sitecustomize: %s" % (_exc,))
