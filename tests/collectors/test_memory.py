"""Allocation and live-heap profiling against workloads with known truth."""

import pytest

from profiler import pprof_decode as P

from .conftest import workload

pytestmark = pytest.mark.all_versions

SAMPLE = 64 * 1024  # mean bytes between samples: dense enough for tight tolerances


def mem_env(**extra):
    env = {"DD_PROFILING_MEMORY_ENABLED": "true", "DD_PROFILING_HEAP_SAMPLE_SIZE": str(SAMPLE)}
    env.update(dict((k, str(v)) for k, v in extra.items()))
    return env


def test_alloc_space_estimates_known_bytes_and_ratio(interp, runner):
    r = runner.run(interp, workload("alloc_ratio.py"), env=mem_env()).check_ok()
    truth = r.truth
    profs = r.profiles
    big = P.total(profs, "alloc-space", P.stack_contains("alloc_big"))
    small = P.total(profs, "alloc-space", P.stack_contains("alloc_small"))
    assert big and small, P.dump(profs[-1], "alloc-space")
    # ~6000 samples in total: 5 standard deviations stay under these tolerances.
    ratio = big / float(small)
    expected = truth["big_bytes"] / float(truth["small_bytes"])
    assert abs(ratio - expected) / expected < 0.12, (ratio, expected)
    for measured, true in ((big, truth["big_bytes"]), (small, truth["small_bytes"])):
        assert abs(measured - true) / float(true) < 0.12, (measured, true)
    samples = P.samples_where(profs, lambda s: s.labels.get("allocator domain") is not None)
    assert samples
    for s in samples[:200]:
        assert s.labels["allocator domain"] in ("obj", "mem"), s
        assert s.labels.get("thread name") == "MainThread", s
        assert isinstance(s.labels.get("thread id"), int), s
    count = P.total(profs, "alloc-samples", P.stack_contains("alloc_big"))
    n = truth["big_bytes"] // 3057
    # Each iteration allocates the bytearray object, its buffer and (before 3.14) the
    # loop's int: 2n to 3n.
    assert 1.5 * n < count < 4.5 * n, (count, n)
    meta = r.files_of(r.main_pid)[-1].metadata
    assert meta["memory_collector"] is True
    assert "_mem_heap_" in meta["profiler_config"] or meta["profiler_config"].count("mem_heap")


def test_live_heap_estimates_a_growing_cache(interp, runner):
    r = runner.run(interp, workload("heap_growth.py"), env=mem_env()).check_ok()
    truth = r.truth
    last = r.profiles[-1]  # the exit flush carries the live heap at exit
    cache = P.total(last, "heap-space", P.stack_contains("grow_cache"))
    churn = P.total(last, "heap-space", P.stack_contains("churn"))
    live = truth["live_bytes"]
    assert abs(cache - live) / float(live) < 0.15, (cache, live, P.dump(last, "heap-space"))
    # Everything churn allocates is freed: at most a couple of stragglers remain.
    assert churn < 0.05 * live, churn
    churn_alloc = P.total(r.profiles, "alloc-space", P.stack_contains("churn"))
    assert churn_alloc > 5 * live  # it did allocate (and free) a lot
    meta = r.files_of(r.main_pid)[-1].metadata
    assert meta["heap_dropped"] == 0
    assert meta["heap_collector"] is True


def test_heap_disabled_keeps_sampling_rate(interp, runner):
    r = runner.run(interp, workload("alloc_ratio.py"),
                   env=mem_env(DD_PROFILING_HEAP_ENABLED="false")).check_ok()
    profs = r.profiles
    assert P.total(profs, "heap-space") == 0
    n_samples = len(P.samples_where(profs, lambda s: s.labels.get("allocator domain")))
    truth = r.truth
    expected = (truth["big_bytes"] + truth["small_bytes"]) / float(SAMPLE)
    # Not "record every allocation" (the reference's trap): about one sample per SAMPLE bytes.
    assert 0.5 * expected < n_samples < 2.0 * expected, (n_samples, expected)
    meta = r.files_of(r.main_pid)[-1].metadata
    assert "heap" not in meta["profiler_config"].split("_")


def test_memory_disabled(interp, runner):
    r = runner.run(interp, workload("alloc_ratio.py"),
                   env=mem_env(DD_PROFILING_MEMORY_ENABLED="false")).check_ok()
    profs = r.profiles
    assert P.total(profs, "alloc-space") == 0
    assert P.total(profs, "heap-space") == 0
    meta = r.files_of(r.main_pid)[-1].metadata
    assert meta["memory_collector"] is False
    assert "mem" not in meta["profiler_config"].split("_")
