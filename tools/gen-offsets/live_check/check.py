"""Live check of emberscope-sampler in one interpreter (see run.sh).

usage: pythonX.Y check.py LIB.so [--stress SECONDS] [--bench ITERS]

1. discover() with the GIL held (ctypes.PyDLL).
2. Parks threads in known stacks (nested calls, generator, coroutine, 300-deep
   recursion, except handler, Python->C->Python, non-ASCII names/file/thread
   name, a raw _thread) and compares sample_all() with sys._current_frames():
   name (qualname on 3.11+), filename, line, thread id, native id, GIL flag,
   max_frames/omitted; and the calling thread via sample_tstate().
3. Bench: 4 threads parked ~30 frames deep, sample_all() timed from a
   GIL-released call.
4. Stress: a native sampler thread loops over sample_all() while threads
   churn (start/end, deep recursion, raise/catch, generators, exec).
Prints one JSON object; exit status 1 on any mismatch.
"""
import _thread
import asyncio
import ctypes
import json
import os
import random
import sys
import threading
import time

LIB = sys.argv[1]
STRESS = 0.0
BENCH = 2000
args = sys.argv[2:]
while args:
    if args[0] == "--stress":
        STRESS = float(args[1])
        args = args[2:]
    elif args[0] == "--bench":
        BENCH = int(args[1])
        args = args[2:]
    else:
        sys.exit("unknown argument %r" % args[0])

pylib = ctypes.PyDLL(LIB, mode=ctypes.RTLD_GLOBAL)  # GIL held during calls
clib = ctypes.CDLL(LIB, mode=ctypes.RTLD_GLOBAL)  # GIL released during calls
for lib in (pylib, clib):
    for fn in ("ember_init", "ember_probe", "ember_self", "ember_bench", "ember_stress_stop"):
        getattr(lib, fn).restype = ctypes.c_char_p
    pylib.ember_init.argtypes = [ctypes.c_uint32] * 3

NEW = sys.version_info >= (3, 11)
result = {"version": "%d.%d.%d" % sys.version_info[:3], "failures": []}


def fail(msg):
    result["failures"].append(msg)


def fname(code):
    return code.co_qualname if NEW else code.co_name


def expected_chain(frame):
    out = []
    while frame is not None:
        out.append((fname(frame.f_code), frame.f_code.co_filename, frame.f_lineno or 0))
        frame = frame.f_back
    return out


init = json.loads(pylib.ember_init(*sys.version_info[:3]).decode())
result["init"] = init
if not init["ok"]:
    print(json.dumps(result, ensure_ascii=False))
    sys.exit(1)

# ---------------------------------------------------------------- parking
release = threading.Event()
parked = threading.Semaphore(0)
info = {}  # ident -> dict(native=..., scenario=...)


def park():
    info.setdefault(threading.get_ident(), {})["native"] = threading.get_native_id()
    parked.release()
    release.wait()


def nested_a():
    nested_b()


def nested_b():
    nested_c()


def nested_c():
    park()


def gen_inner():
    park()
    yield 1


def gen_outer():
    yield from gen_inner()


def gen_consumer():
    for _ in gen_outer():
        pass


async def coro_leaf():
    park()


async def coro_mid():
    await coro_leaf()


def coro_thread():
    asyncio.run(coro_mid())


def recurse(n):
    if n == 0:
        park()
        return
    recurse(n - 1)


class Klass:
    def method(self):
        park()

    class Inner:
        @staticmethod
        def static():
            Klass().method()


def in_except():
    try:
        raise ValueError("x")
    except ValueError:
        park()


_parked_once = []


def park_once(x):
    if not _parked_once:
        _parked_once.append(1)
        park()
    return x


def via_c():
    return sorted([2, 1], key=lambda x: park_once(x))


def функция():
    park()


def café():
    функция()


exec("def \U0002000b():\n    café()\n", globals())
kind4 = globals()["\U0002000b"]

src = "def from_file():\n    x = 1\n    park()\n"
ns = {"park": park}
exec(compile(src, "/tmp/ファイル_ü.py", "exec"), ns)
from_file = ns["from_file"]

scenarios = [
    ("nested", nested_a, "worker-nested"),
    ("generator", gen_consumer, "worker-gen"),
    ("coroutine", coro_thread, "worker-coro"),
    ("recursion300", lambda: recurse(300), "worker-recurse"),
    ("qualname", Klass.Inner.static, "worker-qual"),
    ("except", in_except, "worker-except"),
    ("python-c-python", via_c, "worker-via-c"),
    ("nonascii", kind4, "поток-𠀋-café"),
    ("nonascii-file", from_file, "worker-file"),
]

threads = []
for name, fn, tname in scenarios:
    def body(fn=fn, name=name):
        fn()

    t = threading.Thread(target=body, name=tname)
    t.start()
    info.setdefault(t.ident, {})["scenario"] = name
    threads.append(t)


def raw_body():
    park()


raw_lock = threading.Lock()
with raw_lock:
    ident = _thread.start_new_thread(raw_body, ())
    info.setdefault(ident, {})["scenario"] = "_thread"

for _ in range(len(scenarios) + 1):
    parked.acquire()
time.sleep(0.3)


def compare(max_frames):
    cur = sys._current_frames()
    exp = {tid: expected_chain(f) for tid, f in cur.items() if tid in info}
    probe = json.loads(pylib.ember_probe(max_frames).decode())
    cur2 = sys._current_frames()
    exp2 = {tid: expected_chain(f) for tid, f in cur2.items() if tid in info}
    return exp, exp2, probe


