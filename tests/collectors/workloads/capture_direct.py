"""The event collectors' capture of the calling thread: its direct walk (plain loads, GIL
held) against its copy-based walk and against the interpreter's own frames, on stacks of
several shapes. Prints one JSON line: {"pid", "version", "cases": [...]}.

Each case calls ``emberscope._native._capture_compare(max_frames)`` and records both walks
and the expected stack (``sys._getframe``, leaf first: name, filename, line; the qualified
name on 3.11+ as the native walker reports it)."""
import asyncio
import json
import os
import sys
import threading

from emberscope import _native

MODERN = sys.version_info >= (3, 11)
cases = []


def expected(frame):
    out = []
    while frame is not None:
        code = frame.f_code
        name = code.co_qualname if MODERN else code.co_name
        out.append([name, code.co_filename, frame.f_lineno])
        frame = frame.f_back
    return out


def check(case, max_frames=128):
    here = sys._getframe()
    r = _native._capture_compare(max_frames)
    want = expected(here)
    if r is None:
        cases.append({"case": case, "available": False})
        return
    cases.append({
        "case": case,
        "available": True,
        "max_frames": max_frames,
        "thread": threading.current_thread().name,
        "ident": threading.get_ident(),
        "native_id": threading.get_native_id(),
        "direct_enabled": r["direct_enabled"],
        "direct": r["direct"],
        "copy": r["copy"],
        "expected": want,
    })


# -- plain recursion, past max_frames -------------------------------------------------------
def recurse(n, max_frames):
    if n:
        return recurse(n - 1, max_frames)
    check("recursion-%d" % max_frames, max_frames)


# -- C calls in between ----------------------------------------------------------------------
def via_sorted():
    sorted([3, 1, 2], key=lambda x: (check("sorted-key") if x == 1 else None, x)[1])


def via_map():
    list(map(lambda x: check("map"), [0]))


def via_comprehension():
    [check("comprehension") for _ in range(1)]


# -- generators and coroutines ---------------------------------------------------------------
def inner_gen():
    check("generator")
    yield 1


def outer_gen():
    yield from inner_gen()


async def leaf_coro():
    check("coroutine")


async def mid_coro():
    await leaf_coro()


async def agen():
    check("async-generator")
    yield 1


async def asyncio_main():
    await mid_coro()
    async for _ in agen():
        pass
    await asyncio.gather(asyncio.ensure_future(leaf_task()))


async def leaf_task():
    await asyncio.sleep(0)
    check("asyncio-task")


def drive_coroutine():
    try:
        mid_coro().send(None)
    except StopIteration:
        pass


class WithDel(object):
    def __del__(self):
        check("finalizer")


def in_thread():
    recurse(40, 16)
    list(outer_gen())


def main():
    for m in (1, 3, 16, 64, 128, 1000):
        recurse(150, m)
    via_sorted()
    via_map()
    via_comprehension()
    list(outer_gen())
    drive_coroutine()
    asyncio.run(asyncio_main())
    WithDel()
    t = threading.Thread(target=in_thread, name="other-thread")
    t.start()
    t.join()
    print(json.dumps({"pid": os.getpid(), "version": list(sys.version_info[:2]),
                      "cases": cases}))


if __name__ == "__main__":
    main()
