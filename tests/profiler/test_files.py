"""Output files: names, sequence, internal metadata, time tiling.

steady.py runs 3.5 s with DD_PROFILING_UPLOAD_INTERVAL=1: several periodic
files and a final one at exit.
"""

import json
import re

import pytest

from . import checks as C
from . import harness as H


def steady_multi(runner, interp, sampler="native"):
    r = runner.run(interp, "steady.py", ("3.5", "2"), env=C.sampler_env(sampler), interval=1)
    r.check_ok()
    return r, C.check_files(r, r.main_pid, sampler=sampler)


def test_file_names_pid_and_sequence(runner, interp):
    r, profiles = steady_multi(runner, interp)
    assert list(r.files) == [r.main_pid], "pids with files: %s" % list(r.files)
    files = r.files_of(r.main_pid)
    assert len(files) >= 3, [f.path.name for f in files]
    names = H.list_dir(r.prefix)
    pat = re.compile(r"^prof\.%d\.(\d+)\.(pprof|internal_metadata\.json)$" % r.main_pid)
    for name in names:
        if name.endswith((".pprof", ".internal_metadata.json")):
            assert pat.match(name), "unexpected file name %r" % name
    for f in files:
        assert f.metadata_path.exists(), f.metadata_path


def test_internal_metadata(runner, interp):
    r, profiles = steady_multi(runner, interp)
    files = r.files_of(r.main_pid)
    metas = [f.metadata for f in files]
    for m in metas:
        assert m["sampler"] == "native", m
        assert "runtime_id" in m and isinstance(m["runtime_id"], str) and m["runtime_id"], m
    assert len(set(m["runtime_id"] for m in metas)) == 1
    # Samples were taken, and the count is reported.
    assert sum(m["sample_count"] for m in metas) > 0, metas
    json.dumps(metas)  # plain JSON values


@pytest.mark.parametrize("sampler", C.SAMPLERS)
def test_consecutive_profiles_tile_time(runner, interp, sampler):
    r, profiles = steady_multi(runner, interp, sampler)
    assert len(profiles) >= 3
    for prev, nxt in zip(profiles, profiles[1:]):
        gap = nxt.time_nanos - prev.end_nanos
        assert gap == 0, "%s ends at %d, %s starts at %d (gap %d ns)" % (
            prev.path, prev.end_nanos, nxt.path, nxt.time_nanos, gap)
    # Periodic files are about one interval long (scheduling slack allowed).
    for prof in profiles[:-1]:
        assert 0.5e9 <= prof.duration_nanos <= 3e9, prof


def test_profile_window_covers_the_run(runner, interp):
    r, profiles = steady_multi(runner, interp)
    t = r.truth
    assert profiles[0].time_nanos <= t["start_ns"], (profiles[0].time_nanos, t["start_ns"])
    assert profiles[-1].end_nanos >= t["end_ns"], (profiles[-1].end_nanos, t["end_ns"])


def test_every_interval_has_samples_of_all_threads(runner, interp):
    r, profiles = steady_multi(runner, interp)
    names = set(th["name"] for th in r.truth["threads"])
    for prof in profiles[1:-1]:
        seen = set(s.labels.get("thread name") for s in prof.samples)
        assert names <= seen, "%s: threads %s, expected %s" % (prof.path, seen, names)
