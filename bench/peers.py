"""emberscope beside ddtrace, pyroscope-io and py-spy: overhead and accuracy, in one run.

    bench/run peers [--rounds N] [--smoke] [--out docs/BENCHMARKS.md] [--plot docs/benchmarks.png]

Creates (or reuses) the peers' venv in .bench/venv from PyPI, installs the emberscope wheel from
dist/ into it (one interpreter for every condition), then runs every condition on every
workload, interleaved: each round visits every workload and runs the conditions in an order
shuffled per round, so a noisy shared machine hits all conditions alike. Figures are medians
over rounds; ratios are paired (each condition against plain python of the same round).

A peer that cannot be installed or started is reported loudly and shown as "n/a (reason)"; it
never fails the command. See docs/BENCHMARKS.md for what every figure means.
"""
import argparse
import datetime
import json
import os
import platform
import random
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
import profiles  # noqa: E402

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
    "zstandard": ["zstandard"],
    "matplotlib": ["matplotlib"],
}

STACK_ONLY = {  # every other collector off, including those that land later
    "DD_PROFILING_MEMORY_ENABLED": "false",
    "DD_PROFILING_HEAP_ENABLED": "false",
    "DD_PROFILING_LOCK_ENABLED": "false",
    "DD_PROFILING_EXCEPTION_ENABLED": "false",
    "DD_PROFILING_PYTORCH_ENABLED": "false",
}

CONDITIONS = ["plain", "emberscope defaults", "emberscope stack only", "ddtrace defaults",
              "ddtrace stack only", "pyroscope-io", "py-spy record"]
SWEEP_CONDITIONS = ["plain", "emberscope defaults", "emberscope stack only", "ddtrace defaults",
                    "ddtrace stack only", "pyroscope-io", "py-spy record"]

# name -> (script, env, truth kinds for accuracy, description)
WORKLOADS = {
    "cpu": ("cpu.py", {}, ["cpu"], "CPU-bound, 4 threads (fib + dict churn)"),
    "alloc": ("alloc.py", {}, ["cpu", "alloc"], "allocation-heavy, 4 threads"),
    "lock": ("lock.py", {}, ["cpu"], "lock-heavy, 8 threads on 2 shared Locks"),
    "waits": ("waits.py", {}, ["wall"], "sleep + socket waits, 4 threads + 4 echo threads"),
    "threads200": ("threads200.py", {}, ["cpu"], "201 threads: 198 parked, 2 CPU workers"),
    "deep": ("deep.py", {}, ["cpu"], "2 CPU threads at 500-deep recursion"),
    "web": (None, {}, ["cpu"], "Starlette app under uvicorn, wrk on loopback, 8 connections"),
}

# sample type holding each kind of truth, per profiler family
SAMPLE_TYPE = {
    "emberscope": {"cpu": "cpu-time", "wall": "wall-time", "alloc": "alloc-space"},
    "ddtrace": {"cpu": "cpu-time", "wall": "wall-time", "alloc": "alloc-space"},
    "pyroscope-io": {"cpu": "cpu"},       # default oncpu=True, gil_only=True
    "py-spy record": {"cpu": "samples"},  # default: active threads only (no --idle)
}


def family(cond):
    return cond.split()[0] if cond.split()[0] in ("emberscope", "ddtrace") else cond


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


def loud(msg):
    bar = "!" * 78
    log("%s\n!! %s\n%s" % (bar, msg, bar))


# ---------------------------------------------------------------- set-up --

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


