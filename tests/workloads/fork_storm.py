"""Many forks while the profiler's threads are busy (fork safety).

usage: fork_storm.py [forks=30]

Three background threads burn CPU and sleep in short slices, so the sampler
is always sampling and the profiler's threads are parked in timed waits at
random moments when the main thread forks. Each child runs threads of its own
for ~0.15 s (long enough for its new sampler and scheduler to wait, time out
and export), then leaves with sys.exit(0) or os._exit(0) in turn. The truth
is every child's wait status: anything but 0 is a crash or a hang cut short.
"""

import os
import sys
import threading
import time

from _wl import emit

STOP = threading.Event()


def busy(slice_s):
    while not STOP.is_set():
        end = time.thread_time() + slice_s
        x = 0
        while time.thread_time() < end:
            x += 1
        time.sleep(slice_s)


def child_life(i):
    ts = [threading.Thread(target=lambda: time.sleep(0.05)) for _ in range(3)]
    for t in ts:
        t.start()
    end = time.monotonic() + 0.15
    x = 0
    while time.monotonic() < end:
        x += 1
    for t in ts:
        t.join()
    if i % 2:
        os._exit(0)
    sys.exit(0)


def main():
    forks = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    threads = [threading.Thread(target=busy, args=(s,), daemon=True)
               for s in (0.001, 0.003, 0.007)]
    for t in threads:
        t.start()
    statuses = []
    for i in range(forks):
        time.sleep(0.01 * (i % 4))
        pid = os.fork()
        if pid == 0:
            child_life(i)
        _, status = os.waitpid(pid, 0)
        statuses.append(status)
    STOP.set()
    emit({"statuses": statuses, "forks": forks})


if __name__ == "__main__":
    main()
