"""The event collectors' stack capture of the calling thread: the direct walk (plain loads,
GIL held; `Sampler::sample_current`) must return exactly what the copy-based walk
(`Sampler::sample_tstate`) returns, and what the interpreter itself reports, on every
version: deep recursion past max_frames, generators, coroutines (driven by hand and by
asyncio), async generators, C calls in between (sorted's key, map), a finalizer, another
thread. Also: the switch that keeps the copy-based walk, and the collectors on top of it."""

import pytest

from profiler import pprof_decode as P

from .conftest import workload

EXPECTED_CASES = {
    "recursion-1", "recursion-3", "recursion-16", "recursion-64", "recursion-128",
    "recursion-1000", "sorted-key", "map", "comprehension", "generator", "coroutine",
    "async-generator", "asyncio-task", "finalizer",
}


def run_cases(interp, runner, **env):
    env = dict({"DD_PROFILING_STACK_ENABLED": "false", "DD_PROFILING_LOCK_ENABLED": "true"},
               **env)
    r = runner.run(interp, workload("capture_direct.py"), env=env).check_ok()
    return r.truth["cases"]


def check_case(c, direct_expected=True):
    name = c["case"]
    assert c["available"], "no capture walker in this process: %s" % name
    assert c["direct_enabled"] is direct_expected, name
    direct, copy = c["direct"], c["copy"]
    assert direct is not None and copy is not None, (name, direct, copy)
    # The whole ThreadStack: frames, omitted count, kernel TID, pthread id, GIL flag.
    assert direct == copy, "%s:\ndirect %r\ncopy   %r" % (name, direct, copy)
    frames, omitted, native_id, thread_id, holds_gil = direct
    want = c["expected"]
    m = c["max_frames"]
    assert len(frames) == min(m, len(want)), (name, len(frames), len(want))
    assert omitted == max(0, len(want) - m), (name, omitted, len(want))
    # The leaf is check() itself (its line differs between the two calls).
    assert frames[0][0] == want[0][0] == "check", (name, frames[0], want[0])
    got = [list(f) for f in frames[1:]]
    assert got == want[1:len(frames)], "%s:\nnative   %r\nexpected %r" % (name, got, want)
    assert native_id == c["native_id"], (name, native_id, c["native_id"])
    assert thread_id == c["ident"], (name, thread_id, c["ident"])
    assert holds_gil is True, name


@pytest.mark.all_versions
def test_direct_walk_equals_copy_walk(interp, runner):
    cases = run_cases(interp, runner)
    seen = set(c["case"] for c in cases)
    assert EXPECTED_CASES <= seen, EXPECTED_CASES - seen
    threads = set()
    for c in cases:
        check_case(c)
        threads.add(c["thread"])
    assert threads == {"MainThread", "other-thread"}, threads
    # Shapes worth their name: the C call and the suspended/running generator frames are in
    # the stacks.
    by = dict((c["case"], c) for c in cases if c["thread"] == "MainThread")
    names = lambda case: [f[0].rsplit(".", 1)[-1] for f in by[case]["direct"][0]]
    assert names("generator")[:3] == ["check", "inner_gen", "outer_gen"]
    assert names("coroutine")[:3] == ["check", "leaf_coro", "mid_coro"]
    assert names("async-generator")[:3] == ["check", "agen", "asyncio_main"]
    assert "via_sorted" in names("sorted-key") and "via_map" in names("map")
    assert by["recursion-1000"]["direct"][1] == 0 and by["recursion-16"]["direct"][1] > 100


def test_copy_walk_when_turned_off(interp, runner):
    cases = run_cases(interp, runner, EMBERSCOPE_CAPTURE_DIRECT="0")
    assert cases
    for c in cases:
        check_case(c, direct_expected=False)


@pytest.mark.all_versions
def test_lock_samples_through_the_direct_walk(interp, runner):
    """A lock collector on top of the direct walk: every sampled acquire has the caller's
    stack (DD_PROFILING_CAPTURE_PCT=100)."""
    r = runner.run(interp, workload("lock_contention.py"),
                   env={"DD_PROFILING_LOCK_ENABLED": "true", "DD_PROFILING_CAPTURE_PCT": "100",
                        "LOCK_ITER": "50"}).check_ok()
    samples = P.samples_where(r.profiles, lambda s: str(s.labels.get("lock name", ""))
                              .endswith(":shared_lock"))
    assert samples
    for s in samples:
        assert s.frames and s.frames[0].name == "contend", s
