"""Shared helpers for the benchmark workloads (bench/peers.py runs them).

Every workload prints exactly one JSON line on stdout at the end (the harness takes the last
line starting with '{'):

    t_main_epoch   time.time() when the workload's own code started (start-up delay)
    elapsed_s      perf_counter around the measured section
    proc_cpu_s     process CPU (user+sys, all threads) around the measured section
    other_cpu_s    CPU used during the measured section by the threads still alive at its end
                   that are not the workload's own (from /proc/self/task/*/schedstat): the
                   in-process profilers' threads
                   (emberscope's sampler, ddtrace's and pyroscope's native threads)
    vmhwm_kb       peak RSS of the process so far (VmHWM; ru_maxrss is useless here: Linux
                   carries the parent's high-water mark across fork+exec)
    truth          {kind: {"a": x, "b": y}}: the planted quantities behind the accuracy
                   figure (kind = cpu, wall or alloc)
"""
import json
import os
import sys
import threading
import time

T_MAIN = time.time()
CLK_TCK = os.sysconf("SC_CLK_TCK")


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def scale():
    """BENCH_SCALE multiplies every workload's amount of work (smoke mode uses ~0.15)."""
    return env_float("BENCH_SCALE", 1.0)


def _task_cpu(tid):
    """CPU seconds of one thread: schedstat (ns resolution) or stat (clock ticks)."""
    try:
        with open("/proc/self/task/%d/schedstat" % tid) as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    try:
        with open("/proc/self/task/%d/stat" % tid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def threads_cpu():
    """{native thread id: CPU seconds} of every live thread of this process."""
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return {}
    return {t: _task_cpu(t) for t in tids}


def vmhwm_kb(pid="self"):
    """Peak resident set size (VmHWM) of a process so far, kB; None if unreadable."""
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def other_threads_cpu(app_tids, before):
    """CPU seconds spent since `before` (a threads_cpu() snapshot) by the live threads whose
    native id is not in app_tids."""
    now = threads_cpu()
    if not now:
        return float("nan")
    return sum(c - before.get(t, 0.0) for t, c in now.items() if t not in app_tids)


class Recorder:
    """Remembers the native ids of the workload's threads and accumulates planted truths."""

    def __init__(self):
        self.tids = {threading.get_native_id()}
        self.lock = threading.Lock()
        self.truth = {}
        self.extra = {}

    def register(self):
        with self.lock:
            self.tids.add(threading.get_native_id())

    def add(self, kind, key, amount):
        with self.lock:
            d = self.truth.setdefault(kind, {})
            d[key] = d.get(key, 0.0) + amount

    def start(self):
        go = os.environ.get("BENCH_GO_FILE")
        if go:  # an external profiler (py-spy) attaches first; it creates this file when ready
            deadline = time.time() + 60
            while not os.path.exists(go) and time.time() < deadline:
                time.sleep(0.005)
        self.cpu0 = threads_cpu()
        self.t0 = time.perf_counter()
        self.c0 = time.process_time()

    def finish(self):
        elapsed = time.perf_counter() - self.t0
        proc = time.process_time() - self.c0
        out = {"t_main_epoch": T_MAIN, "elapsed_s": elapsed, "proc_cpu_s": proc,
               "other_cpu_s": other_threads_cpu(self.tids, self.cpu0), "truth": self.truth,
               "vmhwm_kb": vmhwm_kb()}
        out.update(self.extra)
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def run_threads(n, target, *args):
    ts = [threading.Thread(target=target, args=args, name="worker-%d" % i) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
