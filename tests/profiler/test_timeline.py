"""Timeline labels (end_timestamp_ns) and DD_PROFILING_TIMELINE_ENABLED.

steady.py runs 3.5 s in three threads with a 1 s upload interval, so each
process writes several files.
"""

import collections

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P

SAMPLER = pytest.mark.parametrize("sampler", C.SAMPLERS)


def steady_multi(runner, interp, sampler="native"):
    r = runner.run(interp, "steady.py", ("3.5", "2"), env=C.sampler_env(sampler), interval=1)
    r.check_ok()
    return r, C.check_files(r, r.main_pid, sampler=sampler)


@pytest.mark.all_versions
@SAMPLER
def test_timestamps_within_profile_window(runner, interp, sampler):
    r, profiles = steady_multi(runner, interp, sampler)
    assert len(profiles) >= 3, [p.path for p in profiles]
    for prof in profiles:
        start, end = prof.time_nanos, prof.end_nanos
        assert prof.duration_nanos > 0, prof
        stamps = [s.labels["end_timestamp_ns"] for s in prof.samples if "end_timestamp_ns" in s.labels]
        assert stamps, prof
        bad = [ts for ts in stamps if not start <= ts <= end]
        assert not bad, "%s: %d of %d timestamps outside [%d, %d], e.g. %s (offsets %s ns)" % (
            prof.path, len(bad), len(prof.samples), start, end, bad[:3],
            [b - start if b < start else b - end for b in bad[:3]])


@pytest.mark.all_versions
@SAMPLER
def test_timestamps_are_epoch_nanoseconds(runner, interp, sampler):
    r, profiles = steady_multi(runner, interp, sampler)
    lo, hi = r.truth["start_ns"] - 10 * 10**9, r.truth["end_ns"] + 10 * 10**9
    for prof in profiles:
        assert lo <= prof.time_nanos <= hi, prof
        for s in prof.samples:
            if "end_timestamp_ns" in s.labels:
                assert lo <= s.labels["end_timestamp_ns"] <= hi, s


@pytest.mark.all_versions
@SAMPLER
def test_timestamps_monotone_per_thread(runner, interp, sampler):
    """Per thread: stack samples have distinct timestamps, and every file's
    timestamps come after the previous file's."""
    r, profiles = steady_multi(runner, interp, sampler)
    last_seen = {}
    for prof in profiles:
        wi = prof.type_index("wall-samples")
        per_thread = collections.defaultdict(list)
        for s in prof.samples:
            if s.values[wi] and "end_timestamp_ns" in s.labels:
                per_thread[s.labels.get("thread native id")].append(s.labels["end_timestamp_ns"])
        for tid, stamps in per_thread.items():
            dupes = [ts for ts, n in collections.Counter(stamps).items() if n > 1]
            assert not dupes, "thread %s: several stack samples at the same time %s" % (tid, dupes[:3])
            if tid in last_seen:
                assert min(stamps) > last_seen[tid], \
                    "thread %s: %s starts at %d, before the previous file's last sample %d" % (
                        tid, prof.path, min(stamps), last_seen[tid])
            last_seen[tid] = max(stamps)


@pytest.mark.all_versions
@SAMPLER
def test_wall_time_matches_timestamp_gaps(runner, interp, sampler):
    """A stack sample's wall-time is the time since the thread's previous
    sample: over a thread's samples, the sum of wall-time equals the span of
    its timestamps plus its first sample's wall-time (+-10 %)."""
    r, profiles = steady_multi(runner, interp, sampler)
    per_thread = collections.defaultdict(list)
    for prof in profiles:
        wi = prof.type_index("wall-time")
        for s in prof.samples:
            if s.values[prof.type_index("wall-samples")] and "end_timestamp_ns" in s.labels:
                per_thread[s.labels.get("thread name")].append((s.labels["end_timestamp_ns"],
                                                            s.values[wi]))
    for name, items in per_thread.items():
        items.sort()
        if len(items) < 20:
            continue
        span = items[-1][0] - items[0][0] + items[0][1]
        wall = sum(w for _ts, w in items)
        assert C.within(wall, span, 0.10), "%s: wall sum %s vs timestamp span %s" % (
            name, H.fmt_ns(wall), H.fmt_ns(span))


@pytest.mark.all_versions
def test_timeline_off_drops_end_timestamp(runner, interp):
    r = runner.run(interp, "steady.py", ("1.5", "2"), env={"DD_PROFILING_TIMELINE_ENABLED": "false"})
    r.check_ok()
    profiles = C.check_files(r, r.main_pid, timeline=False)
    assert sum(len(p.samples) for p in profiles) > 0
    C.check_labels(profiles, timeline=False)


@pytest.mark.parametrize("value", ["0", "no", "off", "FALSE"])
def test_timeline_off_boolean_spellings(runner, interp, value):
    r = runner.run(interp, "steady.py", ("1", "1"), env={"DD_PROFILING_TIMELINE_ENABLED": value})
    r.check_ok()
    assert "DD_PROFILING_TIMELINE_ENABLED" not in r.stderr, r.describe()
    C.check_files(r, r.main_pid, timeline=False)


@pytest.mark.parametrize("value", ["1", "yes", "on", "True"])
def test_timeline_on_boolean_spellings(runner, interp, value):
    r = runner.run(interp, "steady.py", ("1", "1"), env={"DD_PROFILING_TIMELINE_ENABLED": value})
    r.check_ok()
    assert "DD_PROFILING_TIMELINE_ENABLED" not in r.stderr, r.describe()
    C.check_files(r, r.main_pid, timeline=True)


def test_timeline_off_aggregates_identical_samples(runner, interp):
    """Like the reference: without timestamps, identical stack + labels are
    one sample."""
    r = runner.run(interp, "steady.py", ("1.5", "2"), env={"DD_PROFILING_TIMELINE_ENABLED": "false"})
    r.check_ok()
    for prof in C.check_files(r, r.main_pid, timeline=False):
        seen = collections.Counter(
            (tuple(s.location_ids), tuple(sorted((l.key, l.value) for l in s.label_list)))
            for s in prof.samples)
        dupes = [k for k, n in seen.items() if n > 1]
        assert not dupes, "%s: %d duplicated stack+labels, e.g. %s" % (prof.path, len(dupes),
                                                                        dupes[:1])
        assert P.total(prof, "wall-samples") >= len(prof.samples)
