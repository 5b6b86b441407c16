"""Running workloads under emberscope and collecting what they wrote.

Everything here is independent of the product's code: profiles are read with
the pure-Python decoder in ``pprof_decode``.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import pprof_decode

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORKLOADS = ROOT / "tests" / "workloads"
VENV_BIN = ROOT / ".venv" / "bin"

ALL_VERSIONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14")

SAMPLE_TYPES = (
    "cpu-time/nanoseconds", "cpu-samples/count", "wall-time/nanoseconds",
    "wall-samples/count", "exception-samples/count", "lock-acquire-wait/nanoseconds",
    "lock-acquire/count", "lock-release-hold/nanoseconds", "lock-release/count",
    "alloc-space/bytes", "alloc-samples/count", "heap-space/bytes", "heap-live-samples/count",
    "gpu-time/nanoseconds", "gpu-samples/count", "gpu-space/bytes", "gpu-alloc-samples/count",
    "gpu-flops/count", "gpu-flops-samples/count",
)

METADATA_KEYS = ("sampler", "sample_count", "sampling_interval_us", "sample_capture_cpu_time_us")

DEFAULT_TIMEOUT = 180.0


def vkey(version):
    return tuple(int(x) for x in version.split("."))


def selected_versions():
    wanted = os.environ.get("EMBERSCOPE_TEST_VERSIONS", "").replace(",", " ").split()
    if not wanted:
        return list(ALL_VERSIONS)
    return [v for v in ALL_VERSIONS if v in wanted]


def pythons_dir():
    d = os.environ.get("EMBERSCOPE_TEST_PYTHONS_DIR")
    return Path(d) if d else ROOT / ".pythons" / "bin"


def interpreter_path(version):
    p = pythons_dir() / ("python" + version)
    if p.exists() and os.access(str(p), os.X_OK):
        return p
    return None


def edge_versions():
    """Oldest and newest supported versions, plus the oldest/newest available
    ones when an edge version is missing (so the whole suite still runs twice)."""
    sel = selected_versions()
    if not sel:
        return []
    out = [sel[0], sel[-1]]
    avail = [v for v in sel if interpreter_path(v) is not None]
    if avail:
        out += [avail[0], avail[-1]]
    seen = []
    for v in out:
        if v not in seen:
            seen.append(v)
    return sorted(seen, key=vkey)


def site_dir():
    d = os.environ.get("EMBERSCOPE_TEST_SITE")
    return Path(d) if d else ROOT / ".testenv" / "site"


def site_problem():
    """None when the unpacked wheel is usable, else why not."""
    site = site_dir()
    pkg = site / "emberscope"
    if not pkg.is_dir():
        return "no emberscope package in %s (set EMBERSCOPE_TEST_SITE; scripts/test.sh does)" % site
    return None


def workload(name):
    return WORKLOADS / name


# --------------------------------------------------------------- profiles --

_NAME_RE = re.compile(r"^(?P<base>.*)\.(?P<pid>\d+)\.(?P<seq>\d+)\.pprof$")


class ProfileFile(object):
    def __init__(self, path, pid, seq):
        self.path = Path(path)
        self.pid = pid
        self.seq = seq
        self._profile = None
        self._metadata = None

    @property
    def metadata_path(self):
        return self.path.with_name(self.path.name[:-len(".pprof")] + ".internal_metadata.json")

    @property
    def profile(self):
        if self._profile is None:
            self._profile = pprof_decode.load(self.path)
        return self._profile

    @property
    def metadata(self):
        if self._metadata is None:
            with open(str(self.metadata_path)) as f:
                self._metadata = json.load(f)
        return self._metadata

    def __repr__(self):
        return "ProfileFile(%s)" % self.path.name


def collect(prefix):
    """{pid: [ProfileFile sorted by seq]} for files named <prefix>.<pid>.<seq>.pprof."""
    prefix = Path(prefix)
    out = {}
    if not prefix.parent.is_dir():
        return out
    for p in prefix.parent.iterdir():
        m = _NAME_RE.match(p.name)
        if not m or m.group("base") != prefix.name:
            continue
        pid, seq = int(m.group("pid")), int(m.group("seq"))
        out.setdefault(pid, []).append(ProfileFile(p, pid, seq))
    for files in out.values():
        files.sort(key=lambda f: f.seq)
    return out


def list_dir(prefix):
    prefix = Path(prefix)
    if not prefix.parent.is_dir():
        return []
    return sorted(p.name for p in prefix.parent.iterdir())


# ------------------------------------------------------------------- runs --

class Interp(object):
    """One CPython interpreter that can import the unpacked emberscope wheel."""

    def __init__(self, version, path, site):
        self.version = version
        self.path = Path(path)
        self.site = Path(site) if site else None

    @property
    def info(self):
        return vkey(self.version)

    def __repr__(self):
        return "Interp(%s)" % self.version


def base_env(interp=None, extra_pythonpath=()):
    env = {}
    for k, v in os.environ.items():
        if k.startswith(("DD_", "EMBERSCOPE_", "PYTHON", "_DD_")) or k in ("VIRTUAL_ENV",):
            continue
        env[k] = v
    paths = [str(p) for p in extra_pythonpath]
    if interp is not None and interp.site is not None:
        paths.append(str(interp.site))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def profiling_env(prefix, interval=60, **extra):
    env = {
        "DD_PROFILING_ENABLED": "true",
        "DD_PROFILING_OUTPUT_PPROF": str(prefix),
        "DD_PROFILING_UPLOAD_INTERVAL": str(interval),
    }
    for k, v in extra.items():
        env[k] = str(v)
    return env


def command(interp, script, args=(), mode="run"):
    """argv to run ``script`` with ``interp``.

    mode "run": ``python -m emberscope.commands.run <python> script``;
    "console": the venv's ``emberscope-run`` console script; "plain": no wrapper.
    """
    script = [str(script)] if not isinstance(script, (list, tuple)) else [str(s) for s in script]
    args = [str(a) for a in args]
    py = str(interp.path)
    if mode == "run":
        return [py, "-m", "emberscope.commands.run", py] + script + args
    if mode == "console":
        return [str(VENV_BIN / "emberscope-run"), py] + script + args
    if mode == "plain":
        return [py] + script + args
    raise ValueError(mode)


class Run(object):
    def __init__(self, argv, env, prefix, returncode, stdout, stderr, elapsed, ended_at=None):
        self.argv = argv
        self.ended_at = ended_at if ended_at is not None else time.monotonic()
        self.env = env
        self.prefix = Path(prefix) if prefix else None
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        self.elapsed = elapsed
        self._files = None

    @property
    def truth(self):
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    return json.loads(line)
                except ValueError:
                    continue
        raise AssertionError("no JSON truth line on stdout\n" + self.describe())

    @property
    def files(self):
        if self._files is None:
            self._files = collect(self.prefix) if self.prefix else {}
        return self._files

    def refresh(self):
        self._files = None
        return self.files

    def files_of(self, pid):
        files = self.files.get(pid)
        assert files, "no profile files for pid %s; found %s\n%s" % (
            pid, list_dir(self.prefix), self.describe())
        return files

    def profiles_of(self, pid):
        return [f.profile for f in self.files_of(pid)]

    @property
    def main_pid(self):
        return self.truth["pid"]

    @property
    def profiles(self):
        return self.profiles_of(self.main_pid)

    def describe(self, limit=4000):
        def tail(s):
            s = s or ""
            return s if len(s) <= limit else "...\n" + s[-limit:]
        env = dict((k, v) for k, v in self.env.items()
                   if k.startswith(("DD_", "EMBERSCOPE_", "PYTHONPATH")))
        return ("command: %s\nenv: %s\nreturncode: %s (%.1fs)\n--- stdout\n%s\n--- stderr\n%s"
                % (" ".join(self.argv), env, self.returncode, self.elapsed,
                   tail(self.stdout), tail(self.stderr)))

    def check_ok(self, expected=0, traceback_ok=False):
        assert self.returncode == expected, "unexpected exit status\n" + self.describe()
        self.check_no_crash(traceback_ok)
        return self

    def check_no_crash(self, traceback_ok=False):
        for bad in ("Fatal Python error", "Segmentation fault", "core dumped", "panicked at"):
            assert bad not in self.stderr, "crash signature %r on stderr\n%s" % (bad, self.describe())
        if not traceback_ok:
            assert "Traceback (most recent call last)" not in self.stderr, self.describe()
        assert self.returncode is not None and self.returncode not in (
            -signal.SIGSEGV, -signal.SIGABRT, -signal.SIGBUS, -signal.SIGILL, -signal.SIGFPE), \
            "killed by a signal\n" + self.describe()
        return self


def run(argv, env, prefix=None, timeout=DEFAULT_TIMEOUT, cwd=None, stdin=None):
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, env=env, cwd=str(cwd) if cwd else None,
                            stdin=subprocess.DEVNULL if stdin is None else stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        ended_at = time.monotonic()
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        r = Run(argv, env, prefix, proc.returncode, out.decode("utf-8", "replace"),
                err.decode("utf-8", "replace"), time.monotonic() - t0)
        raise AssertionError("timed out after %ss\n%s" % (timeout, r.describe()))
    return Run(argv, env, prefix, proc.returncode, out.decode("utf-8", "replace"),
               err.decode("utf-8", "replace"), ended_at - t0, ended_at)


def kill_group(proc):
    """Kill a process started with start_new_session=True and its group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


