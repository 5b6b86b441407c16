"""Cost of the event collectors' stack capture of the calling thread, through the lock
collector: lock acquire/release pairs at a chosen stack depth with every operation sampled
(DD_PROFILING_CAPTURE_PCT=100; each pair records two events, each with one capture), against
the same loop with no event sampled (CAPTURE_PCT=0).

    python bench/capture_direct.py DEPTH PAIRS

Run it with emberscope on PYTHONPATH and DD_PROFILING_ENABLED=true
DD_PROFILING_LOCK_ENABLED=true DD_PROFILING_STACK_ENABLED=false; EMBERSCOPE_CAPTURE_DIRECT=0
keeps the copy-based walk. Prints one JSON line: ns per pair (wall and thread CPU, best of
5 repetitions)."""
import emberscope.profiling.auto  # noqa: F401  (first, as an application would)

import json
import sys
import threading
import time


def loop(lock, pairs):
    acquire, release = lock.acquire, lock.release
    best_wall = best_cpu = float("inf")
    for _ in range(5):
        w0, c0 = time.perf_counter(), time.thread_time()
        for _ in range(pairs):
            acquire()
            release()
        best_wall = min(best_wall, time.perf_counter() - w0)
        best_cpu = min(best_cpu, time.thread_time() - c0)
    return best_wall, best_cpu


def at_depth(n, lock, pairs):
    if n > 1:
        return at_depth(n - 1, lock, pairs)
    return loop(lock, pairs)


def main():
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    pairs = int(sys.argv[2]) if len(sys.argv) > 2 else 20000
    sys.setrecursionlimit(max(1000, depth + 200))
    lock = threading.Lock()
    base = len(__import__("traceback").extract_stack())
    wall, cpu = at_depth(depth - base - 2, lock, pairs)
    print(json.dumps({"depth": depth, "pairs": pairs, "wall_ns_per_pair": wall / pairs * 1e9,
                      "cpu_ns_per_pair": cpu / pairs * 1e9}))


if __name__ == "__main__":
    main()
