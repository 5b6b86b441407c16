"""Fork while wrapped locks are held; the child checks lock semantics and profiles on."""
import json
import os
import sys
import threading

lock = threading.Lock()
rlock = threading.RLock()
other = threading.Lock()
parent_cache = []


def parent_alloc():
    for _ in range(2000):
        parent_cache.append(bytearray(10000))


child_cache = []


def child_alloc():
    for _ in range(2000):
        child_cache.append(bytearray(10000))
    return child_cache


def child_main():
    problems = []
    if not lock.locked():
        problems.append("Lock held at fork is not locked in the child")
    if lock.acquire(False):
        problems.append("Lock held at fork could be acquired in the child")
    rlock.release()  # the forking thread owned it: its copy in the child may release it
    if not rlock.acquire(False):
        problems.append("RLock released in the child cannot be acquired again")
    rlock.release()
    fresh = threading.Lock()
    with fresh:
        pass
    with other:
        pass
    keep = child_alloc()
    sys.stdout.write(json.dumps({"child_problems": problems, "kept": len(keep)}) + "\n")
    sys.stdout.flush()


parent_alloc()
holder_started = threading.Event()
release_holder = threading.Event()


def holder():
    with other:  # held by another thread at fork time
        holder_started.set()
        release_holder.wait()


t = threading.Thread(target=holder, name="holder")
t.start()
holder_started.wait()
lock.acquire()
rlock.acquire()
pid = os.fork()
if pid == 0:
    if hasattr(other, "_at_fork_reinit"):
        other._at_fork_reinit()  # what threading does for its own locks
    else:
        other = threading.Lock()
    try:
        child_main()
    except BaseException as exc:  # report, never hang
        sys.stdout.write(json.dumps({"child_problems": [repr(exc)]}) + "\n")
        sys.stdout.flush()
        os._exit(1)
    # Exit through the normal path so the child's profiler flushes.
    sys.exit(0)
release_holder.set()
t.join()
lock.release()
rlock.release()
_, status = os.waitpid(pid, 0)
print(json.dumps({"pid": os.getpid(), "child_pid": pid, "child_status": status}))
