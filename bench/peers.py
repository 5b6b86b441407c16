"""emberscope beside ddtrace, pyroscope-io and py-spy: overhead and accuracy, in one run.

    bench/run peers [--rounds N] [--smoke] [--out docs/BENCHMARKS.md] [--plot docs/benchmarks.png]
                    [--workloads a,b] [--conditions x,y] [--pythons 3.11,3.13] [--no-sweeps]

Creates (or reuses) the peers' venv in .bench/venv from PyPI, installs the emberscope wheel from
dist/ into it (one interpreter for every condition), then runs every condition on every
workload, interleaved: each round visits every workload and runs the conditions in an order
shuffled per round, so a noisy shared machine hits all conditions alike. Figures are medians
over rounds; ratios are paired (each condition against plain python of the same round).

--pythons 3.11,3.13 also measures plain python, emberscope and ddtrace on each listed CPython
that is not the main venv's (.bench/venv-X.Y from .pythons/bin/pythonX.Y; same rounds,
interleaved with the main conditions, each paired with its own interpreter's plain run).

The Markdown file keeps whatever is outside the `<!-- generated:start -->` /
`<!-- generated:end -->` markers (hand-written analysis): only the text between them is
rewritten. A file without the markers is backed up to .bench/ before it is replaced.

A peer that cannot be installed or started is reported loudly and shown as "n/a (reason)"; it
never fails the command. See docs/BENCHMARKS.md for what every figure means.
"""
import argparse
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WL = os.path.join(HERE, "workloads")
sys.path.insert(0, os.path.join(HERE, "lib"))
import benchenv  # noqa: E402
import profiles  # noqa: E402
from benchenv import last_line, sh  # noqa: E402,F401
sys.path.insert(0, WL)
from _common import vmhwm_kb  # noqa: E402  (the workloads' own reader of VmHWM)

BENCH_DIR = os.path.join(ROOT, ".bench")
VENV = os.path.join(BENCH_DIR, "venv")
VPY = os.path.join(VENV, "bin", "python")
CLK_TCK = os.sysconf("SC_CLK_TCK")

# What the venv gets from PyPI: one pip call per group, so one failure spares the others.
# Pinned to the versions of ../shared/reference (peers.md, ddtrace-profiler.md).
PEER_PACKAGES = {
    "ddtrace": ["ddtrace==4.16.0"],
    "pyroscope-io": ["pyroscope-io==1.4.0"],
    "py-spy": ["py-spy==0.4.3"],
    "web": ["starlette", "uvicorn"],
    "prefork": ["gunicorn==27.0.1", "flask"],  # pinned: the harness passes --no-control-socket
    "zstandard": ["zstandard"],
    "matplotlib": ["matplotlib"],
}
PEER_CHECKS = {"ddtrace": ["{py}", "-c", "import ddtrace.profiling"],
               "pyroscope-io": ["{py}", "-c", "import pyroscope"],
               "py-spy": ["{bin}/py-spy", "--version"],
               "web": ["{py}", "-c", "import starlette, uvicorn"],
               "prefork": ["{py}", "-c", "import gunicorn, flask"]}
# --pythons: what the venv of another interpreter gets, and the conditions measured there
EXTRA_PACKAGES = {k: PEER_PACKAGES[k] for k in ("ddtrace", "web", "prefork")}
EXTRA_CHECKS = {k: PEER_CHECKS[k] for k in EXTRA_PACKAGES}
EXTRA_CONDITIONS = ["plain", "emberscope defaults", "emberscope stack only", "ddtrace defaults",
                    "ddtrace stack only"]

STACK_ONLY = {  # every other collector off, including those that land later
    "DD_PROFILING_MEMORY_ENABLED": "false",
    "DD_PROFILING_HEAP_ENABLED": "false",
    "DD_PROFILING_LOCK_ENABLED": "false",
    "DD_PROFILING_EXCEPTION_ENABLED": "false",
    "DD_PROFILING_PYTORCH_ENABLED": "false",
}

PYSPY_NB = "py-spy record --nonblocking"
CONDITIONS = ["plain", "emberscope defaults", "emberscope stack only", "ddtrace defaults",
              "ddtrace stack only", "pyroscope-io", "py-spy record", PYSPY_NB]
SWEEP_CONDITIONS = ["plain", "emberscope defaults", "emberscope stack only", "ddtrace defaults",
                    "ddtrace stack only", "pyroscope-io", "py-spy record", PYSPY_NB]

GUNICORN_WORKERS = 2
# name -> (script, env, truth kinds for accuracy, description)
WORKLOADS = {
    "cpu": ("cpu.py", {}, ["cpu"], "CPU-bound, 4 threads (fib + dict churn)"),
    "alloc": ("alloc.py", {}, ["cpu", "alloc"], "allocation-heavy, 4 threads"),
    "lock": ("lock.py", {}, ["cpu"], "lock-heavy, 8 threads on 2 shared Locks"),
    "waits": ("waits.py", {}, ["wall"], "sleep + socket waits, 4 threads + 4 echo threads"),
    "threads200": ("threads200.py", {}, ["cpu"], "201 threads: 198 parked, 2 CPU workers"),
    "deep": ("deep.py", {}, ["cpu"], "2 CPU threads at 500-deep recursion"),
    "web": (None, {}, ["cpu"], "Starlette app under uvicorn, wrk on loopback, 8 connections"),
    "gunicorn": (None, {}, ["cpu"], "pre-fork: Flask app under gunicorn, master + %d sync workers, "
                 "wrk on loopback, 8 connections" % GUNICORN_WORKERS),
}
WEB_WORKLOADS = ("web", "gunicorn")

# sample type holding each kind of truth, per profiler family
SAMPLE_TYPE = {
    "emberscope": {"cpu": "cpu-time", "wall": "wall-time", "alloc": "alloc-space"},
    "ddtrace": {"cpu": "cpu-time", "wall": "wall-time", "alloc": "alloc-space"},
    "pyroscope-io": {"cpu": "cpu"},       # default oncpu=True, gil_only=True
    "py-spy record": {"cpu": "samples"},  # default: active threads only (no --idle)
}


def family(cond):
    """emberscope / ddtrace / pyroscope-io / py-spy record (both py-spy modes)."""
    first = cond.split()[0]
    if first in ("emberscope", "ddtrace"):
        return first
    if cond.startswith("py-spy record"):
        return "py-spy record"
    return cond


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def loud(msg):
    bar = "!" * 78
    log("%s\n!! %s\n%s" % (bar, msg, bar))


# ---------------------------------------------------------------- set-up --

