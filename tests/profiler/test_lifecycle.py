"""Exit codes, signals, the final partial profile, bounded shutdown, bad config.

The upload interval is 60 s in these runs, so every profile file comes from
the exit path. "Bounded shutdown": the process is gone at most
SHUTDOWN_BOUND seconds after its last Python statement (or after SIGTERM).
"""

import signal
import time

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P

SHUTDOWN_BOUND = 10.0


def final_profile_has(r, function):
    profiles = C.check_files(r, r.main_pid)
    got = P.total(profiles, "cpu-time", where=P.stack_contains(function))
    assert got > 0, "final profile lacks %s\n%s\n%s" % (function, H.summarize(profiles),
                                                        r.describe())
    return profiles


@pytest.mark.parametrize("how,code", [("3", 3), ("0", 0), ("end", 0), ("raise", 1)])
def test_exit_code_preserved_and_final_profile(runner, interp, how, code):
    plain = runner.run(interp, "exit_code.py", (how, "0.1"), profiling=False)
    assert plain.returncode == code, plain.describe()
    r = runner.run(interp, "exit_code.py", (how, "1.0"))
    r.check_ok(code, traceback_ok=(how == "raise"))
    if how == "raise":
        assert "ExitTestError: uncaught on purpose" in r.stderr, r.describe()
    final_profile_has(r, r.truth["names"]["work"])
    shutdown = r.ended_at - r.truth["exit_monotonic"]
    assert shutdown <= SHUTDOWN_BOUND, "exit took %.1fs\n%s" % (shutdown, r.describe())


@pytest.mark.all_versions
@pytest.mark.parametrize("sampler", C.SAMPLERS)
@pytest.mark.parametrize("how,code", [("end", 0), ("3", 3)])
def test_exit_with_running_daemon_threads(runner, interp, sampler, how, code):
    """Interpreter teardown while daemon threads still burn CPU or sleep: no
    crash, status kept, final profile written, bounded exit."""
    r = runner.run(interp, "exit_code.py", (how, "1.0", "6"), env=C.sampler_env(sampler))
    r.check_ok(code)
    profiles = final_profile_has(r, r.truth["names"]["work"])
    assert P.total(profiles, "cpu-time", where=P.stack_contains("daemon_burn")) > 0
    shutdown = r.ended_at - r.truth["exit_monotonic"]
    assert shutdown <= SHUTDOWN_BOUND, "exit took %.1fs\n%s" % (shutdown, r.describe())


def test_console_script_exit_code(runner, interp, venv_bin):
    """The venv's emberscope-run console script runs another interpreter too."""
    r = runner.run(interp, "exit_code.py", ("3", "0.5"), mode="console")
    r.check_ok(3)
    final_profile_has(r, r.truth["names"]["work"])


def sigterm_run(runner, interp, mode, profiling=True, settle=1.5):
    if profiling:
        prefix = runner.new_prefix("sigterm")
        env = runner.env_for(interp, prefix, interval=60)
        argv = H.command(interp, H.workload("sigterm.py"), (mode,), "run")
    else:
        prefix = None
        env = H.base_env(interp)
        argv = H.command(interp, H.workload("sigterm.py"), (mode,), "plain")
    bg = H.Background(argv, env, prefix)
    try:
        bg.wait_line(lambda line: line == "ready", timeout=60)
        time.sleep(settle)
        sent = time.monotonic()
        bg.signal(signal.SIGTERM)
        bg.wait(timeout=60)
        r = bg.as_run()
        r.signal_sent_at = sent
        return r
    finally:
        bg.close()


@pytest.mark.parametrize("mode,expected", [("default", -signal.SIGTERM), ("handler", 143)])
def test_sigterm_exit_status_and_final_profile(runner, interp, mode, expected):
    plain = sigterm_run(runner, interp, mode, profiling=False, settle=0.2)
    assert plain.returncode == expected, plain.describe()
    r = sigterm_run(runner, interp, mode)
    assert r.returncode == plain.returncode, "with the profiler %s, without %s\n%s" % (
        r.returncode, plain.returncode, r.describe())
    r.check_no_crash()
    if mode == "handler":
        assert "app-handler-ran" in r.stdout, r.describe()
    final_profile_has(r, r.truth["names"]["busy"])
    took = r.ended_at - r.signal_sent_at
    assert took <= SHUTDOWN_BOUND, "exit took %.1fs after SIGTERM\n%s" % (took, r.describe())