class Background(object):
    """A process whose stdout lines can be awaited (for signal tests)."""

    def __init__(self, argv, env, prefix=None, cwd=None):
        self.argv = argv
        self.env = env
        self.prefix = prefix
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, env=env, cwd=str(cwd) if cwd else None,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self.lines = []
        self.err_chunks = []
        self._cond = threading.Condition()
        self._t_out = threading.Thread(target=self._read_out, daemon=True)
        self._t_err = threading.Thread(target=self._read_err, daemon=True)
        self._t_out.start()
        self._t_err.start()

    def _read_out(self):
        for raw in iter(self.proc.stdout.readline, b""):
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _read_err(self):
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
            self.err_chunks.append(chunk)

    def wait_line(self, predicate, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._t_out.is_alive()):
                    raise AssertionError("line not seen within %ss\n%s" % (timeout, self.describe()))
                self._cond.wait(min(left, 0.2))

    def signal(self, signum):
        self.proc.send_signal(signum)

    def wait(self, timeout=60.0):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_group(self.proc)
            self.proc.wait()
            raise AssertionError("did not exit within %ss\n%s" % (timeout, self.describe()))
        self.exited_at = time.monotonic()
        self._t_out.join(10)
        self._t_err.join(10)
        return self.proc.returncode

    @property
    def stdout(self):
        return "\n".join(self.lines)

    @property
    def stderr(self):
        return b"".join(self.err_chunks).decode("utf-8", "replace")

    def as_run(self):
        ended = getattr(self, "exited_at", time.monotonic())
        return Run(self.argv, self.env, self.prefix, self.proc.returncode, self.stdout,
                   self.stderr, ended - self.t0, ended)

    def describe(self):
        return Run(self.argv, self.env, self.prefix, self.proc.poll(), self.stdout, self.stderr,
                   time.monotonic() - self.t0).describe()

    def close(self):
        if self.proc.poll() is None:
            kill_group(self.proc)
            self.proc.wait()


