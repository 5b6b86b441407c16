"""Two named threads contending on a named lock for a measured time; an RLock bound to an
attribute; an asyncio lock shared by two tasks."""
import asyncio
import json
import os
import threading
import time

ITER = int(os.environ.get("LOCK_ITER", "300"))
HOLD = float(os.environ.get("LOCK_HOLD_S", "0.001"))

shared_lock = threading.Lock()
totals = {"wait": 0.0, "hold": 0.0, "acquires": 0}
totals_lock = threading.Lock()


def contend():
    wait = hold = 0.0
    for _ in range(ITER):
        t0 = time.perf_counter()
        shared_lock.acquire()
        t1 = time.perf_counter()
        time.sleep(HOLD)
        t2 = time.perf_counter()
        shared_lock.release()
        wait += t1 - t0
        hold += t2 - t1
    with totals_lock:
        totals["wait"] += wait
        totals["hold"] += hold
        totals["acquires"] += ITER


class Account(object):
    def __init__(self):
        self._guard = threading.RLock()
        self.balance = 0

    def deposit(self, n):
        with self._guard:
            with self._guard:
                self.balance += n


threads = [threading.Thread(target=contend, name="contender-%s" % c) for c in "AB"]
for t in threads:
    t.start()
for t in threads:
    t.join()

class Holder(object):
    # threading.Lock/RLock stored as class attributes and called through self (werkzeug's
    # routing Map does this): like the builtins, the patched factories must stay unbound.
    lock_class = threading.Lock
    rlock_class = threading.RLock


holder = Holder()
with holder.lock_class():
    with holder.rlock_class():
        pass


acct = Account()
for i in range(2000):
    acct.deposit(i)


async def amain():
    alock = asyncio.Lock()

    async def task():
        for _ in range(50):
            async with alock:
                await asyncio.sleep(0.001)

    await asyncio.gather(task(), task())

asyncio.run(amain())

print(json.dumps({"pid": os.getpid(), "wait_ns": int(totals["wait"] * 1e9),
                  "hold_ns": int(totals["hold"] * 1e9), "acquires": totals["acquires"],
                  "balance": acct.balance}))
