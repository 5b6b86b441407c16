"""The pre-fork web workload: a Flask (WSGI) app served by gunicorn with 2 sync workers, driven
by wrk (or bench/lib/loadgen.py) on loopback. Same planted split as web_app.py: GET /a runs
planted_a (two kernel calls), GET /b planted_b (one), measured per request with thread_time.

gunicorn imports this module in each worker (no --preload), so every worker keeps its own
truth and prints it as one JSON line when it exits (atexit; the harness sums the lines). When
BENCH_READY_DIR is set, each worker also creates a file there named after its pid once the app
is loaded, so the harness can wait for every worker before it starts the load.

    python -m gunicorn wsgi_app:app --pythonpath bench/workloads -w 2 -b 127.0.0.1:PORT
"""
import atexit
import json
import os
import sys
import time

from flask import Flask, jsonify

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from _web import COUNT, TRUTH, handle  # noqa: E402

T_LOADED = time.perf_counter()
C_LOADED = time.process_time()

app = Flask(__name__)


@app.route("/a")
def a():
    return jsonify(route="a", n=handle("a"))


@app.route("/b")
def b():
    return jsonify(route="b", n=handle("b"))


@app.route("/health")
def health():
    return "ok"


@atexit.register
def _report():
    out = {"pid": os.getpid(), "t_main_epoch": _common.T_MAIN,
           "elapsed_s": time.perf_counter() - T_LOADED, "proc_cpu_s": time.process_time() - C_LOADED,
           "truth": {"cpu": dict(TRUTH)}, "requests": dict(COUNT)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


_ready = os.environ.get("BENCH_READY_DIR")
if _ready:
    open(os.path.join(_ready, str(os.getpid())), "w").close()