BAD_VALUES = [
    ("DD_PROFILING_MAX_FRAMES", "abc", "64"),
    ("DD_PROFILING_UPLOAD_INTERVAL", "soon", "60"),
    ("DD_PROFILING_TIMELINE_ENABLED", "maybe", "true"),
    ("DD_PROFILING_EXCEPTION_SAMPLING_INTERVAL", "0", "100"),
    ("DD_PROFILING_MAX_TIME_USAGE_PCT", "lots", "1"),
    ("DD_PROFILING_STACK_V2_ENABLED", "perhaps", "true"),
]


@pytest.mark.parametrize("var,value,default", BAD_VALUES, ids=[v[0] for v in BAD_VALUES])
def test_bad_configuration_warns_once_and_runs(runner, interp, var, value, default):
    r = runner.run(interp, "deep_recursion.py", ("100", "0.5"), env={var: value})
    r.check_ok()
    lines = [line for line in r.stderr.splitlines() if var in line]
    assert len(lines) == 1, "expected exactly one warning line naming %s\n%s" % (var, r.describe())
    line = lines[0]
    assert value in line and default in line, "warning must name value %r and default %r: %r" % (
        value, default, line)
    assert "default" in line.lower(), line
    profiles = C.check_files(r, r.main_pid)
    assert P.total(profiles, "wall-samples") > 0


def test_bad_max_frames_uses_default(runner, interp):
    """DD_PROFILING_MAX_FRAMES=abc: the profile is truncated at the default 64."""
    r = runner.run(interp, "deep_recursion.py", ("100", "0.5"), env={"DD_PROFILING_MAX_FRAMES": "abc"})
    r.check_ok()
    profiles = C.check_files(r, r.main_pid)
    bottom = r.truth["names"]["bottom"]
    samples = P.samples_where(profiles, lambda s: H.leaf_name(s) == bottom)
    assert samples
    for s in samples:
        assert len(s.frames) == 65 and s.frames[-1].name == "<%d frames omitted>" % (
            r.truth["frames"] - 64), [f.name for f in s.frames[-2:]]


def test_profiling_disabled_writes_nothing(runner, interp):
    r = runner.run(interp, "steady.py", ("0.5", "1"), env={"DD_PROFILING_ENABLED": "false"})
    r.check_ok()
    assert r.files == {}, H.list_dir(r.prefix)
    assert r.stderr.strip() == "", r.describe()


def test_profiling_flag_enables(runner, interp):
    """emberscope-run -p turns profiling on without DD_PROFILING_ENABLED."""
    prefix = runner.new_prefix("flag")
    env = runner.env_for(interp, prefix)
    del env["DD_PROFILING_ENABLED"]
    py = str(interp.path)
    argv = [py, "-m", "emberscope.commands.run", "-p", py, str(H.workload("steady.py")), "0.5", "1"]
    r = H.run(argv, env, prefix)
    r.check_ok()
    C.check_files(r, r.main_pid)


def test_info_prints_configuration(runner, interp):
    py = str(interp.path)
    env = H.base_env(interp)
    env["DD_PROFILING_MAX_FRAMES"] = "77"
    r = H.run([py, "-m", "emberscope.commands.run", "--info"], env)
    r.check_ok()
    assert "DD_PROFILING_MAX_FRAMES" in r.stdout and "77" in r.stdout, r.describe()
    h = H.run([py, "-m", "emberscope.commands.run", "--help"], env)
    h.check_ok()
    for var in ("DD_PROFILING_ENABLED", "DD_PROFILING_OUTPUT_PPROF", "DD_PROFILING_MAX_FRAMES",
                "DD_PROFILING_UPLOAD_INTERVAL", "DD_PROFILING_STACK_V2_ENABLED"):
        assert var in h.stdout, "--help does not document %s" % var