def setup(base_python, wheel_dir, allow_apt, pythons=()):
    """-> dict of what is available: {name: True or "reason"}, plus "wrk" and "pythons"
    ({X.Y: {"venv", "version", "avail"} or {"error"}} for the interpreters of --pythons that
    are not the main venv's)."""
    os.makedirs(BENCH_DIR, exist_ok=True)
    avail = benchenv.setup_venv(VENV, base_python, PEER_PACKAGES, PEER_CHECKS, wheel_dir, loud=loud)
    wrk = shutil.which("wrk")
    if not wrk and allow_apt and os.geteuid() == 0 and shutil.which("apt-get"):
        log("wrk not found: trying apt-get install wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        rc, _ = sh(["apt-get", "install", "-y", "-q", "wrk"], timeout=300, env=env)
        if rc:
            sh(["apt-get", "update", "-q"], timeout=300, env=env)
            sh(["apt-get", "install", "-y", "-q", "wrk"], timeout=300, env=env)
        wrk = shutil.which("wrk")
    avail["wrk"] = wrk or None
    main_xy = benchenv.py_version(VPY)
    extra = {}
    for v in pythons:
        if v == main_xy:
            continue
        venv = benchenv.extra_venv(v)
        base = benchenv.interpreter(v)
        if not os.path.exists(benchenv.venv_python(venv)) and not base:
            extra[v] = {"error": "no python%s in .pythons/bin (tools/install-pythons.sh) or on PATH" % v}
            loud("--pythons %s: %s" % (v, extra[v]["error"]))
            continue
        try:
            a = benchenv.setup_venv(venv, base, EXTRA_PACKAGES, EXTRA_CHECKS, wheel_dir, loud=loud)
        except SystemExit as e:
            extra[v] = {"error": str(e)}
            loud("--pythons %s: %s" % (v, e))
            continue
        extra[v] = {"venv": venv, "version": benchenv.py_version(benchenv.venv_python(venv), full=True),
                    "avail": a}
    avail["pythons"] = extra
    avail["main_python"] = main_xy
    return avail


def versions(avail, vpy=VPY):
    code = ("import importlib.metadata as m, json, sys\nout={'python': sys.version.split()[0]}\n"
            "for d in ['emberscope','ddtrace','pyroscope-io','py-spy','starlette','uvicorn','gunicorn','flask',"
            "'matplotlib']:\n"
            "    try: out[d]=m.version(d)\n    except Exception: out[d]=None\nprint(json.dumps(out))")
    rc, out = sh([vpy, "-c", code])
    try:
        v = json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        v = {}
    if avail.get("wrk"):
        rc, out = sh([avail["wrk"], "--version"])
        v["wrk"] = out.split()[1] if rc in (0, 1) and out.split()[1:] else "?"
    return v


def condition_available(cond, avail):
    need = {"emberscope": "emberscope", "ddtrace": "ddtrace", "pyroscope-io": "pyroscope-io",
            "py-spy record": "py-spy"}.get(family(cond))
    if need and avail.get(need) is not True:
        return avail.get(need) or "not installed"
    if need == "ddtrace" and avail.get("zstandard") is not True:
        return "zstandard (to read ddtrace's zstd pprof) unavailable"
    return True


# ----------------------------------------------------------------- sink --

class Sink:
    """bench/peers/sink.py in its own process: fake Datadog agent + Pyroscope stand-in."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ember-sink-")
        self.proc = subprocess.Popen([VPY, os.path.join(HERE, "peers", "sink.py"), self.dir],
                                     stdout=subprocess.PIPE, universal_newlines=True)
        line = self.proc.stdout.readline()
        self.url = "http://127.0.0.1:%s" % line.split()[1]

    def take(self):
        """Every upload received since the previous call: [(path, body)]."""
        out = []
        for f in sorted(os.listdir(self.dir)):
            if f.endswith(".bin"):
                base = os.path.join(self.dir, f[:-4])
                with open(base + ".path") as fp:
                    path = fp.readline().strip()
                with open(base + ".bin", "rb") as fb:
                    out.append((path, fb.read()))
                os.unlink(base + ".bin")
                os.unlink(base + ".path")
        return out

    def close(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ runs --

def proc_cpu(pid, exclude_main=False):
    """CPU seconds of a live process (all threads), or of all its threads but the main one."""
    total = 0.0
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return float("nan")
    for t in tids:
        if exclude_main and int(t) == pid:
            continue
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0]) / 1e9
            continue
        except (OSError, IndexError, ValueError):
            pass
        try:
            with open("/proc/%d/task/%s/stat" % (pid, t)) as f:
                fl = f.read().rsplit(")", 1)[1].split()
            total += (int(fl[11]) + int(fl[12])) / CLK_TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


class HwmPoller:
    """Polls a process's VmHWM every 50 ms until it exits; .peak is the last value read.
    (ru_maxrss from wait4 cannot be used: Linux keeps the parent's high-water mark across
    fork+exec, so every child would report at least the harness's own RSS.)"""

    def __init__(self, pid):
        self.pid, self.peak, self.stop = pid, None, threading.Event()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop.is_set():
            v = vmhwm_kb(self.pid)
            if v is None:
                return
            self.peak = v
            self.stop.wait(0.05)

    def close(self):
        self.stop.set()
        self.t.join(1)
        return self.peak


def wait_rusage(proc, timeout):
    """os.wait4 with a kill after timeout -> (returncode, rusage, wall seconds when reaped)."""
    timer = threading.Timer(timeout, lambda: _kill(proc))
    timer.start()
    try:
        _, status, ru = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status) if hasattr(os, "waitstatus_to_exitcode") else status
    return proc.returncode, ru, time.time()


def _kill(proc):
    try:
        proc.kill()
    except OSError:
        pass


def read_json_line(path):
    lines = read_json_lines(path)
    return lines[-1] if lines else None


def read_json_lines(path):
    """Every JSON line of a file (lines starting with '{'), in order; [] if none/unreadable."""
    out = []
    try:
        with open(path) as f:
            for l in f.read().splitlines():
                if l.startswith("{"):
                    try:
                        out.append(json.loads(l))
                    except ValueError:
                        pass
    except OSError:
        pass
    return out


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
        return " | ".join(lines[-n:])[:300]
    except OSError:
        return ""


def descendants(pid):
    """pid and every live descendant of it (from /proc/*/stat), parents first."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(sorted(children.get(p, [])))
    return out


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Run:
    """One condition on one workload; fills self.r (figures) or self.error."""

    def __init__(self, cond, workload, env_extra, sink, opts, tmp, venv=VENV):
        self.cond, self.workload, self.sink, self.opts = cond, workload, sink, opts
        self.env_extra = env_extra
        self.venv, self.vpy = venv, os.path.join(venv, "bin", "python")
        self.tmp = tempfile.mkdtemp(prefix="run-", dir=tmp)
        self.prefix = os.path.join(self.tmp, "p")
        self.r = {}
        self.error = None
        self.profile = None

    def env(self):
        env = dict(os.environ)
        for k in list(env):
            if k.startswith(("DD_", "EMBERSCOPE_", "PYROSCOPE_")):
                del env[k]
        env.update({"BENCH_SCALE": str(self.opts.scale), "PYTHONDONTWRITEBYTECODE": "1"})
        env.update(self.env_extra)
        fam = family(self.cond)
        if fam in ("emberscope", "ddtrace"):
            env.update({"DD_PROFILING_ENABLED": "true", "DD_PROFILING_OUTPUT_PPROF": self.prefix,
                         "DD_SERVICE": "bench", "DD_ENV": "bench"})
            if self.cond.endswith("stack only"):
                env.update(STACK_ONLY)
        if fam == "ddtrace":
            # the profiler only: no spans, no telemetry/remote-config chatter (fake agent anyway)
            env.update({"DD_TRACE_AGENT_URL": self.sink.url, "DD_TRACE_ENABLED": "false",
                        "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false",
                        "DD_REMOTE_CONFIGURATION_ENABLED": "false"})
        if fam == "pyroscope-io":
            env["BENCH_SINK_URL"] = self.sink.url
        if fam == "py-spy record":
            env["BENCH_GO_FILE"] = os.path.join(self.tmp, "go")
        return env

    def wrap(self, argv):
        """argv = [python, script-or--m, ...] -> the condition's command line."""
        fam = family(self.cond)
        if fam == "emberscope":
            return [os.path.join(self.venv, "bin", "emberscope-run")] + argv
        if fam == "ddtrace":
            return [os.path.join(self.venv, "bin", "ddtrace-run")] + argv
        if fam == "pyroscope-io":
            return [argv[0], os.path.join(HERE, "peers", "pyroscope_run.py")] + argv[1:]
        return argv

    def attach_pyspy(self, pid, subprocesses=False):
        """py-spy record attached from outside; returns (proc, seconds until it samples)."""
        out = os.path.join(self.tmp, "pyspy.txt")
        t0 = time.time()
        argv = [os.path.join(self.venv, "bin", "py-spy"), "record", "--pid", str(pid),
                "--rate", "100", "--format", "raw", "-o", out]
        if self.cond == PYSPY_NB:
            argv.append("--nonblocking")
        if subprocesses:
            argv.append("--subprocesses")
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        self.pyspy_log = []
        ready = threading.Event()

        def reader():
            for line in p.stdout:
                self.pyspy_log.append(line.rstrip())
                if "Sampling process" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=reader, daemon=True).start()
        self.spy_hwm = HwmPoller(p.pid)
        ready.wait(30)
        return p, time.time() - t0

    def finish_pyspy(self, p, app_exit_wall):
        try:
            rc, ru, t_end = wait_rusage(p, 60)
        except ChildProcessError:
            return
        self.r["profiler_cpu_s"] = ru.ru_utime + ru.ru_stime
        self.r["extra_rss_kb"] = self.spy_hwm.close() or 0
        path = os.path.join(self.tmp, "pyspy.txt")
        if os.path.exists(path):
            prof = profiles.Profile()
            with open(path, errors="replace") as f:
                text = f.read()
            prof.add(["samples"], profiles.parse_pyspy_raw(text))
            self.profile = prof
            # with --subprocesses a stack starts with "process PID:cmdline" frames, the parent's
            # first: the last one is the process sampled
            pids = set()
            for line in text.splitlines():
                procs = [f for f in line.split(";") if f.startswith("process ")]
                if procs:
                    pids.add(procs[-1].split(":", 1)[0].split()[-1])
            self.r["procs_profiled"] = len(pids) if pids else (1 if text.strip() else 0)
        else:
            self.error = "py-spy wrote no output: %s" % " | ".join(self.pyspy_log[-3:])[:200]

    def collect(self):
        fam = family(self.cond)
        if fam in ("emberscope", "ddtrace"):
            prof, n, meta, pids = profiles.Profile(), 0, {}, set()
            for f in sorted(os.listdir(self.tmp)):
                full = os.path.join(self.tmp, f)
                if f.endswith(".pprof"):
                    prof.add(*profiles.decode_pprof(open(full, "rb").read()))
                    n += 1
                    parts = f.split(".")  # PREFIX.PID.SEQ.pprof
                    if len(parts) >= 4 and parts[-3].isdigit():
                        pids.add(parts[-3])
                elif f.endswith(".internal_metadata.json"):
                    try:
                        m = json.load(open(full))
                    except ValueError:
                        continue
                    for k in ("sample_count", "sample_capture_cpu_time_us"):
                        meta[k] = meta.get(k, 0) + (m.get(k) or 0)
            if not n:
                self.error = self.error or "no profile written"
            self.profile = prof
            self.r["internal"] = meta
            self.r["procs_profiled"] = len(pids)
        elif fam == "pyroscope-io":
            prof, n = profiles.Profile(), 0
            for path, body in self.sink.take():
                try:
                    for names, samples in profiles.decode_pyroscope_push(body):
                        prof.add(names, samples)
                        n += 1
                except Exception as e:  # noqa: BLE001 - report, do not crash the run
                    self.error = "cannot decode a pyroscope upload to %s: %s" % (path, e)
            # no upload at all = nothing sampled (pyroscope-io is on-CPU only: an idle app
            # sends nothing); the profile then stays empty, which is not a failed run
            self.profile = prof
        else:
            self.sink.take()

    def run_batch(self):
        script = os.path.join(WL, WORKLOADS[self.workload][0])
        argv = self.wrap([self.vpy, script])
        out, err = os.path.join(self.tmp, "stdout"), os.path.join(self.tmp, "stderr")
        env = self.env()
        t_spawn = time.time()
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(argv, env=env, stdout=fo, stderr=fe)
        spy = None
        if family(self.cond) == "py-spy record":
            spy, self.r["attach_s"] = self.attach_pyspy(proc.pid)
            open(env["BENCH_GO_FILE"], "w").close()
        rc, ru, t_exit = wait_rusage(proc, self.opts.timeout)
        if spy:
            self.finish_pyspy(spy, t_exit)
        res = read_json_line(out)
        if rc != 0 or res is None:
            self.error = "exit %s: %s" % (rc, tail(err) or tail(out))
            return
        self.r.update(res)
        if res.get("vmhwm_kb"):
            self.r["rss_kb"] = res["vmhwm_kb"] + self.r.get("extra_rss_kb", 0)
        self.r["life_s"] = t_exit - t_spawn
        self.r["startup_s"] = res["t_main_epoch"] - t_spawn
        if family(self.cond) != "py-spy record":
            self.r["profiler_cpu_s"] = res.get("other_cpu_s", 0.0)
        self.collect()

    def web_argv(self, port):
        """The server's command line under this condition, and how many processes serve."""
        if self.workload == "web":
            return self.wrap([self.vpy, "-m", "uvicorn", "web_app:app", "--app-dir", WL, "--host", "127.0.0.1",
                              "--port", str(port), "--no-access-log", "--log-level", "warning"]), 1
        # gunicorn's own pre-fork model: the master binds, forks the sync workers, which import
        # the app (no --preload). emberscope-run / ddtrace-run wrap gunicorn as their docs say;
        # pyroscope-io is not fork-safe and is configured in each worker by a post_fork hook
        # (bench/peers/gunicorn_pyroscope.py); py-spy attaches with --subprocesses.
        argv = [self.vpy, "-m", "gunicorn", "wsgi_app:app", "--pythonpath", WL,
                "--workers", str(GUNICORN_WORKERS), "--worker-class", "sync",
                "--bind", "127.0.0.1:%d" % port, "--log-level", "warning", "--no-control-socket"]
        fam = family(self.cond)
        if fam == "pyroscope-io":
            argv += ["--config", os.path.join(HERE, "peers", "gunicorn_pyroscope.py")]
        elif fam in ("emberscope", "ddtrace"):
            argv = self.wrap(argv)
        return argv, GUNICORN_WORKERS

    def run_web(self):
        port = free_port()
        argv, workers = self.web_argv(port)
        multi = self.workload == "gunicorn"
        out, err = os.path.join(self.tmp, "stdout"), os.path.join(self.tmp, "stderr")
        env = self.env()
        env.pop("BENCH_GO_FILE", None)
        ready_dir = os.path.join(self.tmp, "ready")
        if multi:
            os.mkdir(ready_dir)
            env["BENCH_READY_DIR"] = ready_dir
        t_spawn = time.time()
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(argv, env=env, stdout=fo, stderr=fe)
        base = "http://127.0.0.1:%d" % port
        ready = None
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if multi and len(os.listdir(ready_dir)) < workers:
                time.sleep(0.02)
                continue
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as resp:
                    if resp.status == 200:
                        ready = time.time()
                        break
            except OSError:
                time.sleep(0.02)
        if ready is None:
            _kill(proc)
            wait_rusage(proc, 30)
            self.error = "server did not start: %s" % tail(err)
            return
        self.r["startup_s"] = ready - t_spawn
        pids = descendants(proc.pid) if multi else [proc.pid]
        self.r["procs_total"] = len(pids)
        spy = None
        if family(self.cond) == "py-spy record":
            spy, self.r["attach_s"] = self.attach_pyspy(proc.pid, subprocesses=multi)
        time.sleep(0.3)

        def cpu(exclude_main):
            return sum(proc_cpu(p, exclude_main=exclude_main) for p in pids)
        c0, o0 = cpu(False), cpu(True)
        s0 = proc_cpu(spy.pid) if spy else 0.0
        w0 = time.perf_counter()
        load = self.load(port)
        elapsed = time.perf_counter() - w0
        c1, o1 = cpu(False), cpu(True)
        s1 = proc_cpu(spy.pid) if spy else 0.0
        hwms = [vmhwm_kb(p) for p in pids]
        # gunicorn: SIGTERM = graceful stop (workers finish, run atexit, exit 0); uvicorn: SIGINT
        proc.send_signal(signal.SIGTERM if multi else signal.SIGINT)
        rc, ru, t_exit = wait_rusage(proc, 60)
        if spy:
            self.finish_pyspy(spy, t_exit)
            self.r["profiler_cpu_s"] = s1 - s0
        else:
            self.r["profiler_cpu_s"] = o1 - o0
        if multi:
            # gunicorn's master logs "Worker (pid:N) was sent SIGSEGV!" (or SIGKILL after its
            # graceful timeout) for every worker that did not exit by itself
            try:
                with open(err, errors="replace") as f:
                    died = [l.rsplit("was sent ", 1)[1].strip().rstrip("!") for l in f if "was sent SIG" in l]
            except OSError:
                died = []
            self.r["workers_died"] = len(died)
            if died:
                log("  %s / %s: %d gunicorn worker(s) died by signal (%s)" % (
                    self.workload, self.cond, len(died), ", ".join(died)))
        lines = read_json_lines(out)
        if not lines or load is None or (multi and len(lines) < workers):
            self.error = "web run failed (exit %s, %d of %d truth lines): %s" % (
                rc, len(lines), workers, tail(err) or tail(out))
            return
        res = lines[-1]
        if multi:  # one line per worker: sum the truths
            truth = {"a": 0.0, "b": 0.0}
            for l in lines:
                for k in truth:
                    truth[k] += l.get("truth", {}).get("cpu", {}).get(k, 0.0)
            res = {"truth": {"cpu": truth}, "t_main_epoch": min(l["t_main_epoch"] for l in lines)}
        self.r.update(res)
        self.r.update(load)
        self.r["elapsed_s"] = elapsed
        self.r["proc_cpu_s"] = c1 - c0
        self.r["cpu_per_req_ms"] = (c1 - c0) / max(1, load["requests"]) * 1000
        if all(hwms):
            self.r["rss_kb"] = sum(hwms) + self.r.get("extra_rss_kb", 0)
        self.r["life_s"] = t_exit - t_spawn
        self.collect()

    def load(self, port):
        secs = self.opts.web_seconds
        if self.opts.wrk:
            rc, out = sh([self.opts.wrk, "-t1", "-c8", "-d%ds" % secs, "--latency", "-s",
                          os.path.join(HERE, "lib", "alternate.lua"), "http://127.0.0.1:%d/" % port],
                         timeout=secs + 60)
            return parse_wrk(out) if rc == 0 else None
        rc, out = sh([VPY, os.path.join(HERE, "lib", "loadgen.py"), "127.0.0.1", str(port), str(secs), "8"],
                     timeout=secs + 60)
        return read_json_text(out) if rc == 0 else None

    def execute(self):
        t0 = time.time()
        try:
            if self.workload in WEB_WORKLOADS:
                self.run_web()
            else:
                self.run_batch()
        except Exception as e:  # noqa: BLE001 - one broken run must not end the benchmark
            self.error = "%s: %s" % (type(e).__name__, e)
        if self.error:
            log("  %s / %s: %s" % (self.workload, self.cond, self.error))
        else:
            self.figures()
            if self.opts.verbose:
                log("  %-10s %-28s %6.1f s" % (self.workload, self.cond, time.time() - t0))
        shutil.rmtree(self.tmp, ignore_errors=True)
        return self

    def figures(self):
        r, prof = self.r, self.profile
        fam = family(self.cond)
        r["accuracy"] = {}
        r["share"] = {}
        if prof is None:
            return
        for kind, st in SAMPLE_TYPE.get(fam, {}).items():
            truth = r.get("truth", {}).get(kind)
            if not truth or (truth.get("a", 0) + truth.get("b", 0)) <= 0:
                continue
            share = prof.share(st)
            if share is None:
                continue
            t = truth["a"] / (truth["a"] + truth["b"])
            r["share"][kind] = share
            r["accuracy"][kind] = abs(share - t) * 100
        # stack samples (one per thread per tick) the profiler delivered, per second of process life
        if fam in ("emberscope", "ddtrace"):
            n = prof.total("wall-samples") or prof.total("cpu-samples")
        elif fam == "pyroscope-io":
            n = prof.total("cpu") / 1e7  # 100 Hz: each sample is worth 10 ms
        else:
            n = prof.total("samples")
        life = r.get("life_s") or 0
        r["samples_per_s"] = n / life if life else None


