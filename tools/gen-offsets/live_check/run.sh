#!/usr/bin/env bash
# run.sh -- live check of emberscope-sampler against real interpreters.
#
# Builds this throwaway cdylib (not a workspace member; target dir in /tmp)
# and runs check.py in each interpreter: parked-thread comparison with
# sys._current_frames(), a timing bench, and a churn stress with a native
# sampler thread. Prints one summary line per version; exit 1 on any failure.
#
# Usage: tools/gen-offsets/live_check/run.sh [--stress SECONDS] [--bench ITERS] [X.Y ...]
# Env:   EMBER_READER=procmem|vm forces the memory backend.
#        CARGO_TARGET_DIR (default /tmp/ember-live-target)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
STRESS=10 BENCH=4000
versions=()
while [ $# -gt 0 ]; do
    case $1 in
        --stress) STRESS=$2; shift ;;
        --bench) BENCH=$2; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) versions+=("$1") ;;
    esac
    shift
done
[ ${#versions[@]} -gt 0 ] || versions=(3.8 3.9 3.10 3.11 3.12 3.13 3.14)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/tmp/ember-live-target}
(cd "$HERE" && nice -n 10 cargo build --release --quiet)
SO="$CARGO_TARGET_DIR/release/libember_live_check.so"
status=0
for v in "${versions[@]}"; do
    py="$ROOT/.pythons/$v/bin/python$v"
    [ -x "$py" ] || py="python$v"
    out=$(timeout $((STRESS + 120)) "$py" "$HERE/check.py" "$SO" --bench "$BENCH" --stress "$STRESS" 2>&1) || status=1
    printf '%s\n' "$out" | tail -n 1 | python3 -c '
import json, sys
line = sys.stdin.read().strip()
try:
    r = json.loads(line)
except Exception:
    print("'"$v"': no result:", line[:400]); sys.exit(0)
b, s, i = r.get("bench", {}), r.get("stress", {}), r["init"]
print("%-7s %-16s dbg=%-3s checks=%-3s failures=%d | bench median %.1f us/sample (%d stacks, %.1f frames/stack, %.2f syscalls) | stress %.0fs: %d visits, %d dropped (%.3f%%) %s, %d read errors, max depth %d, worst %.1f ms (cpu %.2f ms)" % (
    r["version"], i.get("reader"), i.get("debug_offsets_checked"), r.get("checks"), len(r["failures"]),
    b.get("median_sample_us", 0), b.get("stacks", 0) // max(b.get("iters", 1), 1), b.get("frames_per_stack", 0), b.get("calls_per_sample", 0),
    s.get("seconds", 0), s.get("thread_visits", 0), s.get("dropped", 0), 100.0 * s.get("dropped", 0) / max(s.get("thread_visits", 1), 1),
    {k: v for k, v in s.get("drop_reasons", {}).items() if v}, s.get("read_errors", 0), s.get("max_depth", 0), s.get("worst_sample_ms", 0), s.get("worst_sample_cpu_ms", 0)))
for n, bb in sorted(r.get("bench_by_threads", {}).items(), key=lambda kv: int(kv[0])):
    print("        bench %2s x %s-frame threads + caller: median %.1f us/sample, best %.1f, %.2f syscalls/sample" % (
        n, bb.get("depths"), bb["median_sample_us"], bb["best_sample_us"], bb["calls_per_sample"]))
for f in r["failures"]:
    print("    FAIL:", f)
'
done
exit $status
