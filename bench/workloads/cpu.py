"""CPU-bound, several threads, planted CPU split.

BENCH_THREADS threads (default 4) share BENCH_ROUNDS x BENCH_SCALE rounds. Every round calls
planted_a (two kernel calls) and planted_b (one), so planted_a holds 2/3 of the CPU; the exact
truth is measured per call with time.thread_time (and perf_counter for wall).
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def kernel():
    fib(15)
    d = {}
    for i in range(100):
        d[i] = i * 3
    return sum(d.values())


def planted_a():
    kernel()
    kernel()


def planted_b():
    kernel()


def worker(rec, rounds):
    rec.register()
    ca = cb = wa = wb = 0.0
    for _ in range(rounds):
        t, w = time.thread_time(), time.perf_counter()
        planted_a()
        t2, w2 = time.thread_time(), time.perf_counter()
        planted_b()
        t3, w3 = time.thread_time(), time.perf_counter()
        ca += t2 - t
        cb += t3 - t2
        wa += w2 - w
        wb += w3 - w2
    rec.add("cpu", "a", ca)
    rec.add("cpu", "b", cb)
    rec.add("wall", "a", wa)
    rec.add("wall", "b", wb)


def main():
    threads = _common.env_int("BENCH_THREADS", 4)
    total = max(threads, int(_common.env_int("BENCH_ROUNDS", 9000) * _common.scale()))
    rec = _common.Recorder()
    rec.start()
    _common.run_threads(threads, worker, rec, total // threads)
    rec.extra["threads"] = threads
    rec.finish()


if __name__ == "__main__":
    main()
