"""DD_PROFILING_MAX_FRAMES: the leaf-most frames plus `<N frames omitted>`.

deep_recursion.py burns CPU in bottom() below `depth` recursive calls; it
reports the exact number of Python frames on that stack ("frames").
"""

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P

SAMPLER = pytest.mark.parametrize("sampler", C.SAMPLERS)


BUDGET = {"DD_PROFILING_MAX_TIME_USAGE_PCT": "50"}

def bottom_samples(r, profiles):
    name = r.truth["names"]["bottom"]
    samples = [s for s in P.samples_where(profiles, lambda s: H.leaf_name(s) == name)]
    assert len(samples) >= 3, "only %d samples in bottom()\n%s" % (
        len(samples), H.summarize(profiles))
    return samples


def expected_stack(t):
    """[(name, line or None)] of the whole stack in bottom(), leaf first."""
    n = t["names"]
    full = [(n["bottom"], None), (n["recurse"], t["bottom_call_line"])]
    full += [(n["recurse"], t["recurse_line"])] * t["depth"]
    full += [(n["main"], t["main_call_line"]), ("<module>", t["module_call_line"])]
    assert len(full) == t["frames"], (len(full), t["frames"])
    return full


def check_stack(t, frames, expected):
    got = [(f.name, f.line) for f in frames]
    first, last = t["bottom_lines"]
    # The `def` line counts: a frame just entered reports its function's first line.
    assert first <= frames[0].line <= last, frames[0]
    want = [(name, frames[0].line if line is None else line) for name, line in expected]
    if got != want:
        diffs = [(i, g, w) for i, (g, w) in enumerate(zip(got, want)) if g != w]
        raise AssertionError("stack differs from the truth at %d positions, first %s "
                             "(index, got, expected)" % (len(diffs), diffs[:3]))


def check_truncated(r, samples, max_frames):
    t = r.truth
    omitted = t["frames"] - max_frames
    assert omitted > 0
    marker = "<1 frame omitted>" if omitted == 1 else "<%d frames omitted>" % omitted
    expected = expected_stack(t)[:max_frames]
    for s in samples:
        frames = H.strip_native(s.frames)
        names = [f.name for f in frames]
        assert len(frames) == max_frames + 1, \
            "%d frames (expected %d + marker), root side: %s" % (len(frames), max_frames, names[-3:])
        assert names[-1] == marker, "root-side frame %r, expected %r" % (names[-1], marker)
        check_stack(t, frames[:-1], expected)
        assert all(f.filename == t["file"] for f in frames[:-1]), set(f.filename for f in frames)


@pytest.mark.all_versions
@SAMPLER
def test_default_64_frames_and_exact_omitted_count(runner, interp, sampler):
    # These tests check truncation, not the rate: a generous CPU budget keeps the adaptive
    # interval from spacing out the (expensive) 1000-deep samples on a loaded machine.
    r = runner.run(interp, "deep_recursion.py", ("1000", "1.5"),
                   env=dict(C.sampler_env(sampler), **BUDGET))
    r.check_ok()
    profiles = C.check_files(r, r.main_pid, sampler=sampler)
    assert r.truth["frames"] == 1004
    check_truncated(r, bottom_samples(r, profiles), 64)


@pytest.mark.all_versions
def test_one_frame_omitted(runner, interp):
    r = runner.run(interp, "deep_recursion.py", ("100", "1.0"),
                   env={"DD_PROFILING_MAX_FRAMES": "103"})
    r.check_ok()
    profiles = C.check_files(r, r.main_pid)
    assert r.truth["frames"] == 104
    check_truncated(r, bottom_samples(r, profiles), 103)


@pytest.mark.all_versions
@SAMPLER
def test_stack_that_fits_is_complete(runner, interp, sampler):
    """With max frames == the stack depth nothing is omitted: the whole stack,
    leaf first, down to <module>, with every frame's current line."""
    r = runner.run(interp, "deep_recursion.py", ("100", "1.0"),
                   env=dict(C.sampler_env(sampler), DD_PROFILING_MAX_FRAMES="104"))
    r.check_ok()
    profiles = C.check_files(r, r.main_pid, sampler=sampler)
    t = r.truth
    assert t["frames"] == 104
    expected = expected_stack(t)
    for s in bottom_samples(r, profiles):
        frames = H.strip_native(s.frames)
        names = [f.name for f in frames]
        assert len(frames) == 104, names[-5:]
        assert not any("omitted" in n for n in names), names[-3:]
        check_stack(t, frames, expected)
        assert all(f.filename == t["file"] for f in frames), set(f.filename for f in frames)


def test_max_frames_599_with_1000_deep_stack(runner, interp):
    r = runner.run(interp, "deep_recursion.py", ("1000", "1.0"),
                   env=dict(BUDGET, DD_PROFILING_MAX_FRAMES="599"))
    r.check_ok()
    profiles = C.check_files(r, r.main_pid)
    check_truncated(r, bottom_samples(r, profiles), 599)


def test_small_max_frames(runner, interp):
    r = runner.run(interp, "deep_recursion.py", ("100", "1.0"),
                   env={"DD_PROFILING_MAX_FRAMES": "5"})
    r.check_ok()
    profiles = C.check_files(r, r.main_pid)
    check_truncated(r, bottom_samples(r, profiles), 5)
    # Every sample of every thread respects the limit.
    for prof in profiles:
        for s in prof.samples:
            assert len(s.frames) <= 6, s
