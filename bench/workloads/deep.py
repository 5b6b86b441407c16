"""500-deep recursion: 2 threads each recurse BENCH_DEPTH (default 500) frames and run the
planted CPU split of cpu.py at the bottom, so every sample is a >500-frame stack (beyond the
default 64-frame limit of emberscope and ddtrace, which keep the leaf end).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402
import cpu  # noqa: E402


def dive(depth, fn, *args):
    if depth > 0:
        return dive(depth - 1, fn, *args)
    return fn(*args)


def main():
    depth = _common.env_int("BENCH_DEPTH", 500)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), depth + 200))
    workers = 2
    total = max(workers, int(_common.env_int("BENCH_ROUNDS", 4000) * _common.scale()))
    rec = _common.Recorder()
    rec.start()
    _common.run_threads(workers, dive, depth, cpu.worker, rec, total // workers)
    rec.extra["depth"] = depth
    rec.finish()


if __name__ == "__main__":
    main()
