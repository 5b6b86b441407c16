#!/usr/bin/env bash
# Runs every test of the project: formatting and lints, Rust unit and integration tests, the
# Python suites against every CPython 3.8-3.14 this machine can provide, and the agent's
# end-to-end and browser tests. Works from a fresh clone on Debian with the Rust toolchain and
# CPython 3.11; it installs what else it needs (interpreters, maturin, pytest, ...).
#
#   scripts/test.sh            everything
#   scripts/test.sh -k fork    pass extra arguments to pytest
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
log() { printf '\n==> %s\n' "$*"; }

log "CPython interpreters (3.8-3.14) into .pythons/"
if ! bash tools/install-pythons.sh .pythons; then
    echo "WARNING: not every CPython version could be provided (see above); the suites run on the others" >&2
fi

log "cargo fmt --check"
cargo fmt --all --check
log "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
cargo test --workspace

log "build the emberscope wheel into .venv"
bash scripts/build.sh

log "pytest"
export EMBERSCOPE_TEST_SITE="$ROOT/.testenv/site"
export EMBERSCOPE_TEST_PYTHONS_DIR="$ROOT/.pythons/bin"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"

if [ -f tests/agent/run.sh ]; then
    log "agent end-to-end and browser tests"
    # The agent's Rust tests already ran above; reuse that build.
    CARGO_TARGET_DIR="$ROOT/target" SKIP_RUST=1 bash tests/agent/run.sh
fi
log "benchmark smoke run (one short round; the numbers come from the full bench/run)"
BENCH_SKIP_BUILD=1 bash bench/run --smoke

log "all tests passed"
