"""Small helpers shared by the workload scripts (Python 3.8+, stdlib only).

Every workload prints its truth as one JSON object on the last line of stdout.
CPU-burning loops are written inline in the functions whose names the tests
look for, so the sampled leaf frame is that function (no helper frames).
"""

import json
import os
import sys
import threading


def emit(obj):
    obj.setdefault("pid", os.getpid())
    obj.setdefault("python", "%d.%d" % sys.version_info[:2])
    sys.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
    sys.stdout.flush()


def thread_info(thread=None):
    t = thread or threading.current_thread()
    return {"name": t.name, "ident": t.ident, "native_id": getattr(t, "native_id", None)}


def code_name(func):
    """The name the profiler must report: co_qualname on 3.11+, co_name before."""
    code = getattr(func, "__code__", func)
    return getattr(code, "co_qualname", code.co_name)


def code_lines(func):
    """(first line, last line) of a function's source."""
    import inspect

    lines, first = inspect.getsourcelines(func)
    return first, first + len(lines) - 1


def marker_line(marker, filename=None):
    """Line number of the line containing ``# MARK:<marker>`` in the caller's file."""
    if filename is None:
        filename = sys._getframe(1).f_code.co_filename
    tag = "# MARK:" + marker
    with open(filename, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith(tag):
                return i
    raise LookupError(tag)


def frame_depth():
    """Number of Python frames on the caller's stack (the caller included)."""
    f = sys._getframe(1)
    n = 0
    while f is not None:
        n += 1
        f = f.f_back
    return n
