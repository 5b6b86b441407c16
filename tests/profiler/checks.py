"""Assertions shared by several test modules."""

from . import harness as H
from . import pprof_decode as P

SAMPLERS = ("native", "fallback")


def sampler_env(sampler):
    """Environment selecting a sampler ("native" is the default)."""
    return {"DD_PROFILING_STACK_V2_ENABLED": "0"} if sampler == "fallback" else {}


def check_files(run, pid, timeline=True, sampler=None):
    """Files of one process: names, gzip, sample types, metadata, labels.

    Returns the decoded profiles in order.
    """
    files = run.files_of(pid)
    seqs = [f.seq for f in files]
    assert seqs == list(range(1, len(files) + 1)), \
        "sequence numbers must start at 1 without gaps: %s" % [f.path.name for f in files]
    profiles = []
    runtime_ids = set()
    for f in files:
        with open(str(f.path), "rb") as fh:
            magic = fh.read(2)
        assert magic == b"\x1f\x8b", "%s is not gzip-compressed" % f.path
        prof = f.profile
        assert prof.sample_type_names == list(H.SAMPLE_TYPES), \
            "%s: sample types %s" % (f.path.name, prof.sample_type_names)
        assert f.metadata_path.exists(), "missing %s" % f.metadata_path.name
        meta = f.metadata
        for key in H.METADATA_KEYS:
            assert key in meta, "%s lacks %r: %s" % (f.metadata_path.name, key, meta)
        assert meta["sampler"] in ("native", "fallback"), meta
        if sampler is not None:
            assert meta["sampler"] == sampler, \
                "%s: sampler %r, expected %r\n%s" % (f.metadata_path.name, meta["sampler"],
                                                     sampler, run.describe())
        assert isinstance(meta["sample_count"], int) and meta["sample_count"] >= 0, meta
        assert isinstance(meta["sampling_interval_us"], (int, float)), meta
        assert meta["sampling_interval_us"] > 0, meta
        assert isinstance(meta["sample_capture_cpu_time_us"], (int, float)), meta
        assert meta["sample_capture_cpu_time_us"] >= 0, meta
        if "runtime_id" in meta:
            runtime_ids.add(meta["runtime_id"])
        check_labels(prof, timeline)
        profiles.append(prof)
    assert len(runtime_ids) <= 1, "one process, several runtime ids: %s" % runtime_ids
    return profiles


def check_labels(prof, timeline=True):
    for s in prof.samples:
        labels = s.labels
        where = "%s: %r" % (prof.path, s)
        assert isinstance(labels.get("thread id"), int), "no numeric 'thread id': " + where
        assert isinstance(labels.get("thread native id"), int), \
            "no numeric 'thread native id': " + where
        assert isinstance(labels.get("thread name"), str), "no string 'thread name': " + where
        if timeline:
            assert isinstance(labels.get("end_timestamp_ns"), int), \
                "no numeric 'end_timestamp_ns': " + where
        else:
            assert "end_timestamp_ns" not in labels, \
                "end_timestamp_ns present with the timeline off: " + where
        assert s.frames, "sample without frames: " + where
        assert all(v >= 0 for v in s.values), "negative value: " + where


def thread_is(name):
    return P.with_label("thread name", name)


def check_thread_identity(profiles, name, ident, native_id):
    """Every sample labelled with thread `name` carries the thread's ident and TID."""
    samples = P.samples_where(profiles, thread_is(name))
    assert samples, "no sample for thread %r; threads seen: %s" % (
        name, sorted(set(str(s.labels.get("thread name")) for p in profiles for s in p.samples)))
    ids = set((s.labels.get("thread id"), s.labels.get("thread native id")) for s in samples)
    assert ids == {(ident, native_id)}, \
        "thread %r: labels (thread id, native id) %s, expected %s" % (name, ids, (ident, native_id))
    return samples


def within(measured, expected, rel):
    return abs(measured - expected) <= rel * expected
