"""Fixtures of the end-to-end profiler tests.

Interpreters: ``EMBERSCOPE_TEST_PYTHONS_DIR`` holds ``python3.8`` ... ``python3.14``
(default ``.pythons/bin``); ``EMBERSCOPE_TEST_VERSIONS`` ("3.8 3.14") limits them.
The unpacked abi3 wheel is taken from ``EMBERSCOPE_TEST_SITE`` (default
``.testenv/site``) and put on PYTHONPATH.

Parametrisation (issue #2, "Tests"): a test that takes the ``interp`` fixture
runs on the oldest and the newest version (and on the oldest/newest available
one when an edge version is missing); a test marked ``all_versions`` (the
sampler's correctness tests) runs on every version. A missing interpreter is a
visible skip naming the version and the folder searched.
"""

import itertools
import os
import subprocess
import sys

import pytest

from . import harness as H


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "all_versions: run on every CPython 3.8-3.14 (sampler correctness)")


def pytest_generate_tests(metafunc):
    if "interp" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("all_versions"):
        versions = H.selected_versions()
    else:
        versions = H.edge_versions()
    if not versions:
        versions = ["none"]
    metafunc.parametrize("interp", versions, indirect=True,
                         ids=["py" + v for v in versions], scope="function")


_site_checked = {}


@pytest.fixture
def interp(request):
    version = request.param
    if version == "none":
        pytest.skip("EMBERSCOPE_TEST_VERSIONS=%r selects no supported version"
                    % os.environ.get("EMBERSCOPE_TEST_VERSIONS"))
    path = H.interpreter_path(version)
    if path is None:
        pytest.skip("CPython %s not found in %s (run tools/install-pythons.sh)"
                    % (version, H.pythons_dir()))
    problem = H.site_problem()
    if problem:
        pytest.skip("emberscope wheel not available: " + problem)
    it = H.Interp(version, path, H.site_dir())
    if version not in _site_checked:
        env = H.base_env(it)
        r = H.run([str(path), "-c", "import emberscope.profiling, emberscope._native"], env,
                  timeout=60)
        _site_checked[version] = r
    r = _site_checked[version]
    if r.returncode != 0:
        pytest.fail("emberscope does not import on CPython %s\n%s" % (version, r.describe()))
    return it


class Runner(object):
    """Runs workloads, each in its own output folder; identical runs are shared
    between tests of one session (``cache=True``) to keep the suite short."""

    def __init__(self, tmp_factory):
        self.tmp_factory = tmp_factory
        self.cache = {}
        self.counter = itertools.count()

    def new_prefix(self, label="run"):
        d = self.tmp_factory.mktemp("%s-%d" % (label, next(self.counter)))
        return d / "prof"

    def run(self, interp, script, args=(), env=None, mode="run", interval=60, profiling=True,
            timeout=H.DEFAULT_TIMEOUT, cwd=None, extra_pythonpath=(), cache=True):
        env = dict(env or {})
        key = (interp.version, str(script), tuple(args), tuple(sorted(env.items())), mode,
               interval, profiling, str(cwd), tuple(str(p) for p in extra_pythonpath))
        if cache and key in self.cache:
            return self.cache[key]
        if isinstance(script, (list, tuple)):  # e.g. ["-m", "pkg"]
            target, label = list(script), "module"
        else:
            target = script if os.path.isabs(str(script)) else H.workload(script)
            label = os.path.basename(str(script)).split(".")[0]
        prefix = self.new_prefix(label) if profiling else None
        full_env = H.base_env(interp, extra_pythonpath)
        if profiling:
            full_env.update(H.profiling_env(prefix, interval))
        full_env.update(env)
        argv = H.command(interp, target, args, mode if profiling or mode != "run" else "plain")
        r = H.run(argv, full_env, prefix, timeout=timeout, cwd=cwd)
        if cache:
            self.cache[key] = r
        return r

    def env_for(self, interp, prefix, interval=60, extra_pythonpath=(), **extra):
        env = H.base_env(interp, extra_pythonpath)
        env.update(H.profiling_env(prefix, interval, **extra))
        return env


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    return Runner(tmp_path_factory)


@pytest.fixture(scope="session")
def venv_bin():
    bin_dir = H.VENV_BIN
    if not (bin_dir / "python").exists():
        pytest.skip("no test venv at %s" % bin_dir.parent)
    if not (bin_dir / "emberscope-run").exists():
        pytest.skip("emberscope is not installed in %s (no emberscope-run console script)"
                    % bin_dir.parent)
    return bin_dir


@pytest.fixture(scope="session")
def gunicorn_bin(venv_bin):
    """gunicorn from PyPI, installed into the test venv once per session."""
    exe = venv_bin / "gunicorn"
    if not exe.exists():
        r = subprocess.run([str(venv_bin / "python"), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", "gunicorn"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
        if r.returncode != 0 or not exe.exists():
            pytest.fail("could not install gunicorn into %s:\n%s"
                        % (venv_bin.parent, r.stdout.decode("utf-8", "replace")))
    return exe


@pytest.fixture
def venv_interp(venv_bin):
    """The test venv's own interpreter (emberscope installed from the wheel)."""
    return H.Interp("venv", venv_bin / "python", None)