def parse_wrk(text):
    out = {}
    units = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
    in_dist = False
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Latency Distribution"):
            in_dist = True
            continue
        if in_dist and "%" in line:
            p, v = line.split()
            num = v.rstrip("usm")
            unit = v[len(num):]
            out["p%s_ms" % p.rstrip("%")] = float(num) * units.get(unit, 1.0)
            continue
        in_dist = False
        if line.startswith("Requests/sec:"):
            out["rps"] = float(line.split()[1])
        if "requests in" in line:
            out["requests"] = int(line.split()[0])
        if line.startswith("Socket errors") or line.startswith("Non-2xx"):
            out["errors"] = line
    return out if "rps" in out else None


def read_json_text(text):
    lines = [l for l in text.splitlines() if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


# --------------------------------------------------------------- figures --

def med(xs):
    xs = [x for x in xs if x is not None and x == x]
    return statistics.median(xs) if xs else None


def paired(results, cond, key, plain="plain", fn=lambda a, b: a / b if b else None):
    """Median over rounds of fn(condition's value, plain's value in the same round)."""
    vals = []
    for rnd, runs in results.items():
        a, b = runs.get(cond), runs.get(plain)
        if a and b and a.get(key) is not None and b.get(key) is not None:
            vals.append(fn(a[key], b[key]))
    return med(vals)


def fmt(v, spec="%.3f", none="—"):
    return none if v is None else spec % v


def summarise(results_by_wl, conds, unavailable, errors):
    """-> {workload: {cond: {figure: value}}} of medians and paired ratios."""
    out = {}
    for wl, results in results_by_wl.items():
        out[wl] = {}
        for cond in conds:
            if cond in unavailable:
                out[wl][cond] = {"na": unavailable[cond]}
                continue
            runs = [rr[cond] for rr in results.values() if cond in rr]
            if not runs:
                out[wl][cond] = {"na": "failed: %s" % errors.get((wl, cond), "no successful run")}
                continue
            s = {"n": len(runs)}
            s["elapsed_s"] = med([r.get("elapsed_s") for r in runs])
            s["elapsed_ratio"] = paired(results, cond, "elapsed_s")
            s["cpu_ratio"] = paired(results, cond, "proc_cpu_s")
            s["prof_core_pct"] = med([r["profiler_cpu_s"] / r["elapsed_s"] * 100 for r in runs
                                      if r.get("profiler_cpu_s") is not None and r.get("elapsed_s")])
            s["self_pct"] = med([r["internal"]["sample_capture_cpu_time_us"] / 1e6 / r["life_s"] * 100
                                 for r in runs if r.get("internal", {}).get("sample_capture_cpu_time_us")
                                 and r.get("life_s")])
            s["rss_delta_mb"] = paired(results, cond, "rss_kb", fn=lambda a, b: (a - b) / 1024.0)
            s["startup_delta_s"] = paired(results, cond, "startup_s", fn=lambda a, b: a - b)
            s["attach_s"] = med([r.get("attach_s") for r in runs])
            s["samples_per_s"] = med([r.get("samples_per_s") for r in runs])
            for kind in ("cpu", "wall", "alloc"):
                s["acc_" + kind] = med([r.get("accuracy", {}).get(kind) for r in runs])
                errs = [r.get("accuracy", {}).get(kind) for r in runs]
                errs = [e for e in errs if e is not None]
                s["accmax_" + kind] = max(errs) if errs else None
            if wl in WEB_WORKLOADS:
                s["rps"] = med([r.get("rps") for r in runs])
                s["rps_ratio"] = paired(results, cond, "rps")
                s["p50_ms"] = med([r.get("p50_ms") for r in runs])
                s["p99_ms"] = med([r.get("p99_ms") for r in runs])
                s["cpu_per_req_ratio"] = paired(results, cond, "cpu_per_req_ms")
                s["procs_profiled"] = med([r.get("procs_profiled") for r in runs])
                s["procs_worst"] = min([r["procs_profiled"] for r in runs if r.get("procs_profiled") is not None],
                                       default=None)
                s["procs_total"] = med([r.get("procs_total") for r in runs])
                s["workers_died"] = sum(r.get("workers_died") or 0 for r in runs)
            if wl in ("alloc",):
                s["alloc_mb_s"] = med([r.get("alloc_bytes", 0) / r["elapsed_s"] / 1e6 for r in runs
                                       if r.get("elapsed_s")])
            fails = sum(1 for rr in results.values() if cond not in rr)
            if fails:
                s["failed_runs"] = fails
            out[wl][cond] = s
    return out


def prof_cell(s, cond):
    if cond == "plain":
        return "—"
    cell = fmt(s.get("prof_core_pct"), "%.2f")
    if s.get("self_pct") is not None:
        cell += " (own telemetry %.2f)" % s["self_pct"]
    return cell


def acc_cell(s, kinds):
    cells = []
    for kind in kinds:
        v = s.get("acc_" + kind)
        cell = "%s %s" % (kind, fmt(v, "%.1f"))
        if v is not None and s.get("n", 1) > 1 and s.get("accmax_" + kind) is not None:
            cell += " (worst %.1f)" % s["accmax_" + kind]
        cells.append(cell)
    return ", ".join(cells)


def tables(summary, conds, level="###"):
    lines = []
    for wl, (script, _, kinds, desc) in WORKLOADS.items():
        if wl not in summary:
            continue
        lines.append("\n%s %s: %s\n" % (level, wl, desc))
        multi = wl == "gunicorn"
        if wl in WEB_WORKLOADS:
            lines.append("| condition | req/s | throughput ratio | p50 ms | p99 ms | CPU per request ratio | "
                         "profiler CPU %% of a core | peak RSS Δ MB | start-up Δ s | samples/s | "
                         "accuracy error, pp (cpu) |%s" % (" processes profiled |" if multi else ""))
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|%s" % ("---|" if multi else ""))
        else:
            lines.append("| condition | elapsed s | elapsed ratio | process CPU ratio | profiler CPU %% of a core | "
                         "peak RSS Δ MB | start-up Δ s | samples/s | accuracy error, pp (%s) |"
                         % ", ".join(kinds))
            lines.append("|---|---|---|---|---|---|---|---|---|")
        for cond in conds:
            s = summary[wl].get(cond, {})
            if "na" in s:
                n = (12 if multi else 11) if wl in WEB_WORKLOADS else 9
                lines.append("| %s | **n/a (%s)** |%s" % (cond, s["na"].replace("|", "/"), " |" * (n - 2)))
                continue
            startup = fmt(s.get("startup_delta_s"), "%+.2f")
            if s.get("attach_s") is not None:
                startup += " (attach %.2f)" % s["attach_s"]
            name = cond + (" (%d failed runs)" % s["failed_runs"] if s.get("failed_runs") else "")
            if cond == "plain":
                acc = "truth"
            else:
                acc = acc_cell(s, kinds)
            if wl in WEB_WORKLOADS:
                row = "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    name, fmt(s.get("rps"), "%.0f"), fmt(s.get("rps_ratio")), fmt(s.get("p50_ms"), "%.2f"),
                    fmt(s.get("p99_ms"), "%.2f"), fmt(s.get("cpu_per_req_ratio")), prof_cell(s, cond),
                    fmt(s.get("rss_delta_mb"), "%+.1f"), startup, fmt(s.get("samples_per_s"), "%.0f"), acc)
                if multi:
                    row += " %s |" % procs_cell(s, cond)
                lines.append(row)
            else:
                lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    name, fmt(s.get("elapsed_s"), "%.2f"), fmt(s.get("elapsed_ratio")), fmt(s.get("cpu_ratio")),
                    prof_cell(s, cond),
                    fmt(s.get("rss_delta_mb"), "%+.1f"), startup, fmt(s.get("samples_per_s"), "%.0f"), acc))
    return "\n".join(lines)


