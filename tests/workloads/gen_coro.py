"""Generators, coroutines and qualified names.

usage: gen_coro.py [phase_seconds=1.0]

Phases, each burning about `phase_seconds` of CPU on the main thread:
  1. consume_generators(): for-loops over gen_outer(), which `yield from`s
     gen_burn(); gen_burn burns CPU between its yields.
  2. run_coroutines(): asyncio.run(coro_parent()), which awaits coro_burn()
     repeatedly; coro_burn burns CPU, then awaits asyncio.sleep(0).
  3. Shapes().spin() (a method) and outer() -> inner (a nested function):
     qualified names "Shapes.spin" / "outer.<locals>.inner" on 3.11+.
Truth: CPU (thread_time) per phase and the names the profiler must show.
"""

import asyncio
import sys
import time

from _wl import code_name, emit


def gen_burn(n):
    for _ in range(n):
        x = 0
        for j in range(20000):
            x += j
        yield x


def gen_outer(n):
    yield from gen_burn(n)


def consume_generators(seconds):
    end = time.thread_time() + seconds
    total = 0
    while time.thread_time() < end:
        for value in gen_outer(5):
            total += value
    return total


async def coro_burn(n):
    x = 0
    for j in range(n):
        x += j
    await asyncio.sleep(0)
    return x


async def coro_parent(seconds):
    end = time.thread_time() + seconds
    total = 0
    while time.thread_time() < end:
        total += await coro_burn(20000)
    return total


def run_coroutines(seconds):
    return asyncio.run(coro_parent(seconds))


class Shapes(object):
    def spin(self, seconds):
        end = time.thread_time() + seconds
        x = 0
        while time.thread_time() < end:
            for i in range(2000):
                x += i
        return x


def outer(seconds):
    def inner():
        end = time.thread_time() + seconds
        x = 0
        while time.thread_time() < end:
            for i in range(2000):
                x += i
        return x

    return inner()


def measured(func, *args):
    c0 = time.thread_time()
    func(*args)
    return time.thread_time() - c0


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    cpu = {
        "generators": measured(consume_generators, seconds),
        "coroutines": measured(run_coroutines, seconds),
        "method": measured(Shapes().spin, seconds / 2),
        "nested": measured(outer, seconds / 2),
    }
    inner_code = [c for c in outer.__code__.co_consts if hasattr(c, "co_code")][0]
    emit({
        "cpu": cpu,
        "names": {
            "gen_burn": code_name(gen_burn), "gen_outer": code_name(gen_outer),
            "consume_generators": code_name(consume_generators),
            "coro_burn": code_name(coro_burn), "coro_parent": code_name(coro_parent),
            "run_coroutines": code_name(run_coroutines),
            "spin": code_name(Shapes.spin), "inner": code_name(inner_code),
            "outer": code_name(outer), "main": code_name(main),
        },
        "file": __file__,
    })


if __name__ == "__main__":
    main()
