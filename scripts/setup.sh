#!/usr/bin/env bash
# Set up a development environment in .venv: dmlc (editable) with the ML runtime and the dev tools.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools
.venv/bin/python -m pip install -q -e '.[ml,dev]'
echo "dmlc installed in .venv ($(.venv/bin/dmlc --version))"
