"""CPU and wall-time attribution, thread labels and frames (sampler correctness).

Runs on every CPython version, with the native sampler and with the fallback
sampler (DD_PROFILING_STACK_V2_ENABLED=0), which must give the same profiles.

Tolerances:
- CPU share of burn_a in burn_a+burn_b (truth ~2/3): +-0.08 absolute.
- A thread's total CPU in the profile vs its time.thread_time(): +-25 %.
- A thread's total wall time vs its measured lifetime: +-25 %.
- A sleeping thread's CPU: at most 5 % of its wall time.
"""

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P

pytestmark = pytest.mark.all_versions

SAMPLER = pytest.mark.parametrize("sampler", C.SAMPLERS)


def cpu_split(runner, interp, sampler):
    r = runner.run(interp, "cpu_split.py", ("3", "3"), env=C.sampler_env(sampler))
    r.check_ok()
    return r, C.check_files(r, r.main_pid, sampler=sampler)


def sleepers(runner, interp, sampler):
    r = runner.run(interp, "sleeping_threads.py", ("2.5",), env=C.sampler_env(sampler))
    r.check_ok()
    return r, C.check_files(r, r.main_pid, sampler=sampler)


@SAMPLER
def test_files_sample_types_and_metadata(runner, interp, sampler):
    r, profiles = cpu_split(runner, interp, sampler)
    assert len(profiles) >= 1
    assert sum(len(p.samples) for p in profiles) > 0, r.describe()


@SAMPLER
@pytest.mark.parametrize("workload", ["cpu_split", "sleepers"])
def test_every_sample_complete(runner, interp, sampler, workload):
    """Every sample has frames, the thread's id, native id and (known) name,
    and an end timestamp."""
    r, profiles = (cpu_split if workload == "cpu_split" else sleepers)(runner, interp, sampler)
    threads = r.truth["threads"]
    names = [th["name"] for th in (threads.values() if isinstance(threads, dict) else threads)]
    C.check_labels(profiles, known_threads=set(names) | {"MainThread"})


@SAMPLER
def test_cpu_split_two_to_one(runner, interp, sampler):
    r, profiles = cpu_split(runner, interp, sampler)
    t = r.truth
    name_a, name_b = t["names"]["a"], t["names"]["b"]
    true_a = sum(th["cpu_a"] for th in t["threads"])
    true_b = sum(th["cpu_b"] for th in t["threads"])
    selfs = H.self_by_function(profiles, "cpu-time")
    got_a, got_b = selfs.get(name_a, 0), selfs.get(name_b, 0)
    assert got_a > 0 and got_b > 0, H.summarize(profiles)
    true_share = true_a / (true_a + true_b)
    share = got_a / float(got_a + got_b)
    assert abs(share - true_share) <= 0.08, (
        "burn_a CPU share %.3f, truth %.3f (a=%s b=%s, truth a=%.3fs b=%.3fs)\n%s"
        % (share, true_share, H.fmt_ns(got_a), H.fmt_ns(got_b), true_a, true_b,
           H.summarize(profiles)))
    # The two functions account for nearly all of the workers' CPU.
    workers = [th["name"] for th in t["threads"]]
    worker_cpu = P.total(profiles, "cpu-time", where=lambda s: s.labels.get("thread name") in workers)
    assert got_a + got_b >= 0.8 * worker_cpu, H.summarize(profiles)


@SAMPLER
def test_cpu_per_thread_matches_thread_time(runner, interp, sampler):
    r, profiles = cpu_split(runner, interp, sampler)
    cpu = P.by_thread(profiles, "cpu-time")
    lines = []
    ok = True
    for th in r.truth["threads"]:
        got = cpu.get(th["name"], 0) / 1e9
        lines.append("%s: profile %.3fs, thread_time %.3fs" % (th["name"], got, th["cpu_total"]))
        ok = ok and C.within(got, th["cpu_total"], 0.25)
    assert ok, "\n".join(lines) + "\n" + H.summarize(profiles)


@SAMPLER
def test_cpu_split_per_thread_share(runner, interp, sampler):
    """Each worker thread on its own has burn_a ~2/3 of burn_a+burn_b. +-0.20:
    a third of the samples, and CPU arrives in scheduler-sized lumps on a
    loaded machine (0.13-0.18 deviations were seen under load); this catches
    gross per-thread misattribution, the +-0.08 test above the accuracy."""
    r, profiles = cpu_split(runner, interp, sampler)
    t = r.truth
    for th in t["threads"]:
        selfs = H.self_by_function(profiles, "cpu-time", where=C.thread_is(th["name"]))
        a, b = selfs.get(t["names"]["a"], 0), selfs.get(t["names"]["b"], 0)
        assert a + b > 0, "%s: %s" % (th["name"], selfs)
        share = a / float(a + b)
        truth = th["cpu_a"] / (th["cpu_a"] + th["cpu_b"])
        assert abs(share - truth) <= 0.20, "%s: share %.3f truth %.3f" % (th["name"], share, truth)


