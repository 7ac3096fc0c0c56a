#!/usr/bin/env bash
# The test command: lint, the whole test suite, and the compiled examples checked against the
# engines' own schemas (../shared/schemas) when that folder is present.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/python -m pytest -q "$@"
shared=../shared/schemas
if [ -d "$shared" ]; then
  out=$(mktemp -d)
  for f in examples/*.dml; do
    s=$(basename "$f" .dml)
    .venv/bin/dmlc compile "$f" --target argo -o "$out/$s.argo.yaml"
    .venv/bin/dmlc compile "$f" --target kfp -o "$out/$s.kfp.yaml"
  done
  .venv/bin/python "$shared/validate_argo.py" "$out"/*.argo.yaml
  .venv/bin/python "$shared/validate_kfp.py" "$out"/*.kfp.yaml
  rm -rf "$out"
fi
