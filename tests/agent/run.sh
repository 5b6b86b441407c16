#!/usr/bin/env bash
# Builds emberscope-agent and runs its end-to-end tests:
#   1. Rust tests of the agent crate (intake, store, queries, bad input, kill -9, property tests)
#   2. the real `ddtrace` from PyPI uploading to the agent (tests/agent/e2e_ddtrace.py)
#   3. UI tests in headless Chromium with playwright-core (tests/agent/ui.test.mjs)
# Needs: Rust, CPython 3.11, Node/npm; installs Debian's chromium with apt-get if missing.
# Screenshots go to test-artifacts/agent-ui/. Env: SKIP_RUST=1, SKIP_UI=1, VENV=<path>.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target-agent}"
VENV="${VENV:-/tmp/emberscope-agent-e2e-venv}"
ART="$ROOT/test-artifacts/agent-ui"
WORK="$(mktemp -d /tmp/emberscope-agent-e2e.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== build"
cd "$ROOT"
nice -n 10 cargo build -p emberscope-agent
BIN="$CARGO_TARGET_DIR/debug/emberscope-agent"

if [ "${SKIP_RUST:-0}" != 1 ]; then
  echo "== rust tests"
  nice -n 10 cargo test -p emberscope-agent
fi

echo "== python venv with ddtrace"
if [ ! -x "$VENV/bin/ddtrace-run" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check ddtrace
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$1/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "agent on $1 did not start"; return 1; }

PORT="$(free_port)"
"$BIN" --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" >"$WORK/agent.log" 2>&1 &
PIDS+=($!)
wait_up "$PORT"

echo "== e2e with ddtrace ($("$VENV/bin/python" -c 'import ddtrace; print(ddtrace.__version__)'))"
"$VENV/bin/python" "$HERE/e2e_ddtrace.py" --url "http://127.0.0.1:$PORT" --venv "$VENV" --agent-log "$WORK/agent.log"

if [ "${SKIP_UI:-0}" != 1 ]; then
  echo "== UI tests (headless chromium)"
  if ! command -v chromium >/dev/null 2>&1; then
    apt-get install -y chromium >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  fi
  if [ ! -d "$HERE/node_modules/playwright-core" ]; then
    (cd "$HERE" && npm install --no-audit --no-fund --silent)
  fi
  EPORT="$(free_port)"
  "$BIN" --listen "127.0.0.1:$EPORT" --data-dir "$WORK/empty" >"$WORK/agent-empty.log" 2>&1 &
  PIDS+=($!)
  wait_up "$EPORT"
  node "$HERE/ui.test.mjs" --url "http://127.0.0.1:$PORT" --empty-url "http://127.0.0.1:$EPORT" \
    --service e2e-shop --out "$ART"
  echo "screenshots: $ART"
fi
echo "== all agent tests passed"
