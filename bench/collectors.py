"""Overhead of the allocation/heap and lock collectors (issue 5).

Runs bench/workloads/alloc_heavy.py and lock_heavy.py under: plain python, emberscope with
every collector on (defaults), emberscope with only allocation+heap profiling, emberscope
with only lock profiling, emberscope with memory off, and ddtrace-run with the profiler's
defaults (when ddtrace is importable by --ddtrace-python). Rounds are interleaved; the
table shows medians of the CPU the workload reports for its measured section (alloc: the
main thread; lock: the whole process, 4 threads) and the ratio to plain python.

    python bench/collectors.py [--rounds 5] [--python PY] [--ddtrace-python PY]
                               [--site DIR] [--base-site DIR] [--smoke]

--site puts an unpacked emberscope wheel first on PYTHONPATH (default: whatever PY imports).
--base-site adds "base" twins of the alloc+heap-only, heap-off and lock-only conditions that run
another unpacked wheel (e.g. the last release), interleaved with the others: a before/after
comparison in one run on the same machine.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORK = os.path.join(HERE, "workloads")

ALL_OFF = {"DD_PROFILING_STACK_ENABLED": "false", "DD_PROFILING_LOCK_ENABLED": "false",
           "DD_PROFILING_MEMORY_ENABLED": "false", "DD_PROFILING_EXCEPTION_ENABLED": "false"}


def conditions(ddtrace_python, base_site):
    mem_only = dict(ALL_OFF, DD_PROFILING_MEMORY_ENABLED="true")
    alloc_only = dict(mem_only, DD_PROFILING_HEAP_ENABLED="false")
    lock_only = dict(ALL_OFF, DD_PROFILING_LOCK_ENABLED="true")
    out = [
        ("plain", "plain", {}),
        ("emberscope defaults", "emberscope", {}),
        ("emberscope alloc+heap only", "emberscope", mem_only),
        ("emberscope alloc only (heap off)", "emberscope", alloc_only),
        ("emberscope lock only", "emberscope", lock_only),
        ("emberscope memory off", "emberscope", {"DD_PROFILING_MEMORY_ENABLED": "false"}),
    ]
    if base_site:
        out += [
            ("base alloc+heap only", "base", mem_only),
            ("base alloc only (heap off)", "base", alloc_only),
            ("base lock only", "base", lock_only),
        ]
    if ddtrace_python:
        out.append(("ddtrace defaults", "ddtrace", {}))
        out.append(("ddtrace memory off", "ddtrace", {"DD_PROFILING_MEMORY_ENABLED": "false",
                                                       "DD_PROFILING_HEAP_ENABLED": "false"}))
    return out


def run_once(kind, python, ddtrace_python, site, script, env_extra, scale, tmp):
    env = dict((k, v) for k, v in os.environ.items()
               if not k.startswith(("DD_", "EMBERSCOPE_", "PYTHONPATH")))
    env.update(scale)
    if kind in ("emberscope", "base"):
        env.update({"DD_PROFILING_ENABLED": "true",
                    "DD_PROFILING_OUTPUT_PPROF": os.path.join(tmp, "prof")})
        if site:
            env["PYTHONPATH"] = site
        argv = [python, "-m", "emberscope.commands.run", python, script]
    elif kind == "ddtrace":
        env.update({"DD_PROFILING_ENABLED": "true", "DD_TRACE_AGENT_URL": "http://127.0.0.1:9",
                    "DD_SERVICE": "bench", "DD_INSTRUMENTATION_TELEMETRY_ENABLED": "false"})
        ddrun = os.path.join(os.path.dirname(ddtrace_python), "ddtrace-run")
        argv = [ddrun, ddtrace_python, script]
    else:
        argv = [python, script]
    env.update(env_extra)
    r = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=900)
    for line in reversed(r.stdout.decode().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError("%s failed: %s" % (" ".join(argv), r.stderr.decode()[-2000:]))


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else 0.5 * (xs[n // 2 - 1] + xs[n // 2])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--ddtrace-python", default=None)
    ap.add_argument("--site", default=None)
    ap.add_argument("--base-site", default=None,
                    help="another unpacked emberscope wheel, measured beside --site")
    ap.add_argument("--smoke", action="store_true")
    args = ap.parse_args()
    ddpy = args.ddtrace_python
    if ddpy:
        ok = subprocess.run([ddpy, "-c", "import ddtrace"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL).returncode == 0
        ddpy = ddpy if ok else None
    rounds = 1 if args.smoke else args.rounds
    workloads = [
        ("alloc_heavy", os.path.join(WORK, "alloc_heavy.py"),
         {"BENCH_ROUNDS": "600" if args.smoke else "6000"}),
        ("lock_heavy", os.path.join(WORK, "lock_heavy.py"),
         {"BENCH_OPS": "4000" if args.smoke else "40000"}),
    ]
    conds = conditions(ddpy, args.base_site)
    results = {}
    tmp = tempfile.mkdtemp(prefix="ember-bench-coll-")
    try:
        for rnd in range(rounds):
            for wname, script, scale in workloads:
                for cname, kind, extra in conds:
                    py = ddpy if kind == "ddtrace" else args.python
                    if kind == "plain" and ddpy:
                        py = ddpy  # same interpreter as ddtrace for the baseline
                    site = args.base_site if kind == "base" else args.site
                    r = run_once(kind, py, ddpy, site, script, extra, scale, tmp)
                    results.setdefault((wname, cname), []).append(r)
                    sys.stderr.write("round %d %s %s: %.3f s\n" % (rnd, wname, cname,
                                                                  r["main_cpu_s"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("| workload | condition | CPU s (median of %d) | vs plain | wall s |" % rounds)
    print("| --- | --- | --- | --- | --- |")
    for wname, _s, _scale in workloads:
        base = median([r["main_cpu_s"] for r in results[(wname, "plain")]])
        for cname, _k, _e in conds:
            rs = results[(wname, cname)]
            cpu = median([r["main_cpu_s"] for r in rs])
            wall = median([r["wall_s"] for r in rs])
            print("| %s | %s | %.3f | %+.1f %% | %.2f |" % (
                wname, cname, cpu, 100.0 * (cpu / base - 1.0), wall))


if __name__ == "__main__":
    main()
