"""CPU split: in each of N threads, burn_a burns twice the CPU of burn_b.

usage: cpu_split.py [seconds=3] [threads=3]

Truth (measured with time.thread_time around every call): CPU seconds spent
in burn_a and burn_b per thread, each thread's total CPU, its ident/native id.
The two functions run the same loop body; burn_a gets twice the iterations.
"""

import random
import sys
import threading
import time

from _wl import code_lines, code_name, emit, thread_info

UNIT = 20000


def burn_a(n):
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


def burn_b(n):
    x = 0
    for i in range(n):
        x += i * i % 7
    return x


def worker(seconds, seed, out):
    # Random chunk sizes: no fixed period for the sampler or the GIL's switch
    # interval to lock onto.
    rnd = random.Random(seed)
    cpu_a = cpu_b = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        unit = rnd.randint(UNIT // 4, UNIT * 2)
        t0 = time.thread_time()
        burn_a(2 * unit)
        t1 = time.thread_time()
        burn_b(unit)
        t2 = time.thread_time()
        cpu_a += t1 - t0
        cpu_b += t2 - t1
    out.update(thread_info())
    out["cpu_a"] = cpu_a
    out["cpu_b"] = cpu_b
    out["cpu_total"] = time.thread_time()


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    nthreads = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    results = [{} for _ in range(nthreads)]
    threads = [threading.Thread(target=worker, args=(seconds, i, results[i]), name="cpu-worker-%d" % i)
               for i in range(nthreads)]
    start_ns = time.time_ns()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit({
        "start_ns": start_ns,
        "end_ns": time.time_ns(),
        "threads": results,
        "main": thread_info(),
        "names": {"a": code_name(burn_a), "b": code_name(burn_b)},
        "lines": {"a": code_lines(burn_a), "b": code_lines(burn_b)},
        "file": __file__,
    })


if __name__ == "__main__":
    main()
