"""Assertions shared by several test modules."""

from . import harness as H
from . import pprof_decode as P

SAMPLERS = ("native", "fallback")


def sampler_env(sampler):
    """Environment selecting a sampler ("native" is the default)."""
    return {"DD_PROFILING_STACK_V2_ENABLED": "0"} if sampler == "fallback" else {}


def check_files(run, pid, timeline=True, sampler=None):
    """Files of one process: names, gzip, sample types, metadata (and no
    end_timestamp_ns when the timeline is off). Per-sample labels and frames
    are checked by check_labels, in tests of their own.

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
        if not timeline:
            stamped = [smp for smp in prof.samples if "end_timestamp_ns" in smp.labels]
            assert not stamped, "%s: end_timestamp_ns with the timeline off: %r" % (
                f.path.name, stamped[:2])
        profiles.append(prof)
    assert len(runtime_ids) <= 1, "one process, several runtime ids: %s" % runtime_ids
    return profiles


def sample_problems(s, timeline=True, known_threads=None):
    """What is wrong with one sample's labels, frames and values (a list)."""
    labels = s.labels
    out = []
    if not isinstance(labels.get("thread id"), int) or not labels.get("thread id"):
        out.append("thread id %r" % (labels.get("thread id"),))
    if not isinstance(labels.get("thread native id"), int) or not labels.get("thread native id"):
        out.append("thread native id %r" % (labels.get("thread native id"),))
    if not isinstance(labels.get("thread name"), str):
        out.append("thread name %r" % (labels.get("thread name"),))
    elif (known_threads is not None and labels["thread name"] not in known_threads
          and not labels["thread name"].startswith("emberscope")):
        out.append("unknown thread name %r" % labels["thread name"])
    if timeline and not isinstance(labels.get("end_timestamp_ns"), int):
        out.append("end_timestamp_ns %r" % (labels.get("end_timestamp_ns"),))
    if not timeline and "end_timestamp_ns" in labels:
        out.append("end_timestamp_ns with the timeline off")
    if not s.frames:
        out.append("no frames")
    if any(v < 0 for v in s.values):
        out.append("negative value")
    return out


def check_labels(profiles, timeline=True, known_threads=None):
    """Every sample: numeric non-zero thread id and native id, a string thread
    name (one of known_threads when given), end_timestamp_ns iff timeline, at
    least one frame, no negative value."""
    if isinstance(profiles, P.Profile):
        profiles = [profiles]
    bad = []
    total = 0
    for prof in profiles:
        for s in prof.samples:
            total += 1
            problems = sample_problems(s, timeline, known_threads)
            if problems:
                bad.append((prof.path.rsplit("/", 1)[-1], problems, s))
    assert not bad, "%d of %d samples are incomplete, e.g.:\n%s" % (
        len(bad), total, "\n".join("  %s: %s: %r" % b for b in bad[:6]))


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