@SAMPLER
def test_thread_labels_match_threading(runner, interp, sampler):
    r, profiles = cpu_split(runner, interp, sampler)
    t = r.truth
    for th in t["threads"]:
        C.check_thread_identity(profiles, th["name"], th["ident"], th["native_id"])
    m = t["main"]
    C.check_thread_identity(profiles, "MainThread", m["ident"], m["native_id"])
    assert m["native_id"] == r.main_pid


@SAMPLER
def test_frames_names_files_lines(runner, interp, sampler):
    """Leaf-first frames with (qual)names, absolute filenames, current lines."""
    r, profiles = cpu_split(runner, interp, sampler)
    t = r.truth
    name_a = t["names"]["a"]
    first, last = t["lines"]["a"]
    samples = P.samples_where(profiles, lambda s: H.leaf_name(s) == name_a)
    assert samples, H.summarize(profiles)
    py311 = interp.info >= (3, 11)
    run_name = "Thread.run" if py311 else "run"
    bootstrap = "Thread._bootstrap" if py311 else "_bootstrap"
    for s in samples:
        frames = H.strip_native(s.frames)
        leaf = frames[0]
        assert leaf.filename == t["file"], s
        # The `def` line is valid too: a frame just entered (3.11+: at its RESUME; before:
        # f_lasti -1) reports the function's first line, as sys._getframe().f_lineno does.
        assert first <= leaf.line <= last, "line %d outside burn_a (%d-%d)" % (
            leaf.line, first, last)
        names = [f.name for f in frames]
        assert names[1] == "worker", names
        assert frames[1].filename == t["file"]
        assert run_name in names, names
        assert names[-1] == bootstrap, names
        for f in frames:
            assert f.filename.startswith("/") or f.filename.startswith("<"), f
        threading_frames = [f for f in frames if f.name == run_name]
        assert threading_frames[0].filename.endswith("threading.py"), threading_frames


@SAMPLER
def test_sleeping_thread_wall_but_no_cpu(runner, interp, sampler):
    r, profiles = sleepers(runner, interp, sampler)
    th = r.truth["threads"]["sleeper"]
    wall = P.total(profiles, "wall-time", where=C.thread_is("sleeper")) / 1e9
    cpu = P.total(profiles, "cpu-time", where=C.thread_is("sleeper")) / 1e9
    assert C.within(wall, th["elapsed"], 0.25), \
        "sleeper wall %.3fs, elapsed %.3fs\n%s" % (wall, th["elapsed"], H.summarize(profiles, "wall-time"))
    assert cpu <= 0.05 * th["elapsed"], "sleeper cpu %.3fs (thread_time %.4fs)" % (cpu, th["cpu"])
    in_sleep = P.total(profiles, "wall-time", where=P.all_of(
        C.thread_is("sleeper"), P.stack_contains(r.truth["names"]["sleep"]))) / 1e9
    assert in_sleep >= 0.9 * wall, "only %.3fs of %.3fs wall in sleep_here" % (in_sleep, wall)


@SAMPLER
def test_spinning_thread_wall_and_cpu(runner, interp, sampler):
    r, profiles = sleepers(runner, interp, sampler)
    th = r.truth["threads"]["spinner"]
    wall = P.total(profiles, "wall-time", where=C.thread_is("spinner")) / 1e9
    cpu = P.total(profiles, "cpu-time", where=C.thread_is("spinner")) / 1e9
    assert C.within(wall, th["elapsed"], 0.25), "spinner wall %.3fs, elapsed %.3fs" % (
        wall, th["elapsed"])
    assert C.within(cpu, th["cpu_total"], 0.25), "spinner cpu %.3fs, thread_time %.3fs" % (
        cpu, th["cpu_total"])
    spin_self = H.self_by_function(profiles, "cpu-time", where=C.thread_is("spinner")).get(
        r.truth["names"]["spin"], 0) / 1e9
    assert spin_self >= 0.8 * cpu, H.summarize(profiles)


@SAMPLER
def test_wall_samples_count_matches_cpu_samples(runner, interp, sampler):
    """cpu-samples and wall-samples count the same stack samples."""
    r, profiles = sleepers(runner, interp, sampler)
    for prof in profiles:
        ci, wi = prof.type_index("cpu-samples"), prof.type_index("wall-samples")
        for s in prof.samples:
            assert s.values[ci] == s.values[wi], s


@SAMPLER
def test_thread_names_unicode_and_ids(runner, interp, sampler):
    r, profiles = sleepers(runner, interp, sampler)
    t = r.truth
    for name, th in t["threads"].items():
        C.check_thread_identity(profiles, name, th["ident"], th["native_id"])
        wall = P.total(profiles, "wall-time", where=C.thread_is(name))
        assert wall > 0, name
    m = t["main"]
    C.check_thread_identity(profiles, "MainThread", m["ident"], m["native_id"])
