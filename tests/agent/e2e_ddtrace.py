"""End-to-end: the real `ddtrace` package from PyPI uploads to emberscope-agent.

Usage: python e2e_ddtrace.py --url http://127.0.0.1:PORT --venv VENV [--agent-log FILE]

Runs tests/agent/workload.py twice at once under `ddtrace-run` (versions 1.0
and 2.0, 2.0 with a heavier slow path), then checks every query endpoint.
"""
import argparse
import gzip
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SERVICE = "e2e-shop"


def get(url, raw=False):
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read()
        return body if raw else json.loads(body)


def find(node, name):
    if node["name"] == name:
        return node
    for c in node["children"]:
        f = find(c, name)
        if f:
            return f
    return None


def check(cond, msg):
    if not cond:
        print("FAIL:", msg)
        sys.exit(1)
    print("ok:", msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--venv", required=True)
    ap.add_argument("--agent-log")
    ap.add_argument("--seconds", default="10")
    a = ap.parse_args()
    base = a.url.rstrip("/")
    procs = []
    for version, slow in (("1.0", "1"), ("2.0", "4")):
        env = dict(os.environ)
        env.update({
            "DD_PROFILING_ENABLED": "true",
            "DD_TRACE_AGENT_URL": base,
            "DD_PROFILING_UPLOAD_INTERVAL": "2",
            "DD_SERVICE": SERVICE,
            "DD_ENV": "test",
            "DD_VERSION": version,
            "DD_TAGS": "team:perf,region:eu",
            "WORKLOAD_SECONDS": a.seconds,
            "WORKLOAD_SLOW_FACTOR": slow,
        })
        log = open(os.path.join(HERE, f".workload-{version}.log"), "w")
        procs.append((version, log, subprocess.Popen(
            [os.path.join(a.venv, "bin", "ddtrace-run"), os.path.join(a.venv, "bin", "python"),
             os.path.join(HERE, "workload.py")],
            env=env, stdout=log, stderr=subprocess.STDOUT)))
    for version, log, p in procs:
        rc = p.wait(timeout=120)
        log.close()
        out = open(log.name).read()
        check(rc == 0, f"workload {version} exited 0")
        bad = [l for l in out.splitlines() if "error" in l.lower() and "upload" in l.lower()]
        check(not bad, f"ddtrace {version} logged no upload errors {bad[:3]}")
    time.sleep(1)

    services = get(f"{base}/api/services")
    svc = next((s for s in services if s["service"] == SERVICE), None)
    check(svc is not None, f"service {SERVICE} listed: {[s['service'] for s in services]}")
    check(svc["versions"] == ["1.0", "2.0"], f"versions {svc['versions']}")
    check(svc["envs"] == ["test"], f"envs {svc['envs']}")
    q = f"service={SERVICE}&from=now-15m&to=now"
    profiles = get(f"{base}/api/profiles?{q}")
    check(len(profiles) >= 4, f"{len(profiles)} uploads stored")
    check(profiles[0]["tags"].get("team") == "perf", "DD_TAGS kept as profile tags")
    check(profiles[0]["family"] == "python", "family python")
    types = {t["name"] for t in get(f"{base}/api/types?{q}")}
    check({"cpu-time", "wall-time", "alloc-space"} <= types, f"types {sorted(types)}")

    fg = get(f"{base}/api/flamegraph?{q}&type=cpu-time")
    cp = find(fg["root"], "compute_primes")
    check(cp is not None and cp["total"] > 0, "compute_primes in the CPU flame graph")
    check(cp["file"].endswith("workload.py") and cp["line"] > 0, f"file:line {cp['file']}:{cp['line']}")
    check(fg["provenance"] is True and cp.get("kind") == "user", "code provenance: workload is user code")
    enc = find(fg["root"], "JSONEncoder.iterencode") or find(fg["root"], "JSONEncoder.encode")
    check(enc is not None and enc.get("kind") == "stdlib", "json encoder classified as stdlib")
    wall = get(f"{base}/api/flamegraph?{q}&type=wall-time")
    check(find(wall["root"], "idle_waiter") is not None, "idle thread visible in wall time")
    alloc = get(f"{base}/api/flamegraph?{q}&type=alloc-space")
    check(find(alloc["root"], "allocate_buffers") is not None, "allocations attributed to allocate_buffers")

    top = get(f"{base}/api/top?{q}&type=cpu-time")
    names = [f["name"] for f in top["functions"][:15]]
    check("compute_primes" in names, f"compute_primes in top self list {names[:6]}")

    d = get(f"{base}/api/diff?{q}&type=cpu-time&a_version=1.0&b_version=2.0")
    sp = find(d["root"], "slow_path")
    share_a = sp["base_total"] / max(1, d["base_total"])
    share_b = sp["total"] / max(1, d["total"])
    check(share_b > share_a, f"slow_path share grows 1.0 -> 2.0 ({share_a:.3f} -> {share_b:.3f})")

    ts = get(f"{base}/api/timeseries?{q}&type=cpu-time&step=10")
    check(sum(p["value"] for p in ts["points"]) == fg["total"], "timeseries sums to the flame graph total")

    # the last upload of a process is short (threads already gone): use the biggest one
    busiest = max(profiles, key=lambda p: p["totals"].get("wall-time", 0))
    tl = get(f"{base}/api/timeline?profile={busiest['id']}")
    lane_names = {l["thread_name"] for l in tl["lanes"]}
    check(len(tl["lanes"]) >= 3, f"timeline lanes {sorted(lane_names)}")
    check("MainThread" in lane_names, "MainThread lane present")

    raw = get(f"{base}/api/pprof?{q}&type=cpu-time", raw=True)
    check(raw[:2] == b"\x1f\x8b" and len(gzip.decompress(raw)) > 100, "merged pprof download is gzip")
    one = get(f"{base}/api/pprof?profile={profiles[0]['id']}", raw=True)
    check(one[:2] == b"\x1f\x8b", "single upload pprof download")

    if a.agent_log:
        log = open(a.agent_log).read()
        bad = [l for l in log.splitlines() if " ERROR " in l or " WARN " in l]
        check(not bad, f"agent log has no warnings/errors {bad[:3]}")
    print("e2e ddtrace: all checks passed")


if __name__ == "__main__":
    main()
