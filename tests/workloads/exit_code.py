"""Exits in a chosen way after some work (exit codes, final profile, shutdown).

usage: exit_code.py CODE|raise|end [cpu_seconds=1.0]

  CODE   sys.exit(CODE)
  raise  an uncaught exception (status 1, traceback on stderr)
  end    falls off the end of the script (status 0)
The truth line is printed just before leaving, with time.monotonic() (the
system-wide CLOCK_MONOTONIC) so the test can measure how long exit takes.
"""

import sys
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


def main():
    how = sys.argv[1] if len(sys.argv) > 1 else "end"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    work_before_exit(seconds)
    emit({"how": how, "names": {"work": code_name(work_before_exit)},
          "exit_monotonic": time.monotonic()})
    if how == "raise":
        raise ExitTestError("uncaught on purpose")
    if how != "end":
        sys.exit(int(how))


if __name__ == "__main__":
    main()
