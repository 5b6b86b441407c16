"""A steady CPU workload in a few threads (files, tiling, timeline, config).

usage: steady.py [seconds=3] [threads=2]

Threads "steady-<i>" and the main thread each burn CPU in steady_work()
for `seconds` of wall time.
"""

import sys
import threading
import time

from _wl import code_name, emit, thread_info


def steady_work(seconds, out):
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        for i in range(2000):
            x += i
    out.update(thread_info())
    out["cpu_total"] = time.thread_time()
    return x


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 3.0
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    start_ns = time.time_ns()
    results = [{} for _ in range(n + 1)]
    threads = [threading.Thread(target=steady_work, args=(seconds, results[i]),
                                name="steady-%d" % i) for i in range(n)]
    for t in threads:
        t.start()
    steady_work(seconds, results[n])
    for t in threads:
        t.join()
    emit({
        "start_ns": start_ns,
        "end_ns": time.time_ns(),
        "threads": results,
        "names": {"work": code_name(steady_work)},
        "file": __file__,
        "exit_monotonic": time.monotonic(),
    })


if __name__ == "__main__":
    main()
