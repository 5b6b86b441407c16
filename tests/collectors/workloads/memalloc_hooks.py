"""The allocator hook's life cycle: heap on/off across restarts, tracemalloc wrapping the hook
(installed without heap tracking, and over the RAW path), fork, tracemalloc started first and
stopped (dropping the hook). Prints one JSON line of observations; the test asserts on them."""
import gc
import json
import os
import sys
import tracemalloc

from emberscope import _native
from emberscope.profiling import Profiler

OUT = sys.argv[1]
SAMPLE = 4096


def profiler(heap):
    return Profiler(memory=True, heap=heap, heap_sample_size=SAMPLE, lock=False,
                    output_pprof=OUT, upload_interval=60)


def keep_and_free(n=2000):
    """Keeps n 1000-byte buffers, reports how many allocations are tracked, frees them."""
    gc.collect()
    before = _native.memalloc_stats().get("heap_tracked", 0)
    kept = [bytearray(1000) for _ in range(n)]
    held = _native.memalloc_stats().get("heap_tracked", 0) - before
    del kept
    gc.collect()
    after = _native.memalloc_stats().get("heap_tracked", 0) - before
    return held, after


def stats():
    s = _native.memalloc_stats()
    return {"memory": s["memory"], "heap": s["heap"], "hooked": sorted(s["hooked_domains"])}


def raw_path():
    return sorted(_native.memalloc_stats()["heap_raw_path"])


obs = {"pid": os.getpid()}

# 1. heap on.
p = profiler(True)
p.start()
obs["on"] = stats()
obs["on_raw_path"] = raw_path()
obs["on_keep"] = keep_and_free()
p.stop(flush=False)
obs["stopped"] = stats()

# 2. heap off: frees are not hooked, nothing is tracked.
p = profiler(False)
p.start()
obs["off"] = stats()
obs["off_keep"] = keep_and_free()

# 3. tracemalloc wraps the hook installed without free; stop leaves a pass-through.
tracemalloc.start()
x = [bytearray(100) for _ in range(1000)]
obs["tracemalloc_traced"] = tracemalloc.get_traced_memory()[0] > 100 * 1000
del x
p.stop(flush=False)
obs["wrapped_stopped"] = stats()

# 4. heap wanted while wrapped by a hook that cannot see frees: memory on, heap off.
p = profiler(True)
p.start()
obs["wrapped_heap"] = stats()
obs["wrapped_raw_path"] = raw_path()
obs["wrapped_keep"] = keep_and_free()
y = [bytearray(100) for _ in range(1000)]
obs["tracemalloc_traced_again"] = tracemalloc.get_traced_memory()[0] > 100 * 1000
del y
p.stop(flush=False)
tracemalloc.stop()

# 5. back on top: heap on again.
p = profiler(True)
p.start()
obs["again"] = stats()
obs["again_raw_path"] = raw_path()
obs["again_keep"] = keep_and_free()

# 6. fork with tracked allocations: the child starts empty and tracks its own.
kept = [bytearray(1000) for _ in range(2000)]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    child = {"tracked_at_start": _native.memalloc_stats().get("heap_tracked", -1)}
    child["keep"] = keep_and_free()
    child["stats"] = stats()
    os.write(w, json.dumps(child).encode())
    os._exit(0)
os.close(w)
data = b""
while True:
    chunk = os.read(r, 65536)
    if not chunk:
        break
    data += chunk
os.waitpid(pid, 0)
obs["child"] = json.loads(data.decode())
obs["parent_tracked_after_fork"] = _native.memalloc_stats().get("heap_tracked", 0)
del kept
p.stop(flush=False)
obs["stopped_again"] = stats()

# 7. tracemalloc started over the RAW path (it wraps OBJ, MEM and RAW): the heap keeps
# tracking, tracemalloc keeps tracing; stop leaves pass-throughs; a restart while wrapped
# still tracks the heap (the RAW hook sees the frees), and tracemalloc.stop() puts ours back.
p = profiler(True)
p.start()
tracemalloc.start()
obs["tm_keep"] = keep_and_free()
z = [bytearray(100) for _ in range(1000)]
obs["tm_traced"] = tracemalloc.get_traced_memory()[0] > 100 * 1000
del z
p.stop(flush=False)
obs["tm_stopped"] = stats()
p = profiler(True)
p.start()
obs["tm_restart"] = dict(stats(), raw_path=sorted(_native.memalloc_stats()["heap_raw_path"]))
obs["tm_restart_keep"] = keep_and_free()
tracemalloc.stop()
obs["tm_after_stop"] = stats()
obs["tm_after_stop_keep"] = keep_and_free()
p.stop(flush=False)
obs["final"] = stats()

# 8. tracemalloc started before the profiler, then stopped: it restores the allocator it
# saved, which drops our hook from the chain. The collector notices (one warning), stops and
# empties its table rather than keep allocations whose frees it can no longer see; a restart
# installs the hook again.
tracemalloc.start()
p = profiler(True)
p.start()
obs["tm_first"] = stats()
held = [bytearray(1000) for _ in range(2000)]
obs["tm_first_tracked"] = _native.memalloc_stats().get("heap_tracked", 0)
tracemalloc.stop()
s = _native.memalloc_stats()
obs["tm_first_stopped"] = dict(stats(), tracked=s.get("heap_tracked", -1),
                               hooks_lost=s["hooks_lost"])
del held
p.stop(flush=False)
p = profiler(True)
p.start()
obs["tm_first_restart"] = stats()
obs["tm_first_restart_keep"] = keep_and_free()
p.stop(flush=False)
print(json.dumps(obs))
