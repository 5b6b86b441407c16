"""Raises known numbers of custom exceptions from known lines.

usage: exceptions.py [count=2000]

`count` WorkloadError raised in raiser() and count//2 Outer.InnerError raised
in raise_inner(), each caught by the caller (so each is one raise event).
The raises are spread over ~1 s with a little CPU work in between.
"""

import sys
import time

from _wl import code_name, emit, marker_line, thread_info


class WorkloadError(Exception):
    pass


class Outer(object):
    class InnerError(Exception):
        pass


def raiser(i):
    raise WorkloadError(i)  # MARK:raise


def raise_inner(i):
    raise Outer.InnerError(i)  # MARK:raise_inner


def pause(n):
    x = 0
    for i in range(n):
        x += i
    return x


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    start_ns = time.time_ns()
    raised = caught = 0
    raised_inner = 0
    for i in range(count):
        try:
            raised += 1
            raiser(i)
        except WorkloadError:
            caught += 1
        if i % 2 == 0:
            try:
                raised_inner += 1
                raise_inner(i)
            except Outer.InnerError:
                pass
        pause(2000)
    emit({
        "start_ns": start_ns,
        "end_ns": time.time_ns(),
        "raised": raised,
        "caught": caught,
        "raised_inner": raised_inner,
        "type": "%s.%s" % (WorkloadError.__module__, WorkloadError.__qualname__),
        "type_inner": "%s.%s" % (Outer.InnerError.__module__, Outer.InnerError.__qualname__),
        "raise_line": marker_line("raise"),
        "raise_inner_line": marker_line("raise_inner"),
        "names": {"raiser": code_name(raiser), "raise_inner": code_name(raise_inner),
                  "main": code_name(main)},
        "main_thread": thread_info(),
        "file": __file__,
    })


if __name__ == "__main__":
    main()
