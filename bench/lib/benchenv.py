"""The benchmark venvs: .bench/venv (main interpreter, every peer) and .bench/venv-X.Y (other
CPython versions for --pythons: emberscope, ddtrace and the web servers only).

Used by bench/peers.py and bench/core.py. Installs from PyPI with pip and the emberscope wheel
from dist/ (abi3: the same wheel serves every CPython >= 3.8).
"""
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BENCH_DIR = os.path.join(ROOT, ".bench")


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def sh(cmd, timeout=900, env=None):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=timeout, env=env)
        return p.returncode, p.stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)


def last_line(text):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    for l in reversed(lines):
        if l.startswith("ERROR") or "error" in l.lower():
            return l[:160]
    return lines[-1][:160] if lines else "no output"


def parse_versions(text):
    """'3.11,3.13' -> ['3.11', '3.13'] (each X.Y; '' -> [])."""
    out = []
    for v in (text or "").split(","):
        v = v.strip()
        if v.startswith("python"):
            v = v[len("python"):]
        if not v:
            continue
        parts = v.split(".")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise SystemExit("--pythons: %r is not X.Y (e.g. 3.13)" % v)
        if v not in out:
            out.append(v)
    return out


def interpreter(version):
    """Path of a CPython X.Y: .pythons/bin/pythonX.Y (tools/install-pythons.sh), else PATH."""
    p = os.path.join(ROOT, ".pythons", "bin", "python" + version)
    if os.access(p, os.X_OK):
        return p
    return shutil.which("python" + version)


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def extra_venv(version):
    return os.path.join(BENCH_DIR, "venv-" + version)


def py_version(python, full=False):
    rc, out = sh([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"], timeout=60)
    if rc:
        return None
    v = out.strip().splitlines()[-1]
    return v if full else ".".join(v.split(".")[:2])


def newest_wheel(wheel_dir):
    wheels = sorted(f for f in os.listdir(wheel_dir) if f.startswith("emberscope-") and f.endswith(".whl")) \
        if os.path.isdir(wheel_dir) else []
    return os.path.join(wheel_dir, wheels[-1]) if wheels else None


def setup_venv(venv, base_python, packages, checks, wheel_dir, loud=log):
    """Create `venv` with `base_python` if missing, pip-install each group of `packages`
    ({name: [requirement]}, one pip call per group so one failure spares the others) and the
    emberscope wheel, then run `checks` ({name: argv, with "{py}" and "{bin}" substituted}).
    -> {name: True or "reason"} (with "emberscope"); raises SystemExit if the venv cannot be made."""
    vpy = venv_python(venv)
    avail = {}
    if not os.path.exists(vpy):
        if not base_python:
            raise SystemExit("no interpreter to create %s" % venv)
        log("creating %s with %s" % (venv, base_python))
        rc, out = sh([base_python, "-m", "venv", venv])
        if rc:
            raise SystemExit("cannot create %s: %s" % (venv, last_line(out)))
    for name, pkgs in packages.items():
        rc, out = sh([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + pkgs)
        avail[name] = True if rc == 0 else "pip install %s failed: %s" % (" ".join(pkgs), last_line(out))
        if rc:
            loud("%s: %s not installable: %s" % (venv, name, avail[name]))
    wheel = newest_wheel(wheel_dir)
    if wheel:
        rc, out = sh([vpy, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall",
                      "--no-deps", wheel])
        avail["emberscope"] = True if rc == 0 else "wheel install failed: %s" % last_line(out)
    else:
        avail["emberscope"] = "no emberscope wheel in %s (run bench/run without BENCH_SKIP_BUILD)" % wheel_dir
    if avail["emberscope"] is not True:
        loud("%s: emberscope: %s" % (venv, avail["emberscope"]))
    checks = dict(checks, emberscope=["{py}", "-c", "import emberscope._native"])
    for name, argv in checks.items():
        if avail.get(name) is True:
            argv = [a.replace("{py}", vpy).replace("{bin}", os.path.join(venv, "bin")) for a in argv]
            rc, out = sh(argv, timeout=120)
            if rc:
                avail[name] = "installed but broken: %s" % last_line(out)
                loud("%s: %s: %s" % (venv, name, avail[name]))
    return avail


def emberscope_python(version, wheel_dir):
    """An interpreter of CPython `version` that imports emberscope: .bench/venv-X.Y, created and
    given the wheel from wheel_dir (only the wheel: bench/core.py needs nothing else)."""
    venv = extra_venv(version)
    base = interpreter(version) if not os.path.exists(venv_python(venv)) else None
    if not os.path.exists(venv_python(venv)) and not base:
        raise SystemExit("no python%s: install it with tools/install-pythons.sh (.pythons/bin) or put it "
                         "on PATH" % version)
    avail = setup_venv(venv, base, {}, {}, wheel_dir)
    if avail["emberscope"] is not True:
        raise SystemExit("emberscope on python%s: %s" % (version, avail["emberscope"]))
    return venv_python(venv)
