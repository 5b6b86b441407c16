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

log "Python test environment (.venv) and the emberscope wheel"
BASE_PY=${EMBERSCOPE_BASE_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$BASE_PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
rm -rf dist
.venv/bin/maturin build --release -q -o dist -i .venv/bin/python
WHEEL=$(ls dist/emberscope-*.whl | head -n1)
.venv/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
# The wheel is abi3: one build serves every interpreter. Unpack it once for the other versions.
rm -rf .testenv && mkdir -p .testenv/site
.venv/bin/python -m zipfile -e "$WHEEL" .testenv/site

log "pytest"
export EMBERSCOPE_TEST_SITE="$ROOT/.testenv/site"
export EMBERSCOPE_TEST_PYTHONS_DIR="$ROOT/.pythons/bin"
.venv/bin/python -m pytest tests -q -p no:cacheprovider "$@"

if [ -x tests/agent/run.sh ]; then
    log "agent end-to-end and browser tests"
    bash tests/agent/run.sh
fi
log "all tests passed"
