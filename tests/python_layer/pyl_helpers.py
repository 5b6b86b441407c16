"""Shared helpers for the Python-layer tests (imported by the test modules).

Every test runs real interpreters in subprocesses with a clean environment
(no DD_* / EMBERSCOPE_* variables) and ``PYTHONPATH`` pointing at the
repository's ``python/`` directory. The native extension is not needed;
the lifecycle with the real native module is tested in tests/profiler.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PYTHON_DIR = os.path.join(REPO, "python")
PACKAGE_DIR = os.path.join(PYTHON_DIR, "emberscope")
BOOTSTRAP_DIR = os.path.join(PACKAGE_DIR, "bootstrap")
PYTHONS_DIR = os.path.join(REPO, ".pythons", "bin")
SUPPORTED = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")

if PYTHON_DIR not in sys.path:
    sys.path.insert(0, PYTHON_DIR)


def interpreter(version):
    path = os.path.join(PYTHONS_DIR, "python" + version)
    return path if os.access(path, os.X_OK) else None


def available_interpreters(minimum=(3, 8)):
    out = []
    for version in SUPPORTED:
        major, minor = (int(x) for x in version.split("."))
        if (major, minor) >= minimum:
            path = interpreter(version)
            if path:
                out.append((version, path))
    return out


def clean_env(extra=None, pythonpath=PYTHON_DIR):
    env = dict((k, v) for k, v in os.environ.items()
               if not k.startswith(("DD_", "EMBERSCOPE_", "PYTHON")))
    env["PYTHONPATH"] = pythonpath
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    if extra:
        env.update(extra)
    return env


def run(args, env=None, extra_env=None, cwd=None, timeout=60, pythonpath=PYTHON_DIR):
    if env is None:
        env = clean_env(extra_env, pythonpath=pythonpath)
    return subprocess.run(args, env=env, cwd=cwd or HERE, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=timeout)


def run_py(code, python=None, **kwargs):
    return run([python or sys.executable, "-c", code], **kwargs)


def launcher(*args, python=None, **kwargs):
    """Run ``python -m emberscope.commands.run ARGS``."""
    return run([python or sys.executable, "-m", "emberscope.commands.run"] + list(args), **kwargs)


def stderr_lines(result):
    return [line for line in result.stderr.splitlines() if line.strip()]


def native_built():
    """Whether python/emberscope holds a built ``_native`` extension (then the
    bootstrap tests start a real profiler and expect no 'unavailable' line)."""
    try:
        names = os.listdir(PACKAGE_DIR)
    except OSError:
        return False
    return any(n.startswith("_native") and n.endswith((".so", ".pyd")) for n in names)
