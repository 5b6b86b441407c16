"""Profiler-core benchmark: per-stack cost, sampler CPU and application slowdown.

Prints a Markdown table. Every condition runs interleaved, round after round, and the table
quotes medians, so a noisy shared machine affects all conditions alike. Timings come from
the workloads themselves (perf_counter, process_time) and from the profiler's own
self-telemetry (internal_metadata.json written next to each profile).

    bench/run core [--rounds N] [--python PY] [--pythons 3.11,3.13] [--smoke]

--pythons 3.11,3.13 adds one table per listed CPython X.Y after the table of --python (the .venv
bench/run built; a listed version equal to its own is not run twice): .bench/venv-X.Y, created
from .pythons/bin/pythonX.Y (tools/install-pythons.sh) with the abi3 wheel from dist/.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "workloads")
sys.path.insert(0, os.path.join(HERE, "lib"))
import benchenv  # noqa: E402


def run(python, script, env_extra, profile):
    env = dict(os.environ)
    env.update(env_extra)
    out_dir = tempfile.mkdtemp(prefix="ember-bench-")
    cmd = [python, os.path.join(WORK, script)]
    if profile:
        env.update({
            "DD_PROFILING_ENABLED": "true",
            "DD_PROFILING_OUTPUT_PPROF": os.path.join(out_dir, "p"),
            "DD_PROFILING_UPLOAD_INTERVAL": "600",
        })
        cmd = [python, "-m", "emberscope.commands.run"] + cmd
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=600)
    if proc.returncode != 0:
        raise SystemExit("benchmark run failed: %s\n%s" % (" ".join(cmd), proc.stderr))
    result = {}
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if lines:
        result.update(json.loads(lines[-1]))
    internal = {"sample_count": 0, "sample_capture_cpu_time_us": 0, "duration_s": 0.0}
    for path in glob.glob(os.path.join(out_dir, "*.internal_metadata.json")):
        with open(path) as f:
            meta = json.load(f)
        internal["sample_count"] += meta.get("sample_count", 0)
        internal["sample_capture_cpu_time_us"] += meta.get("sample_capture_cpu_time_us", 0)
        internal["sampler"] = meta.get("sampler")
        internal["interval_us"] = meta.get("sampling_interval_us")
    result["internal"] = internal
    return result


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--pythons", default="", metavar="X.Y,X.Y",
                    help="also one table per listed CPython version (default: --python only)")
    ap.add_argument("--wheel-dir", default=os.path.join(os.path.dirname(HERE), "dist"))
    ap.add_argument("--smoke", action="store_true", help="one short round (CI)")
    args = ap.parse_args()
    pythons = [args.python]
    own = benchenv.py_version(args.python) if args.pythons else None
    for v in benchenv.parse_versions(args.pythons):
        if v != own:
            pythons.append(benchenv.emberscope_python(v, args.wheel_dir))
    for python in pythons:
        table(python, args)


def table(python, args):
    rounds = 1 if args.smoke else args.rounds
    scale = "0.2" if args.smoke else "1"
    park_s = "1" if args.smoke else "5"

    cpu_rounds = str(int(100 * float(scale)) or 1)
    conditions = {
        "plain": ("cpu_threads.py", {"BENCH_ROUNDS": cpu_rounds}, False),
        "emberscope": ("cpu_threads.py", {"BENCH_ROUNDS": cpu_rounds}, True),
        "parked-100hz": ("parked_stacks.py", {"BENCH_SECONDS": park_s}, True),
        "parked-1000hz": ("parked_stacks.py", {"BENCH_SECONDS": park_s,
                                               "EMBERSCOPE_MAX_SAMPLING_HZ": "1000",
                                               "DD_PROFILING_MAX_TIME_USAGE_PCT": "100"}, True),
    }
    results = {k: [] for k in conditions}
    for r in range(rounds):
        for name, (script, env, prof) in conditions.items():
            results[name].append(run(python, script, env, prof))
        print("round %d/%d done" % (r + 1, rounds), file=sys.stderr)

    def med(name, key):
        return median([x.get(key) for x in results[name]])

    def per_stack_us(name):
        vals = []
        for x in results[name]:
            i = x["internal"]
            if i["sample_count"]:
                vals.append(i["sample_capture_cpu_time_us"] / i["sample_count"])
        return median(vals)

    def core_pct(name, seconds):
        vals = [x["internal"]["sample_capture_cpu_time_us"] / 1e6 / seconds * 100 for x in results[name]]
        return median(vals)

    def rate(name, seconds):
        return median([x["internal"]["sample_count"] / seconds for x in results[name]])

    secs = float(park_s)
    base_e, base_c = med("plain", "elapsed_s"), med("plain", "proc_cpu_s")
    prof_e, prof_c = med("emberscope", "elapsed_s"), med("emberscope", "proc_cpu_s")
    version = subprocess.run([python, "-c", "import sys;print(sys.version.split()[0])"],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    print("\n## Profiler core (CPython %s, %d round%s, medians)\n" % (version, rounds, "" if rounds == 1 else "s"))
    print("| measure | value |")
    print("|---|---|")
    print("| capture cost per stack, 10 threads x 30 frames, 100 Hz (us) | %.2f |" % per_stack_us("parked-100hz"))
    print("| capture cost per stack, 10 threads x 30 frames, 1000 Hz (us) | %.2f |" % per_stack_us("parked-1000hz"))
    print("| sampler CPU, 10 threads at defaults (%% of a core) | %.3f |" % core_pct("parked-100hz", secs))
    print("| sampler CPU, 10 threads at 1000 Hz, budget 100%% (%% of a core) | %.3f |" % core_pct("parked-1000hz", secs))
    print("| samples per second at defaults / at 1000 Hz | %.0f / %.0f |" % (rate("parked-100hz", secs), rate("parked-1000hz", secs)))
    print("| CPU-bound 4 threads: elapsed plain / emberscope (s) | %.3f / %.3f |" % (base_e, prof_e))
    print("| CPU-bound 4 threads: elapsed ratio | %.3f |" % (prof_e / base_e))
    print("| CPU-bound 4 threads: process CPU ratio | %.3f |" % (prof_c / base_c))


if __name__ == "__main__":
    main()
