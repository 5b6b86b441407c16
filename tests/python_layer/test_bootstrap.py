"""The sitecustomize bootstrap installed by emberscope-run."""

import os
import sys

import pytest

from pyl_helpers import (BOOTSTRAP_DIR, PACKAGE_DIR, PYTHON_DIR, clean_env, launcher,
                         native_built, run, stderr_lines)

NATIVE = native_built()

NATIVE_WARNING = "emberscope: native extension unavailable: "


def _app_dir(tmp_path, body):
    app = tmp_path / "app"
    app.mkdir()
    (app / "sitecustomize.py").write_text(body)
    return app


def _env_with(app, extra=None):
    return clean_env(extra, pythonpath=os.pathsep.join([PYTHON_DIR, str(app)]))


def assert_profiling_outcome(result, tmp_path=None):
    """Without a build: exactly one 'native extension unavailable' line.
    With a build: no such line (the real profiler ran)."""
    lines = stderr_lines(result)
    if NATIVE:
        assert not any("native extension unavailable" in l for l in lines), lines
    else:
        assert len(lines) == 1 and lines[0].startswith(NATIVE_WARNING), lines
        assert lines[0].endswith("; profiling disabled")


def pprof_env(tmp_path, extra=None):
    env = {"DD_PROFILING_OUTPUT_PPROF": str(tmp_path / "prof")}  # never upload in tests
    env.update(extra or {})
    return env


def test_application_sitecustomize_still_runs(tmp_path):
    marker = tmp_path / "marker"
    app = _app_dir(tmp_path, "open(%r, 'w').write('ran')\nAPP_SITECUSTOMIZE = True\n" % str(marker))
    code = ("import sys, sitecustomize\n"
            "print(getattr(sitecustomize, 'APP_SITECUSTOMIZE', False))\n"
            "print(sitecustomize.__file__)\n"
            "print(%r in sys.path)\n" % BOOTSTRAP_DIR)
    result = run([sys.executable, "-m", "emberscope.commands.run", sys.executable, "-c", code],
                 env=_env_with(app))
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "ran"
    lines = result.stdout.splitlines()
    assert lines[0] == "True"
    assert lines[1] == str(app / "sitecustomize.py")
    assert lines[2] == "True"  # our directory is put back on sys.path
    assert result.stderr == ""


def test_application_sitecustomize_runs_with_profiling_enabled(tmp_path):
    marker = tmp_path / "marker"
    app = _app_dir(tmp_path, "open(%r, 'w').write('ran')\n" % str(marker))
    result = run([sys.executable, "-m", "emberscope.commands.run", "-p", sys.executable, "-c",
                  "print('app ok')"], env=_env_with(app, pprof_env(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert marker.read_text() == "ran"
    assert result.stdout == "app ok\n"
    # without a built extension: one warning line, the application is unaffected
    assert_profiling_outcome(result)


def test_failing_application_sitecustomize_reported_like_site(tmp_path):
    app = _app_dir(tmp_path, "raise ValueError('boom')\n")
    result = run([sys.executable, "-m", "emberscope.commands.run", sys.executable, "-c",
                  "print('app ok')"], env=_env_with(app))
    assert result.returncode == 0
    assert result.stdout == "app ok\n"
    assert "Error in sitecustomize; set PYTHONVERBOSE for traceback:" in result.stderr
    assert "ValueError: boom" in result.stderr


def test_no_application_sitecustomize_and_profiling_off_is_silent():
    code = "import sitecustomize; print(sitecustomize.__file__)"
    result = launcher(sys.executable, "-c", code)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.strip() == os.path.join(BOOTSTRAP_DIR, "sitecustomize.py")


def test_profiling_not_started_when_disabled(tmp_path):
    code = "import sys; print('emberscope.profiling.auto' in sys.modules)"
    result = launcher(sys.executable, "-c", code)
    assert result.stdout.strip() == "False"
    result = launcher(sys.executable, "-c", code,
                      extra_env=pprof_env(tmp_path, {"DD_PROFILING_ENABLED": "true"}))
    assert result.stdout.strip() == "True"
    assert_profiling_outcome(result)


def test_bad_enabled_value_warns_once_and_does_not_start():
    code = "import sys; print('emberscope.profiling.auto' in sys.modules)"
    result = launcher(sys.executable, "-c", code, extra_env={"DD_PROFILING_ENABLED": "sure"})
    assert result.returncode == 0
    assert result.stdout.strip() == "False"
    assert stderr_lines(result) == [
        "emberscope: DD_PROFILING_ENABLED='sure' is not a boolean (use 1/0, true/false, yes/no "
        "or on/off); using the default false"]


def test_package_loaded_when_only_the_bootstrap_dir_is_on_the_path(tmp_path):
    code = ("import sys, emberscope, emberscope.profiling.auto\n"
            "print(emberscope.__file__)\n"
            "print(%r in sys.path)\n" % PYTHON_DIR)
    env = clean_env(pprof_env(tmp_path, {"DD_PROFILING_ENABLED": "1"}), pythonpath=BOOTSTRAP_DIR)
    # An interpreter without emberscope installed (the test venv has the wheel in it).
    python = getattr(sys, "_base_executable", None) or sys.executable
    result = run([python, "-c", code], env=env, cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == os.path.join(PACKAGE_DIR, "__init__.py")
    assert lines[1] == "False"  # the package's parent is not added to sys.path
    assert_profiling_outcome(result)


@pytest.mark.skipif(NATIVE, reason="the native extension is built")
def test_import_auto_without_native_never_raises():
    code = ("import emberscope.profiling.auto as auto\n"
            "print(auto.profiler, auto.start_profiler())\n")
    result = run([sys.executable, "-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None None"
    lines = stderr_lines(result)
    assert len(lines) == 1 and lines[0].startswith(NATIVE_WARNING)


def test_debug_flag_logs_to_stderr(tmp_path):
    result = launcher("-d", "-p", sys.executable, "-c", "pass", extra_env=pprof_env(tmp_path))
    assert result.returncode == 0
    assert "emberscope: DEBUG: exec " in result.stderr
    if not NATIVE:
        assert "native extension unavailable" in result.stderr