def procs_cell(s, cond):
    """'3 of 3': processes (gunicorn master + workers) whose samples are in the profile."""
    if cond == "plain":
        cell = "—"
    elif s.get("procs_profiled") is None:
        cell = "workers (post_fork)" if family(cond) == "pyroscope-io" else "—"
    else:
        cell = "%g of %s" % (s["procs_profiled"], fmt(s.get("procs_total"), "%g", "?"))
        if s.get("n", 1) > 1 and s.get("procs_worst") is not None and s["procs_worst"] < s["procs_profiled"]:
            cell += " (worst %g)" % s["procs_worst"]
    if s.get("workers_died"):
        cell += "; **%d worker(s) died by a signal**" % s["workers_died"]
    return cell


def headline(summary, conds):
    lines = ["| condition | CPU-bound: elapsed / CPU ratio | allocation-heavy: elapsed / CPU ratio | "
             "web throughput ratio: uvicorn / gunicorn %d workers | accuracy error, pp: CPU-bound cpu / "
             "alloc-heavy alloc / waits wall / web cpu / gunicorn cpu |" % GUNICORN_WORKERS,
             "|---|---|---|---|---|"]
    for cond in conds:
        if cond == "plain":
            continue
        c, a, w, wt, gu = (summary.get(k, {}).get(cond, {}) for k in ("cpu", "alloc", "waits", "web", "gunicorn"))
        if "na" in c:
            lines.append("| %s | **n/a (%s)** | | | |" % (cond, c["na"].replace("|", "/")))
            continue

        def pair(s):
            return "na" if "na" in s else "%s / %s" % (fmt(s.get("elapsed_ratio")), fmt(s.get("cpu_ratio")))

        def rps(s):
            return "na" if "na" in s else fmt(s.get("rps_ratio"))
        accs = " / ".join(fmt(s.get(k), "%.1f") for s, k in
                          ((c, "acc_cpu"), (a, "acc_alloc"), (w, "acc_wall"), (wt, "acc_cpu"), (gu, "acc_cpu")))
        lines.append("| %s | %s | %s | %s / %s | %s |" % (cond, pair(c), pair(a), rps(wt), rps(gu), accs))
    return "\n".join(lines)


