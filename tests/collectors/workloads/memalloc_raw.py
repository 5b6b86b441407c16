"""The heap's RAW path (sampled OBJ/MEM allocations served by the RAW allocator, their frees
seen by the RAW hook): which path a PYTHONMALLOC setting takes, heap accuracy for small
objects, calloc and small-realloc contents, and threads freeing RAW blocks without the GIL
while the filter is rebuilt. Prints one JSON line of observations; the test asserts on them."""
import ctypes
import gc
import json
import os
import sys
import threading
import time

from emberscope import _native
from emberscope.profiling import Profiler

OUT = sys.argv[1]
STRESS_LIMIT_S = 90.0
REBUILDS = 2


def profiler(sample, heap=True):
    return Profiler(memory=True, heap=heap, heap_sample_size=sample, lock=False,
                    output_pprof=OUT, upload_interval=60)


def tracked():
    return _native.memalloc_stats().get("heap_tracked", 0)


obs = {"pid": os.getpid()}

# 1. Which path, and small objects (floats, 24 bytes: pymalloc's own size classes).
p = profiler(4096)
p.start()
s = _native.memalloc_stats()
obs["raw_path"] = sorted(s["heap_raw_path"])
obs["hooked"] = sorted(s["hooked_domains"])
gc.collect()
t0, b0 = tracked(), _native.memalloc_stats()["heap_estimated_bytes"]
n = 60000
floats = [float(i) + 0.5 for i in range(n)]
s = _native.memalloc_stats()
truth = n * sys.getsizeof(1.5) + sys.getsizeof(floats)
obs["small_held"] = s["heap_tracked"] - t0
obs["small_bytes"] = [s["heap_estimated_bytes"] - b0, truth]
del floats
gc.collect()
obs["small_after"] = tracked() - t0

# 2. calloc (bytes(n) is zeroed by PyObject_Calloc) and realloc to small sizes keep their
# contents when served from RAW; the realloc'd blocks' frees are all seen.
bad_calloc = 0
for _ in range(20000):
    b = bytes(300)
    if any(b):
        bad_calloc += 1
obs["bad_calloc"] = bad_calloc
expected = bytes(j % 251 for j in range(700))
bad_realloc = 0
keep = []
for i in range(3000):
    ba = bytearray()
    for j in range(700):
        ba.append(j % 251)  # grows through every small size (realloc)
    if ba != expected:
        bad_realloc += 1
    del ba[40:]  # shrinks to a small size
    if ba != expected[:40]:
        bad_realloc += 1
    if i % 3 == 0:
        keep.append(ba)
obs["bad_realloc"] = bad_realloc
held = tracked() - t0
del keep, ba
gc.collect()
obs["realloc_keep"] = [held, tracked() - t0]
p.stop(flush=False)

# 3. Dense sampling (about every allocation) so the filter is rebuilt several times, while
# threads allocate and free RAW blocks without the GIL (ctypes.CDLL releases it around the
# call) and Python threads allocate, free and start short threads (whose start-up block is
# freed with PyMem_RawFree by the new thread, without the GIL).
p = profiler(64)
p.start()
r0 = _native.memalloc_stats().get("heap_filter_rebuilds", 0)
libc = ctypes.CDLL(None)
libc.PyMem_RawMalloc.restype = ctypes.c_void_p
libc.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
libc.PyMem_RawRealloc.restype = ctypes.c_void_p
libc.PyMem_RawRealloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.PyMem_RawFree.restype = None
libc.PyMem_RawFree.argtypes = [ctypes.c_void_p]
stop = threading.Event()
raw_ops = [0]


def raw_churn(k):
    n = 0
    while not stop.is_set():
        ptrs = [libc.PyMem_RawMalloc(16 + 16 * ((k + i) % 40)) for i in range(64)]
        ptrs = [libc.PyMem_RawRealloc(q, 48) for q in ptrs]
        for q in ptrs:
            libc.PyMem_RawFree(q)
        n += len(ptrs)
    raw_ops[0] += n


def py_churn():
    while not stop.is_set():
        x = [str(i) * 3 for i in range(500)]
        y = {i: (i, i) for i in range(200)}
        del x, y
        t = threading.Thread(target=lambda: None)
        t.start()
        t.join()


threads = [threading.Thread(target=raw_churn, args=(k,)) for k in range(2)]
threads += [threading.Thread(target=py_churn) for _ in range(2)]
for t in threads:
    t.start()
kept = []
t_end = time.monotonic() + STRESS_LIMIT_S
while time.monotonic() < t_end:
    for _ in range(50):
        kept.append([bytearray(40) for _ in range(50)])
        if len(kept) > 40:
            kept.pop(0)
    if _native.memalloc_stats().get("heap_filter_rebuilds", 0) >= r0 + REBUILDS:
        break
stop.set()
for t in threads:
    t.join()
obs["rebuilds"] = _native.memalloc_stats().get("heap_filter_rebuilds", 0) - r0
obs["raw_ops"] = raw_ops[0]
gc.collect()
before = tracked()
del kept
gc.collect()
obs["stress_tracked"] = [before, tracked()]
p.stop(flush=False)
obs["final_hooked"] = sorted(_native.memalloc_stats()["hooked_domains"])
print(json.dumps(obs))
