"""Uses the Python API directly (no emberscope-run).

usage: api_app.py twice|context|stop|auto

  twice    Profiler(...).start() twice: the second start must warn and be ignored
  context  `with Profiler(...):` around api_work(); after_stop_work() runs after it
  stop     start(), api_work(), stop(flush=True), then after_stop_work()
  auto     `import emberscope.profiling.auto`, then api_work()
The output prefix comes from DD_PROFILING_OUTPUT_PPROF. Markers on stderr
("MARK:<name>") delimit the second start. The truth reports how many profile
files existed right after the profiler stopped.
"""

import glob
import os
import sys
import time

from _wl import code_name, emit


def api_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def after_stop_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def mark(name):
    sys.stderr.write("MARK:%s\n" % name)
    sys.stderr.flush()


def count_files():
    prefix = os.environ["DD_PROFILING_OUTPUT_PPROF"]
    return len(glob.glob(glob.escape(prefix) + ".%d.*.pprof" % os.getpid()))


def main():
    mode = sys.argv[1]
    truth = {"mode": mode, "names": {"work": code_name(api_work),
                                     "after": code_name(after_stop_work)}}
    if mode == "auto":
        import emberscope.profiling.auto  # noqa: F401

        api_work(1.0)
    else:
        from emberscope.profiling import Profiler

        if mode == "twice":
            p1 = Profiler(service="api-first")
            p1.start()
            mark("second-start-begin")
            p2 = Profiler(service="api-second")
            p2.start()
            mark("second-start-end")
            api_work(1.0)
        elif mode == "context":
            with Profiler(service="api-context") as p:
                truth["enter_returns_profiler"] = isinstance(p, Profiler)
                api_work(1.0)
            truth["files_after_stop"] = count_files()
            after_stop_work(0.5)
        elif mode == "stop":
            p = Profiler(service="api-stop")
            p.start()
            api_work(1.0)
            p.stop(flush=True)
            truth["files_after_stop"] = count_files()
            after_stop_work(0.5)
        else:
            raise SystemExit("unknown mode %r" % mode)
    truth["files_at_end"] = count_files()
    emit(truth)


if __name__ == "__main__":
    main()
