"""Lock profiling: known contention, names, scaling, CPython's own lock test suites, the
wrapped classes call by call against the real ones, fork while locks are held, and a stress
run with allocation and locks together."""

import json
import os

import pytest

from profiler import harness as H
from profiler import pprof_decode as P

from .conftest import workload

HERE = os.path.dirname(os.path.abspath(__file__))


def lock_samples(profs, name_suffix):
    return lambda s: str(s.labels.get("lock name", "")).endswith(name_suffix)


def shared_lock_line():
    with open(workload("lock_contention.py")) as f:
        for i, line in enumerate(f, 1):
            if line.startswith("shared_lock = "):
                return i
    raise AssertionError("no shared_lock line")


@pytest.mark.all_versions
@pytest.mark.parametrize("pct,tol", [(100, 0.10), (20, 0.30)])
def test_contention_totals_estimate_truth(interp, runner, pct, tol):
    # At 20 % capture, 2000 acquisitions give ~400 sampled events (a 30 % tolerance is then
    # over 6 standard errors of the count estimate; with 800 it failed once in a few full runs).
    iters = "400" if pct == 100 else "1000"
    r = runner.run(interp, workload("lock_contention.py"),
                   env={"DD_PROFILING_LOCK_ENABLED": "true", "DD_PROFILING_CAPTURE_PCT": str(pct),
                        "LOCK_ITER": iters}).check_ok()
    truth = r.truth
    profs = r.profiles
    name = "lock_contention.py:%d:shared_lock" % shared_lock_line()
    named = P.with_label("lock name", name)
    assert P.samples_where(profs, named), sorted(set(
        s.labels.get("lock name") for s in P.samples_where(profs, lambda s: "lock name" in s.labels)))
    hold = P.total(profs, "lock-release-hold", named)
    wait = P.total(profs, "lock-acquire-wait", named)
    acquires = P.total(profs, "lock-acquire", named)
    releases = P.total(profs, "lock-release", named)
    assert abs(acquires - truth["acquires"]) / float(truth["acquires"]) < tol, (acquires, truth)
    assert abs(releases - truth["acquires"]) / float(truth["acquires"]) < tol, (releases, truth)
    assert abs(hold - truth["hold_ns"]) / float(truth["hold_ns"]) < tol, (hold, truth)
    # Wait includes the other thread's hold: large, and measured the same way.
    assert abs(wait - truth["wait_ns"]) / float(truth["wait_ns"]) < tol + 0.05, (wait, truth)
    threads = P.by_thread(profs, "lock-acquire", where=named)
    assert set(threads) == {"contender-A", "contender-B"}, threads
    # The stack is the caller's, not the wrapper's.
    for s in P.samples_where(profs, named)[:50]:
        assert s.frames and s.frames[0].name == "contend", s
    if pct == 100:
        attr = P.samples_where(profs, lock_samples(profs, ":_guard"))
        assert attr, "RLock bound to self._guard not named"
        alock = P.samples_where(profs, lock_samples(profs, ":alock"))
        assert alock, "asyncio lock not profiled"
    meta = r.files_of(r.main_pid)[-1].metadata
    assert "_lock_" in meta["profiler_config"] and "CAP%s" % float(pct) in meta["profiler_config"]


@pytest.mark.all_versions
def test_lock_disabled(interp, runner):
    r = runner.run(interp, workload("lock_contention.py"),
                   env={"DD_PROFILING_LOCK_ENABLED": "false", "LOCK_ITER": "50"}).check_ok()
    assert P.total(r.profiles, "lock-acquire") == 0
    meta = r.files_of(r.main_pid)[-1].metadata
    assert meta["lock_collector"] is False
    assert "lock" not in meta["profiler_config"].split("_")


