"""Many threads allocating and taking every kind of lock at once."""
import json
import os
import threading
import time

DURATION = float(os.environ.get("STRESS_S", "2.0"))
THREADS = int(os.environ.get("STRESS_THREADS", "12"))

lock = threading.Lock()
rlock = threading.RLock()
sem = threading.BoundedSemaphore(3)
cond = threading.Condition()
counter = [0]


def work(i):
    end = time.monotonic() + DURATION
    junk = []
    n = 0
    while time.monotonic() < end:
        junk.append([str(j) * (i + 1) for j in range(50)])
        if len(junk) > 200:
            del junk[:100]
        with lock:
            counter[0] += 1
        with rlock:
            with rlock:
                n += 1
        with sem:
            b = bytearray(2000)
        with cond:
            cond.notify_all()
        if n % 50 == 0:
            with cond:
                cond.wait(0.001)
    return n


threads = [threading.Thread(target=work, args=(i,), name="stress-%d" % i) for i in range(THREADS)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(json.dumps({"pid": os.getpid(), "counter": counter[0], "threads": THREADS}))
