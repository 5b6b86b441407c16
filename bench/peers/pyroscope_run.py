"""Run a Python script (or -m module) under pyroscope-io, the way its docs set it up:
pyroscope.configure(...) first, the application next, pyroscope.shutdown() (final upload) last.

    python pyroscope_run.py SCRIPT [ARGS...]      python pyroscope_run.py -m MODULE [ARGS...]

BENCH_SINK_URL is the loopback server answering its uploads (bench/peers/sink.py).
"""
import os
import runpy
import sys

import pyroscope


def main():
    pyroscope.configure(
        application_name="emberscope.bench",
        server_address=os.environ.get("BENCH_SINK_URL", "http://127.0.0.1:4040"),
        sample_rate=100,
    )
    try:
        if sys.argv[1] == "-m":
            sys.argv = sys.argv[2:]
            runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        else:
            sys.argv = sys.argv[1:]
            sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[0])))
            runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        pyroscope.shutdown()


if __name__ == "__main__":
    main()