# -------------------------------------------------------------- analysis --

def merged(profiles):
    return list(profiles)


def strip_native(frames):
    """Drop leading C-call frames (``<native>`` filename) some versions may add."""
    i = 0
    while i < len(frames) and frames[i].filename == "<native>":
        i += 1
    return frames[i:]


def leaf_name(sample):
    frames = strip_native(sample.frames)
    return frames[0].name if frames else None


def self_by_function(profiles, sample_type, where=None):
    """Like pprof_decode.self_by_function, but ignoring leading <native> frames."""
    out = {}
    for prof in profiles:
        idx = prof.type_index(sample_type)
        for s in prof.samples:
            if where is not None and not where(s):
                continue
            v = s.values[idx]
            if not v:
                continue
            name = leaf_name(s)
            out[name] = out.get(name, 0) + v
    return out


def rel_err(measured, truth):
    return abs(measured - truth) / truth if truth else float("inf")


def fmt_ns(ns):
    return "%.3fs" % (ns / 1e9)


def summarize(profiles, sample_type="cpu-time", top=15):
    """Short text of the top self values and per-thread totals, for messages."""
    selfs = self_by_function(profiles, sample_type)
    threads = pprof_decode.by_thread(profiles, sample_type)
    lines = ["top self %s:" % sample_type]
    for name, v in sorted(selfs.items(), key=lambda kv: -kv[1])[:top]:
        lines.append("  %-40s %s" % (name, v))
    lines.append("per thread %s:" % sample_type)
    for name, v in sorted(threads.items(), key=lambda kv: -kv[1])[:top]:
        lines.append("  %-40r %s" % (name, v))
    nsamples = sum(len(p.samples) for p in profiles)
    lines.append("%d profiles, %d samples" % (len(profiles), nsamples))
    return "\n".join(lines)
