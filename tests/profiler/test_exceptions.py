"""Exception samples: `exception type` label, raising frame, scaled estimate.

exceptions.py raises 2000 __main__.WorkloadError in raiser() and 1000
__main__.Outer.InnerError in raise_inner(). With
DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL=10 each recorded raise carries
exception-samples = 10, so the totals estimate the true counts: asserted
within +-35 %.

Every version: 3.12+ through sys.monitoring, 3.8-3.11 through the tp_new hook.
"""

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P

INTERVAL = 10
COUNT = 2000
TOLERANCE = 0.35


@pytest.fixture
def exc_interp(interp):
    return interp


def exc_run(runner, interp, sampler="native", **env):
    e = {"DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL": str(INTERVAL)}
    e.update(C.sampler_env(sampler))
    e.update(env)
    r = runner.run(interp, "exceptions.py", (str(COUNT),), env=e)
    r.check_ok()
    return r, C.check_files(r, r.main_pid, sampler=sampler)


def exc_type_is(name):
    return P.with_label("exception type", name)


@pytest.mark.all_versions
@pytest.mark.parametrize("sampler", C.SAMPLERS)
def test_exception_counts_estimated(runner, exc_interp, sampler):
    r, profiles = exc_run(runner, exc_interp, sampler)
    t = r.truth
    counts = P.by_label(profiles, "exception-samples", "exception type")
    lines = []
    ok = True
    for typ, truth in ((t["type"], t["raised"]), (t["type_inner"], t["raised_inner"])):
        est = counts.get(typ, 0)
        lines.append("%s: estimate %d, truth %d" % (typ, est, truth))
        ok = ok and C.within(est, truth, TOLERANCE)
    assert ok, "\n".join(lines) + "\nall exception types: %s" % counts


@pytest.mark.all_versions
def test_exception_samples_at_raising_frame(runner, exc_interp):
    r, profiles = exc_run(runner, exc_interp)
    t = r.truth
    for typ, func, line in ((t["type"], t["names"]["raiser"], t["raise_line"]),
                            (t["type_inner"], t["names"]["raise_inner"], t["raise_inner_line"])):
        samples = P.samples_where(profiles, exc_type_is(typ))
        assert samples, "no exception samples of %s" % typ
        for s in samples:
            frames = H.strip_native(s.frames)
            assert (frames[0].name, frames[0].filename, frames[0].line) == (func, t["file"], line), s
            assert frames[1].name == t["names"]["main"], s
            assert frames[-1].name == "<module>", s
            assert s.labels["thread name"] == "MainThread", s
            assert s.labels["thread id"] == t["main_thread"]["ident"], s
            assert s.labels["thread native id"] == t["main_thread"]["native_id"], s


@pytest.mark.all_versions
def test_exception_sample_values_are_interval_multiples(runner, exc_interp):
    r, profiles = exc_run(runner, exc_interp)
    n = 0
    for prof in profiles:
        ei = prof.type_index("exception-samples")
        for s in prof.samples:
            v = s.values[ei]
            if v:
                n += 1
                assert v % INTERVAL == 0, s
                assert "exception type" in s.labels, s
            else:
                assert "exception type" not in s.labels, s
    assert n > 0


def test_exceptions_disabled(runner, interp):
    r, profiles = exc_run(runner, interp, DD_PROFILING_EXCEPTION_ENABLED="false")
    assert P.total(profiles, "exception-samples") == 0
    assert not P.samples_where(profiles, lambda s: "exception type" in s.labels)
    assert P.total(profiles, "wall-samples") > 0
