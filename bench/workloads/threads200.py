"""200 threads: BENCH_IDLE (default 198) threads parked at a depth of ~12 frames in
Event.wait, plus 2 CPU workers with the planted 2/3 : 1/3 split of cpu.py. Measures what the
idle crowd costs the working threads, and whether the CPU attribution survives it.
"""
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import cpu  # noqa: E402


def park(rec, depth, stop):
    if depth > 0:
        return park(rec, depth - 1, stop)
    rec.register()
    stop.wait()


def main():
    idle = _common.env_int("BENCH_IDLE", 198)
    workers = 2
    total = max(workers, int(_common.env_int("BENCH_ROUNDS", 8000) * _common.scale()))
    stop = threading.Event()
    rec = _common.Recorder()
    parked = [threading.Thread(target=park, args=(rec, 10, stop), name="idle-%d" % i) for i in range(idle)]
    for t in parked:
        t.start()
    rec.start()
    _common.run_threads(workers, cpu.worker, rec, total // workers)
    rec.extra["threads"] = idle + workers + 1
    rec.finish()
    stop.set()
    for t in parked:
        t.join()


if __name__ == "__main__":
    main()
