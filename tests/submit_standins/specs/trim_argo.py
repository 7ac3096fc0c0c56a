"""Regenerate argo-v4.1.2.swagger.trimmed.json from Argo's published OpenAPI spec (a maintainer's tool).

Takes argoproj/argo-workflows v4.1.2 `api/openapi-spec/swagger.json` (a file, or `-` for stdin, e.g.
`git --git-dir=.../argo-workflows show v4.1.2:api/openapi-spec/swagger.json | python trim_argo.py -`)
and writes the paths dmlc calls (PATHS) with every definition they reach, unchanged except that the
prose `description` strings are dropped (keys, types, enums, required lists and $refs stay as published).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

PATHS = [
    "/api/v1/workflows/{namespace}",
    "/api/v1/workflows/{namespace}/{name}",
    "/api/v1/workflows/{namespace}/{name}/log",
    "/api/v1/cron-workflows/{namespace}",
    "/api/v1/cron-workflows/{namespace}/{name}",
]
OUT = Path(__file__).with_name("argo-v4.1.2.swagger.trimmed.json")


def strip(node: object) -> object:
    if isinstance(node, dict):
        return {k: strip(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [strip(v) for v in node]
    return node


def main(src: str) -> None:
    raw = sys.stdin.buffer.read() if src == "-" else Path(src).read_bytes()
    spec = json.loads(raw)
    paths = {p: spec["paths"][p] for p in PATHS}
    todo, seen = re.findall(r"#/definitions/([^\"]+)", json.dumps(paths)), set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo += re.findall(r"#/definitions/([^\"]+)", json.dumps(spec["definitions"][name]))
    out = {
        "swagger": spec["swagger"],
        "info": {**spec["info"], "x-dmlc-source": SOURCE, "x-dmlc-sha256": hashlib.sha256(raw).hexdigest()},
        "consumes": spec.get("consumes"),
        "produces": spec.get("produces"),
        "paths": strip(paths),
        "definitions": strip({k: spec["definitions"][k] for k in sorted(seen)}),
    }
    OUT.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n", encoding="utf-8")


SOURCE = "argoproj/argo-workflows v4.1.2 (16a52d67daf2f4a8a76fa8bec02a76a46aa46257) api/openapi-spec/swagger.json"

if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "-")
