#!/usr/bin/env bash
# Builds emberscope and installs it into .venv (created with CPython 3.11, or
# $EMBERSCOPE_BASE_PYTHON): maturin and the test requirements, the abi3 wheel in dist/, the
# wheel installed into .venv (emberscope-run on .venv/bin), and the wheel unpacked into
# .testenv/site so any other interpreter can use it through PYTHONPATH.
# Used by scripts/test.sh, scripts/demo.sh and bench/run.
set -euo pipefail
cd "$(dirname "$0")/.."
BASE_PY=${EMBERSCOPE_BASE_PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$BASE_PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r tests/requirements.txt
rm -rf dist
.venv/bin/maturin build --release -q -o dist -i .venv/bin/python
WHEEL=$(ls dist/emberscope-*.whl | head -n1)
.venv/bin/python -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$WHEEL"
rm -rf .testenv && mkdir -p .testenv/site
.venv/bin/python -m zipfile -e "$WHEEL" .testenv/site
echo "built and installed $WHEEL"
