"""Stress: hundreds of short-lived threads while the sampler runs fast.

usage: stress.py [total_threads=600] [max_alive=100] [min_seconds=4]

- Short-lived threads "stress-<i>" (10-60 ms each, at most `max_alive` at a
  time) recurse 1-60 deep, drive a generator, raise and catch exceptions,
  sleep briefly and exit.
- "deep-recursion": burns CPU 1000 frames deep until the end.
- "asyncio-loop": runs coroutines (nested awaits) until the end.
- the main thread keeps starting threads until `total_threads` were started
  and `min_seconds` elapsed.
Truth: how many threads were started/finished, and each thread's ident and
native id as the thread itself saw them.
"""

import asyncio
import random
import sys
import threading
import time

from _wl import emit


class StressError(Exception):
    pass


def stress_gen(n):
    for i in range(n):
        yield i * i


def stress_recurse(n, rnd):
    if n > 0:
        return stress_recurse(n - 1, rnd)
    x = 0
    for v in stress_gen(200):
        x += v
    for _ in range(3):
        try:
            raise StressError(n)
        except StressError:
            pass
    time.sleep(rnd.uniform(0.005, 0.03))
    for i in range(rnd.randint(1000, 20000)):
        x += i
    return x


def short_life(index, seed, record, done):
    rnd = random.Random(seed)
    t = threading.current_thread()
    record[t.name] = [t.ident, t.native_id]
    stress_recurse(rnd.randint(1, 60), rnd)
    done.append(index)


def deep_burn(n, stop):
    if n > 0:
        return deep_burn(n - 1, stop)
    x = 0
    while not stop.is_set():
        for i in range(5000):
            x += i
    return x


async def stress_coro_leaf(n):
    x = 0
    for i in range(n):
        x += i
    await asyncio.sleep(0)
    return x


async def stress_coro_mid(n):
    return await stress_coro_leaf(n)


async def stress_async_main(stop):
    while not stop.is_set():
        await asyncio.gather(*(stress_coro_mid(3000) for _ in range(5)))


def run_loop(stop):
    asyncio.run(stress_async_main(stop))


def main():
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 600
    max_alive = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    min_seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 4.0
    sys.setrecursionlimit(5000)
    stop = threading.Event()
    record = {}
    done = []
    background = [
        threading.Thread(target=deep_burn, args=(1000, stop), name="deep-recursion"),
        threading.Thread(target=run_loop, args=(stop,), name="asyncio-loop"),
    ]
    for t in background:
        t.start()
    t0 = time.monotonic()
    alive = []
    started = 0
    while started < total or time.monotonic() - t0 < min_seconds:
        alive = [t for t in alive if t.is_alive()]
        if len(alive) >= max_alive:
            time.sleep(0.002)
            continue
        t = threading.Thread(target=short_life, args=(started, started, record, done),
                             name="stress-%d" % started)
        t.start()
        alive.append(t)
        started += 1
    for t in alive:
        t.join()
    stop.set()
    for t in background:
        t.join()
    emit({
        "started": started,
        "finished": len(done),
        "threads": record,
        "elapsed": time.monotonic() - t0,
    })


if __name__ == "__main__":
    main()
