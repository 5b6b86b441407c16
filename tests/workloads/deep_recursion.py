"""Burns CPU at the bottom of a deep recursion (max-frames truncation).

usage: deep_recursion.py [depth=1000] [cpu_seconds=1.5]

Stack while burning (leaf first): bottom, recurse x (depth+1), main, <module>.
Truth: "frames" = the exact number of Python frames on that stack (counted
with f_back from bottom), the line of the recursive call and of the loop.
"""

import sys
import time

from _wl import code_lines, code_name, emit, frame_depth, marker_line

RESULT = {}


def bottom(cpu_seconds):
    RESULT["frames"] = frame_depth()
    end = time.thread_time() + cpu_seconds
    x = 0
    while time.thread_time() < end:
        for i in range(5000):
            x += i  # MARK:bottom_loop
    return x


def recurse(n, cpu_seconds):
    if n > 0:
        return recurse(n - 1, cpu_seconds)  # MARK:recurse_call
    return bottom(cpu_seconds)  # MARK:bottom_call


def main():
    depth = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    cpu_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5
    sys.setrecursionlimit(max(sys.getrecursionlimit(), depth + 1000))
    recurse(depth, cpu_seconds)  # MARK:main_call
    emit({
        "depth": depth,
        "frames": RESULT["frames"],
        "recurse_line": marker_line("recurse_call"),
        "bottom_call_line": marker_line("bottom_call"),
        "main_call_line": marker_line("main_call"),
        "module_call_line": marker_line("module_call"),
        "bottom_loop_line": marker_line("bottom_loop"),
        "bottom_lines": code_lines(bottom),
        "names": {"bottom": code_name(bottom), "recurse": code_name(recurse),
                  "main": code_name(main)},
        "file": __file__,
    })


if __name__ == "__main__":
    main()  # MARK:module_call