checks = 0
exp, exp2, probe = compare(1000)
result["probe_stats"] = probe["stats"]
got = {s["thread_id"]: s for s in probe["stacks"]}
main_id = threading.get_ident()
if main_id not in got:
    fail("main thread missing from sample_all")
elif not got[main_id]["holds_gil"]:
    fail("main thread (holding the GIL) has holds_gil=false")
for tid, meta in info.items():
    sc = meta["scenario"]
    if exp.get(tid) != exp2.get(tid):
        fail("%s: thread moved during the probe" % sc)
        continue
    s = got.get(tid)
    if s is None:
        fail("%s: thread %d missing" % (sc, tid))
        continue
    frames = [(f[0], f[1], f[2]) for f in s["frames"]]
    want = exp[tid]
    checks += 1
    if frames != want:
        for i, (a, b) in enumerate(zip(frames, want)):
            if a != b:
                fail("%s: frame %d: got %r want %r (len got %d want %d)" % (sc, i, a, b, len(frames), len(want)))
                break
        else:
            fail("%s: length got %d want %d" % (sc, len(frames), len(want)))
    if s["omitted"] != 0:
        fail("%s: omitted %d with max_frames=1000" % (sc, s["omitted"]))
    checks += 1
    if meta.get("native") is not None and s["native_id"] != meta["native"]:
        fail("%s: native_id %r want %r" % (sc, s["native_id"], meta["native"]))
    checks += 1
    if s["holds_gil"]:
        fail("%s: parked thread reported holding the GIL" % sc)
    checks += 1
result["threads_checked"] = len(info)

# max_frames / omitted
_, _, probe10 = compare(10)
for s in probe10["stacks"]:
    tid = s["thread_id"]
    if tid in exp:
        checks += 1
        if len(s["frames"]) != min(10, len(exp[tid])) or s["omitted"] != max(0, len(exp[tid]) - 10):
            fail("max_frames=10: %s got %d frames + %d omitted, want %d total"
                 % (info[tid]["scenario"], len(s["frames"]), s["omitted"], len(exp[tid])))
        want_top = [tuple(x) for x in exp[tid][:10]]
        if [tuple(f[:3]) for f in s["frames"]] != want_top:
            fail("max_frames=10: %s top frames differ" % info[tid]["scenario"])

# the calling thread through sample_tstate
r, want_self = pylib.ember_self(1000), expected_chain(sys._getframe())
self_stack = json.loads(r.decode())
checks += 1
if self_stack is None:
    fail("sample_tstate(current) returned None")
else:
    frames = [tuple(x[:3]) for x in self_stack["frames"]]
    if frames != want_self:
        fail("self stack: got %r want %r" % (frames, want_self))
    if self_stack["native_id"] != threading.get_native_id():
        fail("self native_id %r want %r" % (self_stack["native_id"], threading.get_native_id()))
result["checks"] = checks

release.set()
for t in threads:
    t.join()
time.sleep(0.1)

# ---------------------------------------------------------------- bench
# N threads parked 32 frames deep (+ the calling thread, ~1 frame); sample_all
# timed from a GIL-released call.
result["bench_by_threads"] = {}
for nthreads in (1, 4, 16):
    release = threading.Event()
    parked = threading.Semaphore(0)
    bench_threads = []
    info = {}
    for i in range(nthreads):
        t = threading.Thread(target=lambda: recurse(24), name="bench-%d" % i)
        t.start()
        info.setdefault(t.ident, {})["scenario"] = "bench"
        bench_threads.append(t)
    for _ in bench_threads:
        parked.acquire()
    time.sleep(0.3)
    depths = [len(expected_chain(f)) for tid, f in sys._current_frames().items() if tid in info]
    res = json.loads(clib.ember_bench(BENCH, 128).decode())
    res["depths"] = sorted(set(depths))
    result["bench_by_threads"][nthreads] = res
    if nthreads == 4:
        result["bench"] = res
    release.set()
    for t in bench_threads:
        t.join()

# ---------------------------------------------------------------- stress
if STRESS > 0:
    stop = threading.Event()
    counters = {"threads_started": 0, "exceptions": 0, "execs": 0}

    def deep(n):
        return 0 if n == 0 else deep(n - 1) + 1

    def gen(n):
        for i in range(n):
            yield deep(i % 7)

    def churn_calls():
        r = random.Random(1)
        while not stop.is_set():
            deep(r.choice((5, 50, 200)))
            sum(gen(20))

    def churn_raise():
        while not stop.is_set():
            try:
                deep(10)
                raise KeyError("k")
            except KeyError:
                counters["exceptions"] += 1

    def churn_exec():
        i = 0
        while not stop.is_set():
            i += 1
            src = "def f_%d(n):\n    return n if n < 1 else f_%d(n - 1)\n" % (i, i)
            g = {}
            exec(compile(src, "<gen-%d>" % i, "exec"), g)
            g["f_%d" % i](30)
            counters["execs"] += 1

    def short_lived():
        deep(20)

    def churn_threads():
        while not stop.is_set():
            ts = [threading.Thread(target=short_lived) for _ in range(8)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            counters["threads_started"] += 8

    clib.ember_stress_start(128)
    workers = [threading.Thread(target=f) for f in (churn_calls, churn_calls, churn_raise, churn_exec, churn_threads, churn_threads)]
    for w in workers:
        w.start()
    time.sleep(STRESS)
    stop.set()
    for w in workers:
        w.join()
    result["stress"] = json.loads(clib.ember_stress_stop().decode())
    result["stress"].update(counters)

print(json.dumps(result, ensure_ascii=False))
sys.exit(1 if result["failures"] else 0)
