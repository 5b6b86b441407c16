"""Sleeping vs spinning threads, and thread names (including non-ASCII ones).

usage: sleeping_threads.py [seconds=2.5]

Threads:
  "sleeper"        sleeps in sleep_here() (0.05 s naps) for `seconds`: wall ~= elapsed, cpu ~= 0
  "spinner"        burns CPU in spin_here() for `seconds`: cpu ~= its thread_time
  "ναι-线程-é"     idles in named_idle() (non-ASCII, 2- and 3-byte UTF-8)
  "🔥flame"        idles in named_idle() (4-byte UTF-8)
The main thread joins them. Truth: per thread name, ident, native id,
elapsed wall (monotonic, measured inside the thread) and thread_time.
"""

import sys
import threading
import time

from _wl import code_name, emit, thread_info

UNICODE_NAMES = (u"\u03bd\u03b1\u03b9-\u7ebf\u7a0b-\u00e9", u"\U0001F525flame")


def sleep_here(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def spin_here(seconds):
    deadline = time.monotonic() + seconds
    x = 0
    while time.monotonic() < deadline:
        for i in range(2000):
            x += i
    return x


def named_idle(seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.05)


def run_measured(func, seconds, out):
    t0 = time.monotonic()
    c0 = time.thread_time()
    start_ns = time.time_ns()
    func(seconds)
    out.update(thread_info())
    out["elapsed"] = time.monotonic() - t0
    out["cpu"] = time.thread_time() - c0
    out["cpu_total"] = time.thread_time()
    out["start_ns"] = start_ns
    out["end_ns"] = time.time_ns()


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 2.5
    plan = [("sleeper", sleep_here), ("spinner", spin_here)]
    plan += [(name, named_idle) for name in UNICODE_NAMES]
    results = {}
    threads = []
    for name, func in plan:
        results[name] = {}
        threads.append(threading.Thread(target=run_measured, args=(func, seconds, results[name]),
                                        name=name))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    emit({
        "threads": results,
        "main": thread_info(),
        "names": {"sleep": code_name(sleep_here), "spin": code_name(spin_here),
                  "idle": code_name(named_idle)},
        "file": __file__,
    })


if __name__ == "__main__":
    main()
