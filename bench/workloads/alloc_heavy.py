"""Allocation-heavy pure Python, shaped like the reference's measurement (§5 "bench.py alloc"):
each round builds a 2000-string list and a 1000-entry dict, and keeps the last 50 lists (a
bounded live heap). Prints {"main_cpu_s", "process_cpu_s", "wall_s", "rounds"} for the
measured section only."""
import json
import os
import time

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "6000"))


def make_list(i):
    return [str(i + j) for j in range(2000)]


def make_dict(i):
    return {j: (i, j) for j in range(1000)}


def main():
    kept = []
    t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    for i in range(ROUNDS):
        kept.append(make_list(i))
        make_dict(i)
        if len(kept) > 50:
            kept.pop(0)
    t1, c1, p1 = time.perf_counter(), time.thread_time(), time.process_time()
    print(json.dumps({"main_cpu_s": c1 - c0, "process_cpu_s": p1 - p0, "wall_s": t1 - t0,
                      "rounds": ROUNDS}))


main()
