"""The allocator hook's life cycle (heap on/off across restarts, tracemalloc, fork)."""

import pytest

from profiler import harness as H

from .conftest import workload

pytestmark = pytest.mark.all_versions


def test_hook_lifecycle(interp, tmp_path):
    argv = [str(interp.path), workload("memalloc_hooks.py"), str(tmp_path / "prof")]
    r = H.run(argv, H.base_env(interp)).check_ok()
    o = r.truth
    both = ["mem", "obj"]
    # About 2000 * (1 - exp(-1057 / 4096)) = 450 of 2000 kept buffers are tracked; all leave
    # the table when freed.
    for key in ("on_keep", "again_keep"):
        held, after = o[key]
        assert 300 < held < 650 and after <= 2, (key, o)
    assert o["on"] == {"memory": True, "heap": True, "hooked": both}
    assert o["stopped"]["hooked"] == []
    # Heap off: frees go straight to the previous allocator, nothing is tracked.
    assert o["off"] == {"memory": True, "heap": False, "hooked": both}
    assert o["off_keep"] == [0, 0]
    # tracemalloc wrapped the hook: stop() leaves it as a pass-through, tracemalloc still
    # traces, and a hook without `free` cannot track the heap (a warning, not wrong numbers).
    assert o["tracemalloc_traced"] and o["tracemalloc_traced_again"]
    assert o["wrapped_stopped"] == {"memory": False, "heap": False, "hooked": both}
    assert o["wrapped_heap"] == {"memory": True, "heap": False, "hooked": both}
    assert o["wrapped_keep"] == [0, 0]
    assert "heap profiling is unavailable" in r.stderr
    # On top again: the hook is re-registered with `free`.
    assert o["again"] == {"memory": True, "heap": True, "hooked": both}
    # Fork: the child starts with an empty table (the parent's ~450 entries are gone; only a
    # few of its own restart allocations) and tracks its own allocations.
    child = o["child"]
    assert child["tracked_at_start"] < 40, child
    assert child["stats"]["heap"] is True
    held, after = child["keep"]
    assert 300 < held < 650 and after <= 2, child
    assert o["parent_tracked_after_fork"] > 300
    assert o["final"]["hooked"] == []
