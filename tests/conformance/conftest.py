"""Fixtures of the ddtrace conformance tests.

* ``zstd``: the ``zstandard`` package in the test interpreter (installed with
  pip on first use; not in tests/requirements.txt on purpose: only these tests
  need it).
* ``ddtrace_venv``: a venv with the real ``ddtrace`` from PyPI
  (``EMBERSCOPE_DDTRACE_SPEC``, default ``ddtrace==4.16.0``, the version the
  reference and fixtures describe), built from the same base interpreter as the
  test venv and cached between runs in ``EMBERSCOPE_DDTRACE_VENV`` (default
  ``/tmp/emberscope-conformance-ddtrace``; not under .testenv/, which
  scripts/build.sh deletes). Skips when it cannot be created (offline).
* ``emberscope_run``: ``.venv/bin/emberscope-run`` (``EMBERSCOPE_RUN``
  overrides) and its interpreter.
* ``run_app``: runs a command with a clean profiling environment and returns
  its pid, exit status, output and timings.
"""

import collections
import fcntl
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOAD = os.path.join(HERE, "workload.py")
DDTRACE_SPEC = os.environ.get("EMBERSCOPE_DDTRACE_SPEC", "ddtrace==4.16.0")
DDTRACE_VENV = os.environ.get("EMBERSCOPE_DDTRACE_VENV", "/tmp/emberscope-conformance-ddtrace")

Result = collections.namedtuple("Result", "pid returncode stdout stderr started ended")


def _pip_install(python, *args, timeout=900):
    return subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
                          + list(args), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def zstd():
    try:
        import zstandard  # noqa: F401
    except ImportError:
        r = _pip_install(sys.executable, "zstandard")
        if r.returncode != 0:
            pytest.skip("cannot install zstandard into %s: %s" % (sys.executable,
                                                                   r.stderr[-500:]))
        import importlib
        importlib.invalidate_caches()
    import zstandard
    return zstandard


def _base_python():
    return getattr(sys, "_base_executable", None) or sys.executable


def _venv_ok(venv):
    py = os.path.join(venv, "bin", "python")
    if not os.access(os.path.join(venv, "bin", "ddtrace-run"), os.X_OK):
        return False
    r = subprocess.run([py, "-c", "import sys, ddtrace; print('%d.%d' % sys.version_info[:2],"
                        " ddtrace.__version__)"], capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        return False
    minor, version = r.stdout.split()
    want = DDTRACE_SPEC.partition("==")[2]
    return minor == "%d.%d" % sys.version_info[:2] and (not want or version == want)


@pytest.fixture(scope="session")
def ddtrace_venv():
    """Path of a venv with ddtrace (created once, cached between runs)."""
    os.makedirs(os.path.dirname(DDTRACE_VENV) or ".", exist_ok=True)
    with open(DDTRACE_VENV + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be creating it
        if not _venv_ok(DDTRACE_VENV):
            subprocess.run(["rm", "-rf", DDTRACE_VENV], check=False)
            r = subprocess.run([_base_python(), "-m", "venv", DDTRACE_VENV],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                pytest.skip("cannot create the ddtrace venv: " + r.stderr[-500:])
            r = _pip_install(os.path.join(DDTRACE_VENV, "bin", "python"), DDTRACE_SPEC)
            if r.returncode != 0 or not _venv_ok(DDTRACE_VENV):
                pytest.skip("cannot install %s from PyPI into %s: %s"
                            % (DDTRACE_SPEC, DDTRACE_VENV, r.stderr[-800:]))
    return DDTRACE_VENV


@pytest.fixture(scope="session")
def emberscope_run():
    """(emberscope-run, python) of the test venv."""
    run = os.environ.get("EMBERSCOPE_RUN") or os.path.join(ROOT, ".venv", "bin", "emberscope-run")
    py = os.path.join(os.path.dirname(run), "python")
    if not os.access(run, os.X_OK):
        pytest.skip("%s missing: build with scripts/build.sh" % run)
    r = subprocess.run([py, "-c", "import emberscope._native"], capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        pytest.fail("emberscope does not import in %s:\n%s" % (py, r.stderr))
    return run, py


def clean_env(**extra):
    """os.environ without any DD_*/EMBERSCOPE_* setting of the caller, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not (k.startswith("DD_") or k.startswith("_DD_") or k.startswith("EMBERSCOPE_")
                   or k in ("PYTHONPATH", "PYTHONHOME"))}
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    return env


def start_app(cmd, env, cwd):
    started = time.time()
    proc = subprocess.Popen(cmd, env=env, cwd=str(cwd), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    return proc, started


def finish_app(proc, started, timeout=90):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("%r did not exit within %s s\nstdout:\n%s\nstderr:\n%s"
                             % (proc.args, timeout, out, err))
    return Result(proc.pid, proc.returncode, out, err, started, time.time())


@pytest.fixture
def run_app(tmp_path):
    def run(cmd, env, cwd=None, timeout=90):
        proc, started = start_app(cmd, env, cwd or tmp_path)
        return finish_app(proc, started, timeout)
    return run