def setup(base_python, wheel_dir, allow_apt):
    """-> dict of what is available: {name: True or "reason"}, plus versions."""
    avail = {}
    os.makedirs(BENCH_DIR, exist_ok=True)
    if not os.path.exists(VPY):
        log("creating %s with %s" % (VENV, base_python))
        rc, out = sh([base_python, "-m", "venv", VENV])
        if rc:
            raise SystemExit("cannot create the bench venv: %s" % last_line(out))
    for name, pkgs in PEER_PACKAGES.items():
        rc, out = sh([VPY, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + pkgs)
        avail[name] = True if rc == 0 else "pip install %s failed: %s" % (" ".join(pkgs), last_line(out))
        if rc:
            loud("peer %s not installable: %s" % (name, avail[name]))
    wheels = sorted(f for f in os.listdir(wheel_dir) if f.startswith("emberscope-") and f.endswith(".whl")) \
        if os.path.isdir(wheel_dir) else []
    if wheels:
        rc, out = sh([VPY, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--force-reinstall",
                      "--no-deps", os.path.join(wheel_dir, wheels[-1])])
        avail["emberscope"] = True if rc == 0 else "wheel install failed: %s" % last_line(out)
    else:
        avail["emberscope"] = "no emberscope wheel in %s (run bench/run without BENCH_SKIP_BUILD)" % wheel_dir
    if avail["emberscope"] is not True:
        loud("emberscope: " + avail["emberscope"])
    # a package that installed but does not import/run is not available either
    checks = {"ddtrace": [VPY, "-c", "import ddtrace.profiling"],
              "pyroscope-io": [VPY, "-c", "import pyroscope"],
              "py-spy": [os.path.join(VENV, "bin", "py-spy"), "--version"],
              "web": [VPY, "-c", "import starlette, uvicorn"],
              "emberscope": [VPY, "-c", "import emberscope._native"]}
    for name, cmd in checks.items():
        if avail.get(name) is True:
            rc, out = sh(cmd, timeout=120)
            if rc:
                avail[name] = "installed but broken: %s" % last_line(out)
                loud("peer %s: %s" % (name, avail[name]))
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
    return avail


def versions(avail):
    code = ("import importlib.metadata as m, json, sys\nout={'python': sys.version.split()[0]}\n"
            "for d in ['emberscope','ddtrace','pyroscope-io','py-spy','starlette','uvicorn','matplotlib']:\n"
            "    try: out[d]=m.version(d)\n    except Exception: out[d]=None\nprint(json.dumps(out))")
    rc, out = sh([VPY, "-c", code])
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


def vmhwm_kb(pid):
    """Peak RSS (VmHWM) of a live process, kB, or None."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


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
    try:
        with open(path) as f:
            lines = [l for l in f.read().splitlines() if l.startswith("{")]
        return json.loads(lines[-1]) if lines else None
    except (OSError, ValueError):
        return None


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
        return " | ".join(lines[-n:])[:300]
    except OSError:
        return ""


class Run:
    """One condition on one workload; fills self.r (figures) or self.error."""

    def __init__(self, cond, workload, env_extra, sink, opts, tmp):
        self.cond, self.workload, self.sink, self.opts = cond, workload, sink, opts
        self.env_extra = env_extra
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
            return [os.path.join(VENV, "bin", "emberscope-run")] + argv
        if fam == "ddtrace":
            return [os.path.join(VENV, "bin", "ddtrace-run")] + argv
        if fam == "pyroscope-io":
            return [argv[0], os.path.join(HERE, "peers", "pyroscope_run.py")] + argv[1:]
        return argv

    def attach_pyspy(self, pid):
        """py-spy record attached from outside; returns (proc, seconds until it samples)."""
        out = os.path.join(self.tmp, "pyspy.txt")
        t0 = time.time()
        p = subprocess.Popen([os.path.join(VENV, "bin", "py-spy"), "record", "--pid", str(pid),
                              "--rate", "100", "--format", "raw", "-o", out],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
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
                prof.add(["samples"], profiles.parse_pyspy_raw(f.read()))
            self.profile = prof
        else:
            self.error = "py-spy wrote no output: %s" % " | ".join(self.pyspy_log[-3:])[:200]

    def collect(self):
        fam = family(self.cond)
        if fam in ("emberscope", "ddtrace"):
            prof, n, meta = profiles.Profile(), 0, {}
            for f in sorted(os.listdir(self.tmp)):
                full = os.path.join(self.tmp, f)
                if f.endswith(".pprof"):
                    prof.add(*profiles.decode_pprof(open(full, "rb").read()))
                    n += 1
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
        argv = self.wrap([VPY, script])
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

    def run_web(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        argv = self.wrap([VPY, "-m", "uvicorn", "web_app:app", "--app-dir", WL, "--host", "127.0.0.1",
                          "--port", str(port), "--no-access-log", "--log-level", "warning"])
        out, err = os.path.join(self.tmp, "stdout"), os.path.join(self.tmp, "stderr")
        env = self.env()
        env.pop("BENCH_GO_FILE", None)
        t_spawn = time.time()
        with open(out, "w") as fo, open(err, "w") as fe:
            proc = subprocess.Popen(argv, env=env, stdout=fo, stderr=fe)
        base = "http://127.0.0.1:%d" % port
        ready = None
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
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
        spy = None
        if family(self.cond) == "py-spy record":
            spy, self.r["attach_s"] = self.attach_pyspy(proc.pid)
        time.sleep(0.3)
        c0, o0 = proc_cpu(proc.pid), proc_cpu(proc.pid, exclude_main=True)
        s0 = proc_cpu(spy.pid) if spy else 0.0
        w0 = time.perf_counter()
        load = self.load(port)
        elapsed = time.perf_counter() - w0
        c1, o1 = proc_cpu(proc.pid), proc_cpu(proc.pid, exclude_main=True)
        s1 = proc_cpu(spy.pid) if spy else 0.0
        hwm = vmhwm_kb(proc.pid)
        proc.send_signal(signal.SIGINT)
        rc, ru, t_exit = wait_rusage(proc, 60)
        if spy:
            self.finish_pyspy(spy, t_exit)
            self.r["profiler_cpu_s"] = s1 - s0
        else:
            self.r["profiler_cpu_s"] = o1 - o0
        res = read_json_line(out)
        if res is None or load is None:
            self.error = "web run failed (exit %s): %s" % (rc, tail(err) or tail(out))
            return
        self.r.update(res)
        self.r.update(load)
        self.r["elapsed_s"] = elapsed
        self.r["proc_cpu_s"] = c1 - c0
        self.r["cpu_per_req_ms"] = (c1 - c0) / max(1, load["requests"]) * 1000
        if hwm:
            self.r["rss_kb"] = hwm + self.r.get("extra_rss_kb", 0)
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
            if self.workload == "web":
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
                log("  %-10s %-22s %6.1f s" % (self.workload, self.cond, time.time() - t0))
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
            if wl == "web":
                s["rps"] = med([r.get("rps") for r in runs])
                s["rps_ratio"] = paired(results, cond, "rps")
                s["p50_ms"] = med([r.get("p50_ms") for r in runs])
                s["p99_ms"] = med([r.get("p99_ms") for r in runs])
                s["cpu_per_req_ratio"] = paired(results, cond, "cpu_per_req_ms")
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


def tables(summary, conds):
    lines = []
    for wl, (script, _, kinds, desc) in WORKLOADS.items():
        if wl not in summary:
            continue
        lines.append("\n### %s: %s\n" % (wl, desc))
        if wl == "web":
            lines.append("| condition | req/s | throughput ratio | p50 ms | p99 ms | CPU per request ratio | "
                         "profiler CPU % of a core | peak RSS Δ MB | start-up Δ s | samples/s | "
                         "accuracy error, pp (cpu) |")
            lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
        else:
            lines.append("| condition | elapsed s | elapsed ratio | process CPU ratio | profiler CPU %% of a core | "
                         "peak RSS Δ MB | start-up Δ s | samples/s | accuracy error, pp (%s) |"
                         % ", ".join(kinds))
            lines.append("|---|---|---|---|---|---|---|---|---|")
        for cond in conds:
            s = summary[wl].get(cond, {})
            if "na" in s:
                n = 11 if wl == "web" else 9
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
            if wl == "web":
                lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    name, fmt(s.get("rps"), "%.0f"), fmt(s.get("rps_ratio")), fmt(s.get("p50_ms"), "%.2f"),
                    fmt(s.get("p99_ms"), "%.2f"), fmt(s.get("cpu_per_req_ratio")), prof_cell(s, cond),
                    fmt(s.get("rss_delta_mb"), "%+.1f"), startup, fmt(s.get("samples_per_s"), "%.0f"), acc))
            else:
                lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                    name, fmt(s.get("elapsed_s"), "%.2f"), fmt(s.get("elapsed_ratio")), fmt(s.get("cpu_ratio")),
                    prof_cell(s, cond),
                    fmt(s.get("rss_delta_mb"), "%+.1f"), startup, fmt(s.get("samples_per_s"), "%.0f"), acc))
    return "\n".join(lines)


def headline(summary, conds):
    lines = ["| condition | CPU-bound: elapsed / CPU ratio | allocation-heavy: elapsed / CPU ratio | "
             "web: throughput ratio | accuracy error, pp: CPU-bound cpu / alloc-heavy alloc / waits wall / web cpu |",
             "|---|---|---|---|---|"]
    for cond in conds:
        if cond == "plain":
            continue
        c, a, w, wt = (summary.get(k, {}).get(cond, {}) for k in ("cpu", "alloc", "waits", "web"))
        if "na" in c:
            lines.append("| %s | **n/a (%s)** | | | |" % (cond, c["na"].replace("|", "/")))
            continue

        def pair(s):
            return "na" if "na" in s else "%s / %s" % (fmt(s.get("elapsed_ratio")), fmt(s.get("cpu_ratio")))
        accs = " / ".join(fmt(s.get(k), "%.1f") for s, k in
                          ((c, "acc_cpu"), (a, "acc_alloc"), (w, "acc_wall"), (wt, "acc_cpu")))
        lines.append("| %s | %s | %s | %s | %s |" % (cond, pair(c), pair(a),
                                                      fmt(wt.get("rps_ratio")) if "na" not in wt else "na", accs))
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
    ap.add_argument("--scale", type=float, default=None, help="work multiplier (default 1, smoke 0.08)")
    ap.add_argument("--python", default=os.environ.get("EMBERSCOPE_BASE_PYTHON", "python3"),
                    help="base interpreter of the bench venv")
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
        avail = setup(args.python, args.wheel_dir, allow_apt=not smoke)
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
    conds = args.conditions.split(",") if args.conditions else CONDITIONS
    unavailable = {}
    for c in conds:
        ok = condition_available(c, avail)
        if ok is not True:
            unavailable[c] = ok
            loud("condition '%s' n/a: %s" % (c, ok))
    workloads = [w for w in args.workloads.split(",") if w in WORKLOADS]
    if "web" in workloads and avail.get("web") is not True:
        loud("web workload n/a: %s" % avail.get("web"))
        workloads.remove("web")
    if not args.wrk:
        log("wrk unavailable: the web workload uses bench/lib/loadgen.py (Python, own process)")
    runnable = [c for c in conds if c not in unavailable]

    sink = Sink()
    tmp = tempfile.mkdtemp(prefix="ember-peers-")
    results = {wl: {} for wl in workloads}
    errors = {}
    busy0 = steal_busy()
    try:
        for rnd in range(rounds):
            rng = random.Random(1000 + rnd)
            for wl in workloads:
                order = list(runnable)
                rng.shuffle(order)
                results[wl][rnd] = {}
                for cond in order:
                    run = Run(cond, wl, WORKLOADS[wl][1], sink, args, tmp).execute()
                    if run.error:
                        errors[(wl, cond)] = run.error
                    else:
                        results[wl][rnd][cond] = run.r
            log("round %d/%d done (%.0f s, load %s)" % (rnd + 1, rounds, time.time() - t_start, loadavg()))
        sweeps = {}
        if not args.no_sweeps:
            th, al = sweep_points(smoke)
            sconds = [c for c in (SWEEP_CONDITIONS if not smoke else
                                  ["plain", "emberscope defaults"]) if c in runnable]
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
                            external = r.get("profiler_cpu_s") or 0.0 if cond == "py-spy record" else 0.0
                            r["tree_cpu"] = r["proc_cpu_s"] + external
                            per[cond] = r
                log("sweep round %d/%d done (%.0f s)" % (rnd + 1, srounds, time.time() - t_start))
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
    busy1 = steal_busy()
    machine_busy = (busy1[0] - busy0[0]) / max(1, busy1[1] - busy0[1]) * 100

    summary = summarise(results, conds, unavailable, errors)
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
    md.append("# Benchmarks: emberscope beside ddtrace, pyroscope-io and py-spy\n")
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
    md.append("- load generator: %s" % ("wrk %s, 1 thread, 8 connections, %d s" % (vers.get("wrk", "?"), args.web_seconds)
                                        if args.wrk else "bench/lib/loadgen.py (Python), 8 connections, %d s" % args.web_seconds))
    for c, why in unavailable.items():
        md.append("- **%s: n/a (%s)**" % (c, why))
    md.append("\n## Headline (medians of paired ratios to plain python; accuracy error in percentage points)\n")
    md.append(head)
    md.append("\n## Per workload\n")
    md.append(body)
    if plotted:
        md.append("\n## Overhead against thread count and allocation rate\n")
        md.append("![overhead vs threads and allocation rate](%s)\n" % os.path.relpath(out_png, os.path.dirname(out_md)))
        md.append(sweep_table(ssum))
    if args.core_md:
        with open(args.core_md) as f:
            core = f.read().strip()
        md.append("\n" + core + "\n\n(`bench/core.py`: emberscope alone, per-stack cost from its own telemetry.)")
    if errors:
        md.append("\n## Failed runs\n")
        for (wl, cond), e in sorted(errors.items()):
            md.append("- %s / %s: `%s`" % (wl, cond, e.replace("`", "'")))
    text = "\n".join(md) + "\n"
    print(text)
    os.makedirs(os.path.dirname(out_md), exist_ok=True)
    doc = text
    notes = os.path.join(HERE, "BENCHMARKS.notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            doc = text + "\n" + f.read()
    with open(out_md, "w") as f:
        f.write(doc)
    log("wrote %s%s" % (out_md, " and %s" % out_png if plotted else ""))
    with open(os.path.join(BENCH_DIR, "last-results.json"), "w") as f:
        json.dump({"summary": summary, "sweeps": {"%s:%s" % k: v for k, v in sweeps.items()},
                   "errors": {"%s/%s" % k: v for k, v in errors.items()}}, f, default=str)


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
