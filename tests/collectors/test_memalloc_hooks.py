"""The allocator hook's life cycle (heap on/off across restarts, tracemalloc, fork) and the
heap's RAW path (pymalloc: sampled blocks served by RAW, frees seen by the RAW hook), under
the default allocator and the PYTHONMALLOC settings that must take the free path."""

import pytest

from profiler import harness as H

from .conftest import workload

pytestmark = pytest.mark.all_versions

# PYTHONMALLOC value -> whether the heap takes the RAW path (only over plain pymalloc).
ALLOCATORS = [(None, True), ("debug", False), ("malloc", False), ("pymalloc_debug", False),
              ("mimalloc", False)]


def run_workload(interp, tmp_path, name, pythonmalloc):
    env = H.base_env(interp)
    if pythonmalloc:
        env["PYTHONMALLOC"] = pythonmalloc
    argv = [str(interp.path), workload(name), str(tmp_path / "prof")]
    return H.run(argv, env).check_ok()


@pytest.mark.parametrize("pythonmalloc,raw", ALLOCATORS[:3])
def test_hook_lifecycle(interp, tmp_path, pythonmalloc, raw):
    r = run_workload(interp, tmp_path, "memalloc_hooks.py", pythonmalloc)
    o = r.truth
    both = ["mem", "obj"]
    # The RAW hook is installed with the heap on the RAW path only.
    heap_hooked = ["mem", "obj", "raw"] if raw else both
    raw_path = both if raw else []
    # About 2000 * (1 - exp(-1057 / 4096)) = 450 of 2000 kept buffers are tracked; all leave
    # the table when freed (a few of the interpreter's own allocations made meanwhile stay).
    for key in ("on_keep", "again_keep", "tm_keep", "tm_restart_keep", "tm_after_stop_keep"):
        held, after = o[key]
        assert 300 < held < 650 and after <= 5, (key, o)
    assert o["on"] == {"memory": True, "heap": True, "hooked": heap_hooked}
    assert o["on_raw_path"] == raw_path
    assert o["stopped"]["hooked"] == []
    # Heap off: frees go straight to the previous allocator, nothing is tracked.
    assert o["off"] == {"memory": True, "heap": False, "hooked": both}
    assert o["off_keep"] == [0, 0]
    # tracemalloc wrapped the hook: stop() leaves it as a pass-through, tracemalloc still
    # traces, and a hook without `free` cannot track the heap (a warning, not wrong numbers):
    # the RAW path is not taken either, tracemalloc's RAW hook being below where ours would go.
    assert o["tracemalloc_traced"] and o["tracemalloc_traced_again"]
    assert o["wrapped_stopped"] == {"memory": False, "heap": False, "hooked": both}
    assert o["wrapped_heap"] == {"memory": True, "heap": False, "hooked": both}
    assert o["wrapped_raw_path"] == []
    assert o["wrapped_keep"] == [0, 0]
    assert "heap profiling is unavailable" in r.stderr
    # On top again: the hook is re-registered for the heap.
    assert o["again"] == {"memory": True, "heap": True, "hooked": heap_hooked}
    assert o["again_raw_path"] == raw_path
    # Fork: the child starts with an empty table (the parent's ~450 entries are gone; only a
    # few of its own restart allocations) and tracks its own allocations.
    child = o["child"]
    assert child["tracked_at_start"] < 40, child
    assert child["stats"]["heap"] is True
    held, after = child["keep"]
    assert 300 < held < 650 and after <= 5, child
    assert o["parent_tracked_after_fork"] > 300
    assert o["stopped_again"]["hooked"] == []
    # tracemalloc over the heap's hooks (either path): both keep working; stopped while
    # wrapped, the hooks stay as pass-throughs; restarted while wrapped, the heap is tracked.
    assert o["tm_traced"]
    assert o["tm_stopped"] == {"memory": False, "heap": False, "hooked": heap_hooked}
    assert o["tm_restart"] == {"memory": True, "heap": True, "hooked": heap_hooked,
                               "raw_path": raw_path}
    assert o["tm_after_stop"] == {"memory": True, "heap": True, "hooked": heap_hooked}
    assert o["final"]["hooked"] == []
    # tracemalloc started first: our hook goes over it with the free path and tracks the
    # heap; tracemalloc.stop() restores what it saved, dropping our hook: noticed, one
    # warning, the collector off and its table empty (no live heap that can only grow); a
    # restart installs the hook again.
    assert o["tm_first"] == {"memory": True, "heap": True, "hooked": both}, o["tm_first"]
    assert 300 < o["tm_first_tracked"] < 650, o
    assert o["tm_first_stopped"] == {"memory": False, "heap": False, "hooked": [],
                                     "tracked": 0, "hooks_lost": 1}, o["tm_first_stopped"]
    assert r.stderr.count("allocation and heap profiling stopped") == 1, r.stderr
    assert o["tm_first_restart"] == {"memory": True, "heap": True, "hooked": heap_hooked}
    held, after = o["tm_first_restart_keep"]
    assert 300 < held < 650 and after <= 5, o


@pytest.mark.parametrize("pythonmalloc,raw", ALLOCATORS)
def test_heap_paths(interp, tmp_path, pythonmalloc, raw):
    if pythonmalloc == "mimalloc" and H.vkey(interp.version) < (3, 13):
        pytest.skip("mimalloc is built in from 3.13")
    o = run_workload(interp, tmp_path, "memalloc_raw.py", pythonmalloc).truth
    assert o["raw_path"] == (["mem", "obj"] if raw else []), o
    assert o["hooked"] == (["mem", "obj", "raw"] if raw else ["mem", "obj"]), o
    # Small objects (pymalloc's size classes): about 350 of 60000 floats are sampled; the
    # estimate holds within 25 % (4 standard deviations), and every free is seen.
    assert 200 < o["small_held"] < 600, o
    est, truth = o["small_bytes"]
    assert abs(est - truth) / float(truth) < 0.25, o
    assert o["small_after"] <= 5, o
    # calloc'd blocks are zeroed, small reallocs keep their bytes, and their frees are seen.
    assert o["bad_calloc"] == 0 and o["bad_realloc"] == 0, o
    held, after = o["realloc_keep"]
    assert held > 0 and after <= 5, o
    # Threads freeing RAW blocks without the GIL while the filter was rebuilt: no crash, no
    # hang, and the table still drains.
    assert o["rebuilds"] >= 1 and o["raw_ops"] > 0, o
    before, after = o["stress_tracked"]
    assert after < before and after < 400, o
    assert o["final_hooked"] == []
