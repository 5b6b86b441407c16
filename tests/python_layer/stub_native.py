"""A recording stand-in for ``emberscope._native`` (the Rust extension).

Tests install it with ``sys.modules["emberscope._native"] = stub_native``
to exercise the Python lifecycle without a build. Each call is appended as a
JSON line (with the pid) to the file named by ``STUB_LOG``. ``STUB_START``
(JSON) is what ``start()`` returns; ``STUB_FAIL`` names a function that
raises.
"""

import json
import os
import threading

_lock = threading.Lock()
_running = False
_ticks = 0


def _record(_call, **fields):
    fields["call"] = _call
    fields["pid"] = os.getpid()
    fields["thread"] = threading.get_ident()
    path = os.environ.get("STUB_LOG")
    if path:
        with _lock:
            with open(path, "a") as handle:
                handle.write(json.dumps(fields, sort_keys=True) + "\n")
    if os.environ.get("STUB_FAIL") == _call:
        raise RuntimeError("stub failure in %s" % _call)


def start(config):
    global _running
    _record("start", config=config)
    _running = True
    return json.loads(os.environ.get("STUB_START") or '{"sampler": "native", "reason": null}')


def stop(flush, timeout_s):
    global _running
    _record("stop", flush=flush, timeout_s=timeout_s)
    _running = False


def is_running():
    return _running


def fork_prepare():
    _record("fork_prepare")


def fork_parent():
    _record("fork_parent")


def fork_child():
    _record("fork_child")


def set_thread_name(ident, name, native_id):
    _record("set_thread_name", ident=ident, name=name, native_id=native_id)


def fallback_tick():
    global _ticks
    _ticks += 1
    _record("fallback_tick", n=_ticks)
    return float(os.environ.get("STUB_TICK", "0.02"))


def on_raise(code, offset, exc):
    _record("on_raise", code=code.co_name, exc=type(exc).__name__)


def version():
    return "9.9.9-stub"


def read_log(path):
    calls = []
    if os.path.exists(path):
        with open(path) as handle:
            for line in handle:
                calls.append(json.loads(line))
    return calls
