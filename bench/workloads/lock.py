"""Lock-heavy: BENCH_THREADS threads (default 8) hammer a few shared threading.Lock objects.

Every round, planted_a takes lock_a twice with a little work inside and planted_b takes lock_b
once, so planted_a does 2/3 of the acquisitions and about 2/3 of the CPU (thread_time).
"""
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

lock_a = threading.Lock()
lock_b = threading.Lock()
counter = [0]


def critical(lock):
    for _ in range(20):
        with lock:
            counter[0] += 1
            sum(range(30))


def planted_a():
    critical(lock_a)
    critical(lock_a)


def planted_b():
    critical(lock_b)


def worker(rec, rounds):
    rec.register()
    ca = cb = 0.0
    for _ in range(rounds):
        t = time.thread_time()
        planted_a()
        t2 = time.thread_time()
        planted_b()
        t3 = time.thread_time()
        ca += t2 - t
        cb += t3 - t2
    rec.add("cpu", "a", ca)
    rec.add("cpu", "b", cb)


def main():
    threads = _common.env_int("BENCH_THREADS", 8)
    total = max(threads, int(_common.env_int("BENCH_ROUNDS", 50000) * _common.scale()))
    rec = _common.Recorder()
    rec.start()
    _common.run_threads(threads, worker, rec, total // threads)
    rec.extra["acquisitions"] = counter[0]
    rec.finish()


if __name__ == "__main__":
    main()
