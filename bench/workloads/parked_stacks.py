"""N threads parked at a known depth: the per-stack cost workload.

Each thread recurses to BENCH_DEPTH frames and sleeps there, so every sample walks exactly
that many frames. Runs BENCH_SECONDS.
"""
import os
import threading
import time


def dive(depth, stop):
    if depth <= 1:
        stop.wait()
        return
    dive(depth - 1, stop)


def main():
    threads = int(os.environ.get("BENCH_THREADS", "10"))
    depth = int(os.environ.get("BENCH_DEPTH", "30"))
    seconds = float(os.environ.get("BENCH_SECONDS", "5"))
    stop = threading.Event()
    ts = [threading.Thread(target=dive, args=(depth - 3, stop)) for _ in range(threads)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join()


if __name__ == "__main__":
    main()
