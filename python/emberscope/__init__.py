"""emberscope: a continuous profiler for Python with a GIL-free native sampler.

Importing this package is cheap and never loads the native extension; the
version is resolved lazily (native module, then package metadata, then a
built-in fallback).
"""

_FALLBACK_VERSION = "0.1.0"
_version_cache = None


def _get_version():
    global _version_cache
    if _version_cache is not None:
        return _version_cache
    version = None
    try:
        from emberscope import _nativelib

        native = _nativelib.get(warn=False)
        if native is not None:
            version = str(native.version())
    except Exception:
        version = None
    if not version:
        try:
            from importlib import metadata as _metadata  # Python 3.8+

            version = _metadata.version("emberscope")
        except Exception:
            version = None
    _version_cache = version or _FALLBACK_VERSION
    return _version_cache


def __getattr__(name):  # PEP 562: computed on first access
    if name == "__version__":
        return _get_version()
    raise AttributeError("module 'emberscope' has no attribute %r" % (name,))


def __dir__():
    return sorted(list(globals()) + ["__version__"])
