"""The web workload: a Starlette (ASGI) app served by uvicorn, driven by wrk (or bench/lib/
loadgen.py) on loopback. GET /a runs planted_a (two kernel calls), GET /b planted_b (one);
the load generator alternates them, so planted_a holds ~2/3 of the request CPU, measured per
request with thread_time. The truth is printed as one JSON line at shutdown (lifespan).

    python -m uvicorn web_app:app --app-dir bench/workloads --port PORT --no-access-log
"""
import contextlib
import json
import os
import sys
import time

from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
from _web import COUNT, TRUTH, handle  # noqa: E402


async def a(request):
    return JSONResponse({"route": "a", "n": handle("a")})


async def b(request):
    return JSONResponse({"route": "b", "n": handle("b")})


async def health(request):
    return PlainTextResponse("ok")


@contextlib.asynccontextmanager
async def lifespan(app):
    t0, c0 = time.perf_counter(), time.process_time()
    yield
    out = {"t_main_epoch": _common.T_MAIN, "elapsed_s": time.perf_counter() - t0,
           "proc_cpu_s": time.process_time() - c0, "truth": {"cpu": dict(TRUTH)},
           "requests": dict(COUNT)}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


app = Starlette(routes=[Route("/a", a), Route("/b", b), Route("/health", health)], lifespan=lifespan)
