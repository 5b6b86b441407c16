"""The conformance workload, run unchanged under ``ddtrace-run`` and ``emberscope-run``.

For WORKLOAD_SECONDS (default 6): the main thread burns CPU in a pure-Python
loop, takes a lock, allocates 16 KiB per round (keeping up to ~8 MiB alive, so that
allocation and live-heap samples are all but certain) and raises and catches one
exception per round; a second thread ("sleeper") sleeps in short naps.
"""

import os
import sys
import threading
import time

SECONDS = float(os.environ.get("WORKLOAD_SECONDS", "6"))


class WorkloadError(Exception):
    pass


def sleeper(stop):
    while not stop.is_set():
        time.sleep(0.05)


def fail(i):
    raise WorkloadError("failure %d" % i)


def burn(n):
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def main():
    stop = threading.Event()
    t = threading.Thread(target=sleeper, args=(stop,), name="sleeper")
    t.start()
    shared_lock = threading.Lock()
    keep = []
    deadline = time.monotonic() + SECONDS
    raised = 0
    rounds = 0
    while time.monotonic() < deadline:
        burn(20000)
        with shared_lock:
            keep.append(bytearray(16384))
            if len(keep) > 512:
                del keep[:256]
        rounds += 1
        try:
            fail(rounds)
        except WorkloadError:
            raised += 1
    stop.set()
    t.join()
    sys.stdout.write("workload done at %.3f: %d rounds, %d exceptions\n"
                     % (time.time(), rounds, raised))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
