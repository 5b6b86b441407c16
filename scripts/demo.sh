#!/usr/bin/env bash
# The main job: builds emberscope and emberscope-agent, starts the agent on embedded storage,
# runs the bundled demo service (demo/app.py: hot paths, threads, allocations, exceptions)
# under emberscope-run with a 10-second upload interval, and prints the UI address.
#
#   scripts/demo.sh                 run the demo app for DEMO_SECONDS (default 120) and keep
#                                   the agent and its UI up until Ctrl-C
#   scripts/demo.sh --check         CI/smoke mode: 25-second demo, then verify the agent
#                                   received and can query the profiles, then exit
# Env: DEMO_PORT (default 8126), DEMO_SECONDS, DEMO_DATA_DIR (default .demo/data).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
CHECK=0
[ "${1:-}" = "--check" ] && CHECK=1
PORT=${DEMO_PORT:-8126}
SECONDS_TO_RUN=${DEMO_SECONDS:-120}
[ $CHECK = 1 ] && SECONDS_TO_RUN=${DEMO_SECONDS:-25}
DATA=${DEMO_DATA_DIR:-$ROOT/.demo/data}

echo "==> building emberscope (Python package + Rust extension) into .venv"
bash scripts/build.sh
echo "==> building emberscope-agent"
cargo build --release -q -p emberscope-agent
AGENT="$ROOT/target/release/emberscope-agent"

mkdir -p "$DATA"
"$AGENT" --listen "127.0.0.1:$PORT" --data-dir "$DATA" > "$ROOT/.demo/agent.log" 2>&1 &
AGENT_PID=$!
APP_PID=
cleanup() {
    [ -n "$APP_PID" ] && kill "$APP_PID" 2>/dev/null || true
    kill "$AGENT_PID" 2>/dev/null || true
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$PORT/info" >/dev/null 2>&1 && break
    kill -0 "$AGENT_PID" 2>/dev/null || { cat "$ROOT/.demo/agent.log"; echo "the agent did not start (port $PORT busy? set DEMO_PORT)"; exit 1; }
    sleep 0.1
done

echo "==> demo app profiled for ${SECONDS_TO_RUN}s, uploading every 10s"
DD_PROFILING_ENABLED=true DD_SERVICE=demo-shop DD_ENV=demo DD_VERSION=1.0.0 \
DD_PROFILING_UPLOAD_INTERVAL=10 DD_TRACE_AGENT_URL="http://127.0.0.1:$PORT" \
    .venv/bin/emberscope-run .venv/bin/python demo/app.py --seconds "$SECONDS_TO_RUN" &
APP_PID=$!

echo
echo "    emberscope UI:  http://127.0.0.1:$PORT/"
echo "    (agent log: .demo/agent.log; data: $DATA)"
echo

if [ $CHECK = 1 ]; then
    wait "$APP_PID"; APP_PID=
    .venv/bin/python - "$PORT" <<'PY'
import json, sys, urllib.request
port = sys.argv[1]
def get(path):
    with urllib.request.urlopen("http://127.0.0.1:%s%s" % (port, path), timeout=10) as r:
        return json.loads(r.read())
services = get("/api/services")
names = [s["service"] for s in services]
assert "demo-shop" in names, "demo-shop not received: %r" % services
tree = get("/api/flamegraph?service=demo-shop&type=cpu-time&from=0&to=9999999999")
def names_in(node, out):
    out.add(node.get("name"))
    for c in node.get("children", []):
        names_in(c, out)
    return out
seen = names_in(tree if "name" in tree else tree.get("root", tree), set())
for fn in ("checkout", "parse_orders", "fibonacci"):
    assert any(fn in (n or "") for n in seen), "%s missing from the flame graph" % fn
print("demo check: the agent holds demo-shop profiles with checkout, parse_orders and fibonacci")
PY
    exit 0
fi
wait "$APP_PID" || true; APP_PID=
echo "demo app finished; the UI stays up at http://127.0.0.1:$PORT/ until you press Ctrl-C"
wait "$AGENT_PID"
