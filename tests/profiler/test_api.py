"""The Python API (Profiler, emberscope.profiling.auto), sitecustomize chaining
and `emberscope-run python -m`."""

import pytest

from . import checks as C
from . import harness as H
from . import pprof_decode as P


def api_run(runner, interp, mode):
    """api_app.py under the plain interpreter, output prefix in the environment
    (DD_PROFILING_ENABLED is not set: the API starts profiling by itself)."""
    prefix = runner.new_prefix("api-" + mode)
    env = H.base_env(interp)
    env["DD_PROFILING_OUTPUT_PPROF"] = str(prefix)
    env["DD_PROFILING_UPLOAD_INTERVAL"] = "60"
    r = H.run(H.command(interp, H.workload("api_app.py"), (mode,), "plain"), env, prefix)
    r.check_ok()
    return r


def test_start_twice_warns_and_is_ignored(runner, interp):
    r = api_run(runner, interp, "twice")
    err = r.stderr.splitlines()
    begin = err.index("MARK:second-start-begin")
    end = err.index("MARK:second-start-end")
    between = [line for line in err[begin + 1:end] if line.strip()]
    assert len(between) == 1, "expected one warning line for the second start\n" + r.describe()
    assert "emberscope" in between[0].lower(), between
    profiles = C.check_files(r, r.main_pid)
    assert P.total(profiles, "cpu-time", where=P.stack_contains(r.truth["names"]["work"])) > 0
    # One profiler: every sample once (a second sampler would double the wall time).
    wall = P.total(profiles, "wall-time", where=C.thread_is("MainThread")) / 1e9
    span = sum(p.duration_nanos for p in profiles) / 1e9
    assert wall <= 1.25 * span, "MainThread wall %.2fs in %.2fs of profile" % (wall, span)


@pytest.mark.parametrize("mode", ["context", "stop"])
def test_stop_flushes_and_stops(runner, interp, mode):
    r = api_run(runner, interp, mode)
    t = r.truth
    assert t["files_after_stop"] >= 1, "no profile file right after stop\n" + r.describe()
    assert t["files_at_end"] == t["files_after_stop"], r.describe()
    if mode == "context":
        assert t["enter_returns_profiler"] is True
    profiles = C.check_files(r, r.main_pid)
    assert len(profiles) == t["files_after_stop"], "files written after stop()"
    assert P.total(profiles, "cpu-time", where=P.stack_contains(t["names"]["work"])) > 0
    assert not P.samples_where(profiles, P.stack_contains(t["names"]["after"])), \
        "samples taken after the profiler stopped"


def test_auto_import_starts_profiling(runner, interp):
    r = api_run(runner, interp, "auto")
    profiles = C.check_files(r, r.main_pid)
    assert P.total(profiles, "cpu-time", where=P.stack_contains(r.truth["names"]["work"])) > 0


def test_app_sitecustomize_still_runs(runner, interp):
    app_dir = H.WORKLOADS / "sitecustom_app"
    plain = runner.run(interp, app_dir / "app.py", profiling=False, extra_pythonpath=[app_dir])
    plain.check_ok()
    assert plain.truth["app_sitecustomize_runs"] == 1, plain.describe()
    r = runner.run(interp, app_dir / "app.py", extra_pythonpath=[app_dir])
    r.check_ok()
    t = r.truth
    assert t["app_sitecustomize_runs"] == 1, "the app's sitecustomize ran %d times\n%s" % (
        t["app_sitecustomize_runs"], r.describe())
    assert t["app_sitecustomize_pid"] == str(t["pid"])
    assert t["emberscope_loaded"] is True, "profiler not started before the app"
    profiles = C.check_files(r, r.main_pid)
    assert P.total(profiles, "cpu-time", where=P.stack_contains("app_work")) > 0


def test_run_module(runner, interp):
    """emberscope-run python -m modpkg (the package runs with its arguments)."""
    r = runner.run(interp, ["-m", "modpkg"], ("1.0",), cwd=H.WORKLOADS)
    r.check_ok()
    assert r.truth["argv"] == ["1.0"]
    profiles = C.check_files(r, r.main_pid)
    assert P.total(profiles, "cpu-time", where=P.stack_contains("modpkg_work")) > 0


def test_console_script_in_venv(runner, venv_interp):
    """`emberscope-run python app.py` with the wheel installed in a venv."""
    r = runner.run(venv_interp, "steady.py", ("1.0", "1"), mode="console")
    r.check_ok()
    profiles = C.check_files(r, r.main_pid, sampler="native")
    assert P.total(profiles, "cpu-time", where=P.stack_contains("steady_work")) > 0
