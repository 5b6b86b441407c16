"""multiprocessing with the fork or the spawn start method.

usage: mp_workers.py fork|spawn [child_cpu_seconds=2.5] [children=2]

The parent burns in parent_warmup(), then starts `children` Process objects
running mp_child_work(), which burns CPU and reports its pid through a queue.
Children of the fork method leave through os._exit (no atexit), so their
profiles come from the periodic export: run with a short upload interval.
"""

import multiprocessing
import os
import sys
import time

from _wl import emit


def parent_warmup(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def mp_child_work(seconds, queue):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    queue.put(os.getpid())
    return x


def main():
    method = sys.argv[1] if len(sys.argv) > 1 else "fork"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 2.5
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    ctx = multiprocessing.get_context(method)
    parent_warmup(0.5)
    queue = ctx.Queue()
    procs = [ctx.Process(target=mp_child_work, args=(seconds, queue), name="mp-child-%d" % i)
             for i in range(n)]
    start_ns = time.time_ns()
    for p in procs:
        p.start()
    reported = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(120)
    emit({
        "parent": os.getpid(),
        "method": method,
        "children": sorted(p.pid for p in procs),
        "reported": reported,
        "exitcodes": [p.exitcode for p in procs],
        "start_ns": start_ns,
    })


if __name__ == "__main__":
    main()
