"""Allocation-heavy, several threads, planted allocation split.

Each kernel call makes BENCH_GROUPS groups of str (32-511 chars) + bytearray (64-4063 B) + dict
+ list + tuple, keeps every 50th group for a while (a bounded retained heap) and then does
BENCH_COMPUTE fib(12) calls of pure computation. planted_a calls the kernel twice, planted_b
once, so planted_a allocates 2/3 of the bytes (counted exactly with sys.getsizeof) and uses
about 2/3 of the CPU (measured with thread_time). Varying BENCH_GROUPS against BENCH_COMPUTE
gives the allocation-rate sweep.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

getsizeof = sys.getsizeof


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def kernel(groups, compute, keep):
    nbytes = 0
    for i in range(groups):
        s = "x" * (32 + (i * 37) % 480)
        b = bytearray(64 + (i * 53) % 4000)
        d = {"s": s, "b": b, "i": i}
        l = [s, b, d, i]
        t = (l, d)
        nbytes += getsizeof(s) + getsizeof(b) + getsizeof(d) + getsizeof(l) + getsizeof(t)
        if i % 50 == 0:
            keep.append(t)
    if len(keep) > 2000:
        del keep[:1000]
    for _ in range(compute):
        fib(12)
    return nbytes


def planted_a(groups, compute, keep):
    return kernel(groups, compute, keep) + kernel(groups, compute, keep)


def planted_b(groups, compute, keep):
    return kernel(groups, compute, keep)


def worker(rec, rounds, groups, compute):
    rec.register()
    keep = []
    ca = cb = ba = bb = 0.0
    for _ in range(rounds):
        t = time.thread_time()
        ba += planted_a(groups, compute, keep)
        t2 = time.thread_time()
        bb += planted_b(groups, compute, keep)
        t3 = time.thread_time()
        ca += t2 - t
        cb += t3 - t2
    rec.add("cpu", "a", ca)
    rec.add("cpu", "b", cb)
    rec.add("alloc", "a", ba)
    rec.add("alloc", "b", bb)


def main():
    threads = _common.env_int("BENCH_THREADS", 4)
    groups = _common.env_int("BENCH_GROUPS", 400)
    compute = _common.env_int("BENCH_COMPUTE", 0)
    total = max(threads, int(_common.env_int("BENCH_ROUNDS", 2000) * _common.scale()))
    rec = _common.Recorder()
    rec.start()
    _common.run_threads(threads, worker, rec, total // threads, groups, compute)
    truth = rec.truth.get("alloc", {})
    rec.extra["alloc_bytes"] = truth.get("a", 0) + truth.get("b", 0)
    rec.extra["groups"] = groups
    rec.finish()


if __name__ == "__main__":
    main()
