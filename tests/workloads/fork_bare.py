"""Bare os.fork(): the child must profile itself from an empty profile.

usage: fork_bare.py [exit|_exit] [child_cpu_seconds=1.5]

The parent burns in parent_before_fork(), forks, then burns in
parent_after_fork() while the child burns in child_work(). The child leaves
with sys.exit(0) ("exit", atexit handlers run) or os._exit(0) ("_exit", they
do not). Only the parent prints the truth (after the child finished).
"""

import os
import sys
import time

from _wl import emit, thread_info


def parent_before_fork(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def parent_after_fork(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def child_work(seconds):
    end = time.thread_time() + seconds
    x = 0
    while time.thread_time() < end:
        for i in range(2000):
            x += i
    return x


def main():
    how = sys.argv[1] if len(sys.argv) > 1 else "exit"
    child_seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 1.5
    parent_before_fork(0.8)
    sys.stdout.flush()
    fork_ns = time.time_ns()
    pid = os.fork()
    if pid == 0:
        child_work(child_seconds)
        if how == "_exit":
            os._exit(0)
        sys.exit(0)
    parent_after_fork(0.8)
    _, status = os.waitpid(pid, 0)
    emit({
        "parent": os.getpid(),
        "child": pid,
        "child_status": status,
        "fork_ns": fork_ns,
        "end_ns": time.time_ns(),
        "how": how,
        "main": thread_info(),
    })


if __name__ == "__main__":
    main()
