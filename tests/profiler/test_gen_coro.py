"""Generators, coroutines and qualified names (gen_coro.py).

Function names are co_qualname on 3.11+ and co_name before (the workload
reports which). CPU of a phase in the profile vs time.thread_time: +-25 %.
"""

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P

pytestmark = [pytest.mark.all_versions, pytest.mark.parametrize("sampler", C.SAMPLERS)]


def gen_run(runner, interp, sampler):
    r = runner.run(interp, "gen_coro.py", ("1.0",), env=C.sampler_env(sampler))
    r.check_ok()
    return r, C.check_files(r, r.main_pid, sampler=sampler)


def test_generator_frames(runner, interp, sampler):
    # The native sampler used to cut generator/coroutine stacks short now and then (a walk
    # that ended at a suspended generator frame); such a walk is now torn and retried
    # (docs/DECISIONS.md D12).
    r, profiles = gen_run(runner, interp, sampler)
    n = r.truth["names"]
    phase = P.total(profiles, "cpu-time", where=P.stack_contains(n["consume_generators"])) / 1e9
    truth = r.truth["cpu"]["generators"]
    assert C.within(phase, truth, 0.25), "generator phase %.3fs vs %.3fs\n%s" % (
        phase, truth, H.summarize(profiles))
    leaf = P.samples_where(profiles, lambda s: H.leaf_name(s) == n["gen_burn"])
    assert leaf, H.summarize(profiles)
    for s in leaf:
        names = [f.name for f in H.strip_native(s.frames)]
        assert names[:3] == [n["gen_burn"], n["gen_outer"], n["consume_generators"]], names
        assert names[-2:] == [n["main"], "<module>"], names
    in_gen = sum(s.values[0] for s in leaf) / 1e9  # cpu-time is the first sample type
    assert in_gen >= 0.7 * phase, "gen_burn self %.3fs of %.3fs" % (in_gen, phase)


def test_coroutine_frames(runner, interp, sampler, request):
    # A limitation of the fallback sampler (GIL-based), measured in session 6: its thread
    # reads sys._current_frames() once it gets the GIL, and an event loop that polls
    # (asyncio.sleep(0) -> epoll_wait(0), about every millisecond) releases and retakes the
    # GIL so often that the waiting thread never asks for a forced switch (CPython's
    # take_gil only does when no switch happened in a whole interval). The sampler thread is
    # starved for the whole phase, 1 tick in 1 s where 100 were due; the phase's CPU then
    # lands on the stack the next tick sees (socket._real_close as asyncio.run closes the
    # loop). Totals stay right (the first assertion), the leaf cannot. The same starvation
    # is reproduced with plain threads and sys._current_frames in docs/DECISIONS.md D13.
    # The native sampler's cut-off coroutine stacks (just ['coro_burn']: the walk ended at
    # a suspended coroutine frame, whose previous/f_back is NULL) are fixed: such a walk is
    # torn and retried (docs/DECISIONS.md D12).
    if sampler != "native":
        request.applymarker(pytest.mark.xfail(
            strict=False, reason="fallback: a polling event loop starves the GIL-based "
            "sampler thread (DECISIONS D13)"))
    r, profiles = gen_run(runner, interp, sampler)
    n = r.truth["names"]
    phase = P.total(profiles, "cpu-time", where=P.stack_contains(n["run_coroutines"])) / 1e9
    truth = r.truth["cpu"]["coroutines"]
    assert C.within(phase, truth, 0.25), "coroutine phase %.3fs vs %.3fs\n%s" % (
        phase, truth, H.summarize(profiles))
    leaf = P.samples_where(profiles, lambda s: H.leaf_name(s) == n["coro_burn"])
    assert leaf, H.summarize(profiles)
    for s in leaf:
        names = [f.name for f in H.strip_native(s.frames)]
        assert names[1:2] == [n["coro_parent"]], "coroutine stack %s" % names
        assert n["run_coroutines"] in names and names[-1] == "<module>", names
    in_coro = sum(s.values[0] for s in leaf) / 1e9
    assert in_coro >= 0.5 * phase, "coro_burn self %.3fs of %.3fs" % (in_coro, phase)


def test_qualified_names(runner, interp, sampler, request):
    if sampler != "native":
        # The same fallback limitation as in test_coroutine_frames (D13): the coroutine
        # phase's CPU can land in the next phase's function (seen once: Shapes.spin
        # 1.08 s of 0.50 s, on 3.13, with the coroutine phase's second missing).
        request.applymarker(pytest.mark.xfail(
            strict=False, reason="fallback: a polling event loop starves the GIL-based "
            "sampler thread (DECISIONS D13)"))
    r, profiles = gen_run(runner, interp, sampler)
    n = r.truth["names"]
    if interp.info >= (3, 11):
        assert n["spin"] == "Shapes.spin" and n["inner"] == "outer.<locals>.inner"
    else:
        assert n["spin"] == "spin" and n["inner"] == "inner"
    selfs = H.self_by_function(profiles, "cpu-time")
    for key, phase in (("spin", "method"), ("inner", "nested")):
        got = selfs.get(n[key], 0) / 1e9
        truth = r.truth["cpu"][phase]
        assert C.within(got, truth, 0.3), "%s: %.3fs vs %.3fs\n%s" % (
            n[key], got, truth, H.summarize(profiles))
    inner = P.samples_where(profiles, lambda s: H.leaf_name(s) == n["inner"])
    assert [f.name for f in H.strip_native(inner[0].frames)][1] == n["outer"]
