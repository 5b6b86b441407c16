"""Cost of the event collectors' stack capture of the calling thread, at a chosen stack depth
built of distinct functions (each frame its own code object, as in a real stack).

    python bench/capture_direct.py DEPTH N [lock|capture]

``lock`` (default): N lock acquire/release pairs with every operation sampled
(DD_PROFILING_CAPTURE_PCT=100; a pair records two events, each with one capture); prints ns
per pair, wall and thread CPU, best of 5 repetitions. Compare with CAPTURE_PCT tiny for the
unsampled cost, or EMBERSCOPE_CAPTURE_DIRECT=0 for the copy-based walk, or another build.
``capture``: N captures each way through ``_native._capture_compare`` (direct walk and
copy-based walk of the same stack, max_frames 64); prints ns per capture, best of 5.

Run it with emberscope on PYTHONPATH and DD_PROFILING_ENABLED=true
DD_PROFILING_LOCK_ENABLED=true DD_PROFILING_STACK_ENABLED=false. Prints one JSON line."""
import emberscope.profiling.auto  # noqa: F401  (first, as an application would)

import json
import sys
import threading
import time
import traceback


def lock_loop(n):
    lock = threading.Lock()
    acquire, release = lock.acquire, lock.release
    best_wall = best_cpu = float("inf")
    for _ in range(5):
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(n):
            acquire()
            release()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.thread_time() - c0)
    return {"wall_ns_per_pair": best_wall / n * 1e9, "cpu_ns_per_pair": best_cpu / n * 1e9}


def capture_loop(n):
    from emberscope import _native
    best = {}
    for _ in range(5):
        r = _native._capture_compare(64, n)
        if r is None:
            return {"error": "no capture walker"}
        for k in ("direct_ns", "copy_ns"):
            best[k] = min(best.get(k, float("inf")), r[k])
        best["direct_enabled"] = r["direct_enabled"]
        best["frames"] = len(r["direct"][0]) + r["direct"][1]
    return best


def chain(depth, leaf):
    """Calls leaf() under `depth` distinct functions f0 -> f1 -> ... -> leaf."""
    ns = {"leaf": leaf}
    src = ["def f%d(n):\n    return f%d(n)\n" % (i, i + 1) for i in range(depth)]
    src.append("def f%d(n):\n    return leaf(n)\n" % depth)
    exec(compile("".join(src), "<chain>", "exec"), ns)
    return ns["f0"]


def main():
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    mode = sys.argv[3] if len(sys.argv) > 3 else "lock"
    sys.setrecursionlimit(max(1000, depth + 200))
    base = len(traceback.extract_stack())
    # main, the chain's functions and the loop make `depth` frames in all.
    loop = lock_loop if mode == "lock" else capture_loop
    r = chain(max(0, depth - base - 2), loop)(n)
    r.update({"depth": depth, "n": n, "mode": mode})
    print(json.dumps(r))


if __name__ == "__main__":
    main()
