"""Fork: bare os.fork, multiprocessing (fork and spawn), a pre-fork server.

A forked child restarts profiling by itself: files with its own pid, a new
runtime id, a profile that starts empty at the fork (none of the parent's
samples), and its own thread ids.
"""

import os
import signal
import socket
import time
import urllib.request

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P


def runtime_ids(r, pid):
    ids = set(f.metadata.get("runtime_id") for f in r.files_of(pid))
    assert len(ids) == 1 and None not in ids, "pid %d runtime ids %s" % (pid, ids)
    return ids.pop()


def has(profiles, name):
    return P.total(profiles, "wall-samples", where=P.stack_contains(name)) > 0


@pytest.mark.parametrize("how", ["exit", "_exit"])
def test_bare_fork(runner, interp, how):
    # "_exit" skips atexit: the child's files then come from the periodic export.
    interval = 60 if how == "exit" else 1
    r = runner.run(interp, "fork_bare.py", (how, "1.5" if how == "exit" else "3.0"),
                   interval=interval)
    r.check_ok()
    t = r.truth
    assert t["child_status"] == 0, r.describe()
    parent, child = t["parent"], t["child"]
    assert set(r.files) == {parent, child}, "pids with files %s, expected %s" % (
        list(r.files), [parent, child])
    pp = C.check_files(r, parent)
    cp = C.check_files(r, child)
    assert runtime_ids(r, parent) != runtime_ids(r, child)
    # The parent saw its own work, never the child's.
    assert has(pp, "parent_before_fork") and has(pp, "parent_after_fork"), H.summarize(pp)
    assert not has(pp, "child_work"), H.summarize(pp)
    # The child starts from an empty profile at the fork.
    assert has(cp, "child_work"), H.summarize(cp)
    assert not has(cp, "parent_before_fork"), H.summarize(cp)
    assert not has(cp, "parent_after_fork"), H.summarize(cp)
    assert cp[0].time_nanos >= t["fork_ns"], (cp[0].time_nanos, t["fork_ns"])
    early = [s for p in cp for s in p.samples
             if s.labels.get("end_timestamp_ns", t["fork_ns"]) < t["fork_ns"]]
    assert not early, "child samples from before the fork: %s" % early[:3]
    # The child's main thread is the child's own: TID == child pid.
    tids = set(s.labels.get("thread native id") for p in cp for s in p.samples
               if s.labels.get("thread name") == "MainThread")
    assert tids == {child}, "child MainThread native ids %s, child pid %d" % (tids, child)
    C.check_labels(cp, known_threads={"MainThread"})


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_multiprocessing(runner, interp, method):
    r = runner.run(interp, "mp_workers.py", (method, "2.5", "2"), interval=1)
    r.check_ok()
    t = r.truth
    assert t["exitcodes"] == [0, 0], r.describe()
    assert t["reported"] == t["children"]
    pp = C.check_files(r, t["parent"])
    assert has(pp, "parent_warmup")
    assert not has(pp, "mp_child_work")
    ids = {t["parent"]: runtime_ids(r, t["parent"])}
    for child in t["children"]:
        assert child in r.files, "no profile of child %d (%s); pids with files: %s\n%s" % (
            child, method, list(r.files), r.describe())
        cp = C.check_files(r, child)
        assert has(cp, "mp_child_work"), "child %d:\n%s" % (child, H.summarize(cp))
        assert not has(cp, "parent_warmup"), H.summarize(cp)
        ids[child] = runtime_ids(r, child)
    assert len(set(ids.values())) == len(ids), "runtime ids not distinct: %s" % ids


@pytest.mark.all_versions
def test_fork_storm(runner, interp):
    """40 forks while the sampler runs at its highest rate: no child crashes or hangs.

    A child inherits the parent's memory while the profiler's threads are parked at random
    points; its own new threads must not trip over anything they left (this caught a
    SIGSEGV from parking_lot's global wait queue, D10 in docs/DECISIONS.md).
    """
    r = runner.run(interp, "fork_storm.py", ("40",), interval=1,
                   env={"EMBERSCOPE_MAX_SAMPLING_HZ": "1000",
                        "DD_PROFILING_MAX_TIME_USAGE_PCT": "50"}, timeout=240)
    r.check_ok()
    t = r.truth
    bad = [(i, s) for i, s in enumerate(t["statuses"]) if s != 0]
    assert not bad, "children with a non-zero wait status (index, status): %s\n%s" % (
        bad, r.describe())
    assert len(t["statuses"]) == t["forks"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_gunicorn_workers(runner, venv_bin, gunicorn_bin):
    """emberscope-run gunicorn -w 3: every worker writes its own profiles."""
    port = free_port()
    prefix = runner.new_prefix("gunicorn")
    env = H.base_env()
    env.update(H.profiling_env(prefix, interval=1))
    argv = [str(venv_bin / "emberscope-run"), str(gunicorn_bin), "-w", "3", "-b",
            "127.0.0.1:%d" % port, "--chdir", str(H.WORKLOADS), "--graceful-timeout", "10",
            "wsgi_app:app"]
    bg = H.Background(argv, env, prefix)
    try:
        url = "http://127.0.0.1:%d/" % port
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline or bg.proc.poll() is not None:
                    raise AssertionError("gunicorn did not answer\n" + bg.describe())
                time.sleep(0.2)
        served_by = set()
        for _ in range(60):
            with urllib.request.urlopen(url, timeout=10) as resp:
                served_by.add(int(resp.read()))
            time.sleep(0.02)
        time.sleep(2.5)  # at least two export intervals in every worker
        bg.signal(signal.SIGTERM)
        rc = bg.wait(timeout=60)
    finally:
        bg.close()
    r = bg.as_run()
    r.check_no_crash()
    master = bg.proc.pid
    files = H.collect(prefix)
    workers = set(files) - {master}
    assert master in files, "no profile of the master %d: %s\n%s" % (master, list(files), r.describe())
    assert len(workers) >= 3, "profiles from %d worker pids %s (master %d)\n%s" % (
        len(workers), sorted(workers), master, r.describe())
    assert served_by <= workers, "workers %s served requests but wrote no profile\n%s" % (
        served_by - workers, r.describe())
    handled = 0
    runtime = set()
    for pid in workers:
        profiles = C.check_files(r, pid)
        handled += P.total(profiles, "cpu-time", where=P.stack_contains("handle_request"))
        runtime.add(files[pid][0].metadata.get("runtime_id"))
    assert handled > 0, "no worker profile contains handle_request"
    assert len(runtime) == len(workers), "worker runtime ids not distinct: %s" % runtime
    assert rc == 0, r.describe()