@pytest.mark.all_versions
@pytest.mark.parametrize("pct", ["100", "1"])
def test_cpython_lock_suites_on_wrapped_classes(interp, pct, tmp_path):
    env = H.base_env(interp)
    r = H.run([str(interp.path), "-c", "import test.lock_tests"], env, timeout=60)
    if r.returncode != 0:
        pytest.skip("CPython %s here ships no stdlib test package (test.lock_tests)"
                    % interp.version)
    env["DD_PROFILING_OUTPUT_PPROF"] = str(tmp_path / "prof")
    r = H.run([str(interp.path), os.path.join(HERE, "lock_suite_runner.py"), pct,
               "threading", "asyncio"], env, timeout=900)
    results = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert r.returncode == 0, r.describe(limit=12000)
    assert [x["suite"] for x in results] == ["threading", "asyncio"], r.describe()
    for x in results:
        assert x["run"] > 40 and x["failures"] == 0 and x["errors"] == 0, x


@pytest.mark.all_versions
@pytest.mark.parametrize("pct", ["100", "1"])
def test_wrapped_locks_behave_like_real_ones(interp, pct, tmp_path):
    """The direct (hand-made) methods are installed, and wrapped Lock/RLock answer every
    call as the real ones do: results, argument errors, docs, hasattr, pickling, weak
    references, subclasses, another thread, _at_fork_reinit, Condition's RLock protocol."""
    env = H.base_env(interp)
    env["DD_PROFILING_OUTPUT_PPROF"] = str(tmp_path / "prof")
    r = H.run([str(interp.path), os.path.join(HERE, "lock_suite_runner.py"), pct, "parity"],
              env, timeout=120)
    results = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    assert r.returncode == 0, r.describe(limit=12000)
    assert len(results) == 1 and results[0]["run"] > 150, r.describe()
    assert results[0]["failures"] == 0, r.describe(limit=12000)


@pytest.mark.all_versions
def test_fork_while_locks_are_held(interp, runner):
    r = runner.run(interp, workload("fork_locks.py"),
                   env={"DD_PROFILING_LOCK_ENABLED": "true", "DD_PROFILING_CAPTURE_PCT": "100",
                        "DD_PROFILING_MEMORY_ENABLED": "true",
                        "DD_PROFILING_HEAP_SAMPLE_SIZE": str(64 * 1024)}).check_ok()
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.startswith("{")]
    child = [l for l in lines if "child_problems" in l]
    assert child and child[0]["child_problems"] == [], r.describe()
    truth = r.truth
    assert truth["child_status"] == 0, r.describe()
    child_profs = r.profiles_of(truth["child_pid"])
    # The child starts with an empty heap table: only its own allocations are live.
    assert P.total(child_profs[-1], "heap-space", P.stack_contains("parent_alloc")) == 0
    assert P.total(child_profs[-1], "heap-space", P.stack_contains("child_alloc")) > 10e6
    assert P.total(child_profs, "lock-acquire") > 0
    parent_last = r.profiles[-1]
    assert P.total(parent_last, "heap-space", P.stack_contains("parent_alloc")) > 10e6


@pytest.mark.parametrize("pct", ["100"])
def test_stress_threads_allocating_and_locking(interp, runner, pct):
    r = runner.run(interp, workload("stress_collectors.py"),
                   env={"DD_PROFILING_LOCK_ENABLED": "true", "DD_PROFILING_CAPTURE_PCT": pct,
                        "DD_PROFILING_MEMORY_ENABLED": "true",
                        "DD_PROFILING_HEAP_SAMPLE_SIZE": "16384",
                        "DD_PROFILING_UPLOAD_INTERVAL": "0.5"}, interval=0.5,
                   timeout=180).check_ok()
    profs = r.profiles
    threads = set(P.by_thread(profs, "lock-acquire"))
    assert len([t for t in threads if str(t).startswith("stress-")]) == r.truth["threads"], threads
    athreads = set(P.by_thread(profs, "alloc-samples"))
    assert len([t for t in athreads if str(t).startswith("stress-")]) >= r.truth["threads"] - 1
    # Periods rotate while the stress runs. Not ">= 3": with 100 % capture and direct lock
    # methods (about 4x the lock operations of the pyo3 wrappers in the same 2 s) a period
    # holds a few MB of timeline events and its export takes longer than the 0.5 s interval.
    assert len(r.files_of(r.main_pid)) >= 2
