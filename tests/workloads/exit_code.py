"""Exits in a chosen way after some work (exit codes, final profile, shutdown).

usage: exit_code.py CODE|raise|end [cpu_seconds=1.0] [daemons=0]

  CODE   sys.exit(CODE)
  raise  an uncaught exception (status 1, traceback on stderr)
  end    falls off the end of the script (status 0)
`daemons` daemon threads keep burning CPU (half of them) or sleeping while
the interpreter shuts down. The truth line is printed just before leaving, with time.monotonic() (the
system-wide CLOCK_MONOTONIC) so the test can measure how long exit takes.
"""

import sys
import threading
import time

from _wl import code_name, emit


class ExitTestError(Exception):
    pass


def work_before_exit(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def daemon_burn():
    x = 0
    while True:
        for i in range(2000):
            x += i


def daemon_sleep():
    while True:
        time.sleep(0.001)


def main():
    how = sys.argv[1] if len(sys.argv) > 1 else "end"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    daemons = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for i in range(daemons):
        t = threading.Thread(target=daemon_burn if i % 2 else daemon_sleep, name="daemon-%d" % i)
        t.daemon = True
        t.start()
    work_before_exit(seconds)
    emit({"how": how, "names": {"work": code_name(work_before_exit)},
          "exit_monotonic": time.monotonic()})
    if how == "raise":
        raise ExitTestError("uncaught on purpose")
    if how != "end":
        sys.exit(int(how))


if __name__ == "__main__":
    main()