# ----------------------------------------------------------------- sweeps --

def sweep_points(smoke):
    if smoke:
        return [("threads", 1, {"BENCH_THREADS": "1"}), ("threads", 8, {"BENCH_THREADS": "8"})], \
            [("alloc", 0, {"BENCH_GROUPS": "0", "BENCH_COMPUTE": "20"}),
             ("alloc", 100, {"BENCH_GROUPS": "100", "BENCH_COMPUTE": "20"})]
    th = [("threads", n, {"BENCH_THREADS": str(n), "BENCH_ROUNDS": "4800"}) for n in (1, 4, 16, 64)]
    al = [("alloc", g, {"BENCH_GROUPS": str(g), "BENCH_COMPUTE": "20", "BENCH_ROUNDS": str(r)})
          for g, r in ((0, 1100), (25, 1000), (100, 800), (300, 550), (1000, 300))]
    return th, al


def plot(sweep_summary, path, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        loud("no plot: matplotlib unavailable (%s)" % e)
        return False
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    for col, kind in enumerate(("threads", "alloc")):
        pts = sweep_summary.get(kind, {})
        for row, (key, label) in enumerate((("tree_cpu_ratio", "CPU overhead (app + profiler), %"),
                                            ("elapsed_ratio", "elapsed slowdown, %"))):
            ax = axes[row][col]
            for cond, series in pts.items():
                if cond == "plain":
                    continue
                xs = [x for x, s in series if s.get(key) is not None]
                ys = [(s[key] - 1) * 100 for x, s in series if s.get(key) is not None]
                if xs:
                    ax.plot(xs, ys, marker="o", label=cond,
                            linestyle="-" if not cond.endswith("stack only") else "--")
            ax.axhline(0, color="grey", linewidth=0.8)
            ax.set_ylabel(label)
            if kind == "threads":
                ax.set_xscale("log", base=2)
                ax.set_xlabel("CPU-bound threads (cpu.py, same total work)")
            else:
                ax.set_xlim(left=0)
                ax.set_xlabel("allocation rate of the unprofiled app, MB/s (alloc.py, 4 threads)")
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title + "\nmedians of paired ratios to plain python; the elapsed panels are the noisier",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def sweep_summary(sweep_results, conds):
    """{kind: {cond: [(x, {elapsed_ratio, tree_cpu_ratio})]}}; alloc x = plain MB/s."""
    out = {}
    for (kind, x), results in sorted(sweep_results.items()):
        xval = x
        if kind == "alloc":
            rates = [rr["plain"].get("alloc_bytes", 0) / rr["plain"]["elapsed_s"] / 1e6
                     for rr in results.values() if "plain" in rr]
            xval = med(rates) or 0.0
        for cond in conds:
            s = {"elapsed_ratio": paired(results, cond, "elapsed_s"),
                 "tree_cpu_ratio": paired(results, cond, "tree_cpu")}
            out.setdefault(kind, {}).setdefault(cond, []).append((xval, s))
    return out


# ------------------------------------------------------------------- main --

def machine_info():
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cores"] = os.cpu_count()
    try:
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    info["os"] = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    info["kernel"] = platform.release()
    return info


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def steal_busy():
    """(busy jiffies of the whole machine, total jiffies) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--smoke", action="store_true", help="one short round of everything (CI)")
    ap.add_argument("--scale", type=float, default=None, help="work multiplier (default 1, smoke 0.06)")
    ap.add_argument("--python", default=os.environ.get("EMBERSCOPE_BASE_PYTHON", "python3"),
                    help="base interpreter of the bench venv")
    ap.add_argument("--pythons", default="", metavar="X.Y,X.Y",
                    help="also measure plain python, emberscope and ddtrace on these CPython versions "
                         "(.pythons/bin/pythonX.Y or PATH; the main venv's own version is skipped)")
    ap.add_argument("--wheel-dir", default=os.path.join(ROOT, "dist"))
    ap.add_argument("--out", default=None, help="Markdown file (default docs/BENCHMARKS.md; smoke: .bench/)")
    ap.add_argument("--plot", default=None, help="PNG (default docs/benchmarks.png; smoke: .bench/)")
    ap.add_argument("--workloads", default=",".join(WORKLOADS), help="comma list")
    ap.add_argument("--conditions", default=None, help="comma list (default all)")
    ap.add_argument("--no-sweeps", action="store_true")
    ap.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                    help="web load generator: wrk when installed (auto), or bench/lib/loadgen.py")
    ap.add_argument("-v", "--verbose", action="store_true", help="log every run's duration")
    ap.add_argument("--core-md", default=None, help="Markdown of bench/core.py to include")
    ap.add_argument("--command", default=None, help="the command line to quote in the document")
    args = ap.parse_args()

    smoke = args.smoke
    rounds = 1 if smoke else args.rounds
    args.scale = args.scale if args.scale is not None else (0.06 if smoke else 1.0)
    args.web_seconds = 1 if smoke else 8
    args.timeout = 120 if smoke else 400
    out_md = args.out or (os.path.join(BENCH_DIR, "BENCHMARKS.smoke.md") if smoke
                          else os.path.join(ROOT, "docs", "BENCHMARKS.md"))
    out_png = args.plot or (os.path.join(BENCH_DIR, "benchmarks-smoke.png") if smoke
                            else os.path.join(ROOT, "docs", "benchmarks.png"))
    t_start = time.time()
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load_before = loadavg()

    state = os.path.join(BENCH_DIR, "setup.json")
    if os.environ.get("BENCH_PEERS_PHASE2") != "1":
        # phase 1 (any interpreter): build the venv, then go on inside it (the decoders need
        # zstandard, and every condition runs its interpreter)
        avail = setup(args.python, args.wheel_dir, allow_apt=not smoke,
                      pythons=benchenv.parse_versions(args.pythons))
        with open(state, "w") as f:
            json.dump(avail, f)
        os.environ["BENCH_PEERS_PHASE2"] = "1"
        sys.stdout.flush()
        os.execv(VPY, [VPY, os.path.abspath(__file__)] + sys.argv[1:])
    with open(state) as f:
        avail = json.load(f)
    args.wrk = avail.get("wrk") if args.loadgen != "python" else None
    if args.loadgen == "wrk" and not args.wrk:
        loud("--loadgen wrk: wrk is not installed; using bench/lib/loadgen.py")
    vers = versions(avail)
    conds = args.conditions.split(",") if args.conditions else list(CONDITIONS)
    for c in [c for c in conds if c not in CONDITIONS]:
        loud("unknown condition '%s' ignored (known: %s)" % (c, ", ".join(CONDITIONS)))
        conds.remove(c)
    workloads = args.workloads.split(",")
    for w in [w for w in workloads if w not in WORKLOADS]:
        loud("unknown workload '%s' ignored (known: %s)" % (w, ", ".join(WORKLOADS)))
        workloads.remove(w)
    if not args.wrk and any(w in WEB_WORKLOADS for w in workloads):
        log("wrk unavailable: the web workloads use bench/lib/loadgen.py (Python, own process)")

    # one target per interpreter: the main venv (every condition), then each --pythons venv
    # (plain, emberscope, ddtrace); each is paired with its own plain run
    targets = [target("main", VENV, vers.get("python", "?"), avail, conds, workloads)]
    extra_failed = {}
    for v, info in sorted(avail.get("pythons", {}).items()):
        if "error" in info:
            extra_failed[v] = info["error"]
            continue
        a = dict(info["avail"], zstandard=avail.get("zstandard"))
        targets.append(target(v, info["venv"], info["version"], a,
                              [c for c in conds if c in EXTRA_CONDITIONS], workloads))
    main_t = targets[0]

    sink = Sink()
    tmp = tempfile.mkdtemp(prefix="ember-peers-")
    busy0 = steal_busy()
    try:
        for rnd in range(rounds):
            rng = random.Random(1000 + rnd)
            for wl in workloads:
                order = [(t, c) for t in targets if wl in t["workloads"] for c in t["runnable"]]
                rng.shuffle(order)
                for t, cond in order:
                    run = Run(cond, wl, WORKLOADS[wl][1], sink, args, tmp, venv=t["venv"]).execute()
                    per = t["results"][wl].setdefault(rnd, {})
                    if run.error:
                        t["errors"][(wl, cond)] = run.error
                    else:
                        per[cond] = run.r
            log("round %d/%d done (%.0f s, load %s)" % (rnd + 1, rounds, time.time() - t_start, loadavg()))
        sweeps = {}
        if not args.no_sweeps:
            th, al = sweep_points(smoke)
            sconds = [c for c in (SWEEP_CONDITIONS if not smoke else
                                  ["plain", "emberscope defaults"]) if c in main_t["runnable"]]
            srounds = 1 if smoke else max(3, rounds - 2)
            for rnd in range(srounds):
                rng = random.Random(2000 + rnd)
                for kind, x, env in th + al:
                    script_env = dict(env)
                    wl = "cpu" if kind == "threads" else "alloc"
                    order = list(sconds)
                    rng.shuffle(order)
                    per = sweeps.setdefault((kind, x), {}).setdefault(rnd, {})
                    for cond in order:
                        run = Run(cond, wl, script_env, sink, args, tmp).execute()
                        if not run.error:
                            r = run.r
                            external = (r.get("profiler_cpu_s") or 0.0) if family(cond) == "py-spy record" else 0.0
                            r["tree_cpu"] = r["proc_cpu_s"] + external
                            per[cond] = r
                log("sweep round %d/%d done (%.0f s)" % (rnd + 1, srounds, time.time() - t_start))
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
    busy1 = steal_busy()
    machine_busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * 100

    # the raw runs first, so a long run survives a bug in the rendering below
    with open(os.path.join(BENCH_DIR, "last-runs.json"), "w") as f:
        json.dump({t["version"]: {"results": t["results"], "errors": {"%s/%s" % k: v for k, v in t["errors"].items()}}
                   for t in targets}, f, default=str)
    for t in targets:
        t["summary"] = summarise(t["results"], t["conds"], t["unavailable"], t["errors"])
    summary = main_t["summary"]
    minutes = (time.time() - t_start) / 60
    info = machine_info()
    command = (args.command or "bench/run peers" + (" --smoke" if smoke else "")).strip()
    vline = ", ".join("%s %s" % (k, v) for k, v in vers.items() if v)
    head = headline(summary, conds)
    body = tables(summary, conds)
    ssum = sweep_summary(sweeps, [c for c in SWEEP_CONDITIONS]) if sweeps else {}
    plotted = plot(ssum, out_png, "emberscope bench %s, %s, %d round(s)%s" % (
        started, info.get("cpu", "?"), rounds, " (SMOKE)" if smoke else "")) if ssum else False

    md = []
    md.append("## Run\n")
    if smoke:
        md.append("**SMOKE RUN** (one short round; not for quoting).\n")
    md.append("- command: `%s` (%d round%s, interleaved, work scale %g, %.1f min)" % (
        command, rounds, "" if rounds == 1 else "s", args.scale, minutes))
    md.append("- date: %s" % started)
    md.append("- machine: %s, %s cores, %s GiB, %s, Linux %s" % (
        info.get("cpu", "?"), info.get("cores"), info.get("mem_gib", "?"), info.get("os", "?"), info.get("kernel")))
    md.append("- load: load average %s at start, %s at end; whole machine %.0f %% busy during the run "
              "(the benchmark itself included; 2 cores = 200 %% would be full)" % (
                  load_before, loadavg(), machine_busy * (info.get("cores") or 1)))
    md.append("- versions: %s" % vline)
    for t in targets[1:]:
        md.append("- also measured on CPython %s (`%s`: %s), see [Other interpreters](#other-interpreters)" % (
            t["version"], os.path.relpath(t["venv"], ROOT), t["vline"]))
    for v, why in extra_failed.items():
        md.append("- **CPython %s: n/a (%s)**" % (v, why))
    md.append("- load generator: %s" % ("wrk %s, 1 thread, 8 connections, %d s" % (vers.get("wrk", "?"), args.web_seconds)
                                        if args.wrk else "bench/lib/loadgen.py (Python), 8 connections, %d s" % args.web_seconds))
    for c, why in main_t["unavailable"].items():
        md.append("- **%s: n/a (%s)**" % (c, why))
    for w, why in main_t["wl_unavailable"].items():
        md.append("- **workload %s: n/a (%s)**" % (w, why))
    md.append("\n## Headline (medians of paired ratios to plain python; accuracy error in percentage points)\n")
    md.append(head)
    md.append("\n## Per workload\n")
    md.append(body)
    if len(targets) > 1:
        md.append("\n## Other interpreters\n")
        md.append("The same workloads and rounds, interleaved with the main conditions; every ratio is to "
                  "plain python on the same interpreter in the same round.")
        for t in targets[1:]:
            md.append("\n### CPython %s (%s)\n" % (t["version"], t["vline"]))
            for c, why in t["unavailable"].items():
                md.append("- **%s: n/a (%s)**" % (c, why))
            for w, why in t["wl_unavailable"].items():
                md.append("- **workload %s: n/a (%s)**" % (w, why))
            md.append("\n" + headline(t["summary"], t["conds"]))
            md.append(tables(t["summary"], t["conds"], level="####"))
    if plotted:
        md.append("\n## Overhead against thread count and allocation rate\n")
        md.append("![overhead vs threads and allocation rate](%s)\n" % os.path.relpath(out_png, os.path.dirname(out_md)))
        md.append(sweep_table(ssum))
    if args.core_md:
        with open(args.core_md) as f:
            core = f.read().strip()
        md.append("\n" + core + "\n\n(`bench/core.py`: emberscope alone, per-stack cost from its own telemetry.)")
    errors = [(t, k, e) for t in targets for k, e in sorted(t["errors"].items())]
    if errors:
        md.append("\n## Failed runs\n")
        for t, (wl, cond), e in errors:
            where = "" if t is main_t else "CPython %s: " % t["version"]
            md.append("- %s%s / %s: `%s`" % (where, wl, cond, e.replace("`", "'")))
    text = "\n".join(md) + "\n"
    print(text)
    notes = os.path.join(HERE, "BENCHMARKS.notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            text = text + "\n" + f.read().rstrip("\n") + "\n"
    write_doc(out_md, text)
    log("wrote %s%s" % (out_md, " and %s" % out_png if plotted else ""))
    with open(os.path.join(BENCH_DIR, "last-results.json"), "w") as f:
        json.dump({"summary": summary, "sweeps": {"%s:%s" % k: v for k, v in sweeps.items()},
                   "errors": {"%s/%s" % k: v for k, v in main_t["errors"].items()},
                   "pythons": {t["version"]: {"summary": t["summary"],
                                              "errors": {"%s/%s" % k: v for k, v in t["errors"].items()}}
                               for t in targets[1:]}}, f, default=str)


def target(label, venv, version, avail, conds, workloads):
    """One interpreter's share of the run: its venv, conditions and results."""
    unavailable = {}
    for c in conds:
        ok = condition_available(c, avail)
        if ok is not True:
            unavailable[c] = ok
            loud("%scondition '%s' n/a: %s" % ("" if label == "main" else "CPython %s: " % version, c, ok))
    wl_unavailable = {}
    for w, need in (("web", "web"), ("gunicorn", "prefork")):
        if w in workloads and avail.get(need) is not True:
            wl_unavailable[w] = avail.get(need) or "not installed"
            loud("%s%s workload n/a: %s" % ("" if label == "main" else "CPython %s: " % version, w,
                                            wl_unavailable[w]))
    wls = [w for w in workloads if w not in wl_unavailable]
    t = {"label": label, "venv": venv, "version": version, "conds": conds, "unavailable": unavailable,
         "runnable": [c for c in conds if c not in unavailable], "workloads": wls,
         "wl_unavailable": wl_unavailable, "results": {wl: {} for wl in wls}, "errors": {}}
    if label != "main":
        v = versions({}, os.path.join(venv, "bin", "python"))
        t["vline"] = ", ".join("%s %s" % (k, v[k]) for k in ("emberscope", "ddtrace", "starlette", "uvicorn",
                                                                "gunicorn", "flask") if v.get(k))
    return t


GEN_START = "<!-- generated:start -->"
GEN_END = "<!-- generated:end -->"
DOC_HEAD = """# Benchmarks: emberscope beside ddtrace, pyroscope-io and py-spy

> **How this file is made.** `bench/run peers` / `bench/run all` rewrite only the part between
> the `generated:start` and `generated:end` HTML comments below (run details, tables, plot, the
> core table and `bench/BENCHMARKS.notes.md`, which explains the method). Everything outside
> the markers, like this note and any hand-written analysis, is kept as it is: write
> observations outside the markers, and say which run (date) they are about.

"""


def write_doc(path, generated):
    """Put `generated` between the markers of `path`, keeping the text around them. A new file
    gets DOC_HEAD; an existing file without the markers is copied to .bench/ first."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    block = "%s\n%s%s" % (GEN_START, generated, GEN_END)
    old = None
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    # a marker counts only alone on its line (the notes quote them inline)
    m1 = re.search("^%s[ \t]*$" % re.escape(GEN_START), old or "", re.M)
    m2 = re.compile("^%s[ \t]*$" % re.escape(GEN_END), re.M).search(old, m1.end()) if m1 else None
    if m1 and m2:
        doc = old[:m1.start()] + block + old[m2.end():]
    else:
        if old is not None and old.strip():
            os.makedirs(BENCH_DIR, exist_ok=True)
            backup = os.path.join(BENCH_DIR, os.path.basename(path) + ".before-markers")
            shutil.copyfile(path, backup)
            loud("%s had no %s / %s markers: replaced whole; the old text is in %s (copy any "
                 "hand-written part back outside the markers)" % (path, GEN_START, GEN_END, backup))
        doc = DOC_HEAD + block + "\n"
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(doc)
    os.replace(tmp, path)


def sweep_table(ssum):
    lines = []
    for kind, label in (("threads", "threads"), ("alloc", "alloc MB/s")):
        pts = ssum.get(kind, {})
        if not pts:
            continue
        conds = [c for c in pts if c != "plain" and any(v for _, st in pts[c] for v in st.values())]
        xs = [x for x, _ in pts[conds[0]]] if conds else []
        lines.append("\n%s sweep: elapsed ratio / CPU ratio (app + profiler) to plain python\n" % label)
        lines.append("| condition | " + " | ".join("%s %s" % (fmt(x, "%.0f"), label) for x in xs) + " |")
        lines.append("|---|" + "---|" * len(xs))
        for c in conds:
            lines.append("| %s | %s |" % (c, " | ".join("%s / %s" % (fmt(s.get("elapsed_ratio")), fmt(s.get("tree_cpu_ratio")))
                                                         for _, s in pts[c])))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
