"""Attempt launch and read-back (local executor, stage 4): a resolved step -> argv/env, outputs -> values.

Takes a step with its attributes resolved; gives the argument list (the `command` with `args`
interpolated per DESIGN §2.3, or `python -m dmlc.runtime KIND --spec SPEC.json --outputs DIR` for
built-in kinds and `run =` tasks), the environment (`DMLC_OUTPUTS`, `DMLC_SERVE_PIDFILE`, step
`env`), and after the attempt the output values: a param file's JSON text (or its raw text), an
artifact's path.
"""

from __future__ import annotations

import json
import os
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlc_targets.local.values import to_text

from dmlc.ir.model import Step


@dataclass
class Launch:
    argv: list[str]
    env: dict[str, str]


def seed_for(pipeline: str, step: str, index: int | None, attrs: dict[str, Any]) -> int:
    """The step's `seed`, else a stable one per instance (same run twice, same numbers)."""
    if isinstance(attrs.get("seed"), int):
        return attrs["seed"]
    return zlib.crc32(f"{pipeline}/{step}/{index}".encode()) % (2**31)


def build_spec(ctx: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
    """The runtime's SPEC (see dmlc/runtime): identity, resolved attributes and folders."""
    return {
        "pipeline": ctx["pipeline"],
        "step": ctx["step"],
        "kind": attrs["kind"],
        "item": ctx["item"],
        "index": ctx["index"],
        "attrs": attrs,
        "outputs_dir": str(ctx["outputs_dir"]),
        "work_dir": str(ctx["work_dir"]),
        "volumes": ctx["volumes"],
        "seed": seed_for(ctx["pipeline"], ctx["step"], ctx["index"], attrs),
    }


def is_command(attrs: dict[str, Any]) -> bool:
    return attrs["kind"] == "task" and bool(attrs.get("command"))


def argv_for(step: Step, attrs: dict[str, Any], spec_path: Path, outputs_dir: Path) -> list[str]:
    if is_command(attrs):
        return [to_text(a) for a in attrs["command"] + attrs.get("args", [])]
    return [
        sys.executable,
        "-m",
        "dmlc.runtime",
        attrs["kind"],
        "--spec",
        str(spec_path),
        "--outputs",
        str(outputs_dir),
    ]


def prepare(ctx: dict[str, Any], step: Step, attrs: dict[str, Any], attempt_dir: Path) -> Launch:
    """Write the spec into the attempt folder and give the argv and environment of the attempt."""
    outputs_dir = attempt_dir / "outputs"
    spec_path = attempt_dir / "spec.json"
    if not is_command(attrs):  # a command reads its args, not a spec; skipping it saves a file per step
        spec = build_spec(ctx | {"outputs_dir": outputs_dir}, attrs)
        spec_path.write_text(json.dumps(spec, sort_keys=True, indent=1, default=str))
    env = dict(os.environ)
    env.update({k: to_text(v) for k, v in (attrs.get("env") or {}).items()})
    # steps find the same Python (and dmlc) as the executor, as they would in the runtime image
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", os.defpath)
    env.update(
        {
            "DMLC_OUTPUTS": str(outputs_dir),
            "DMLC_RUN_ID": ctx["run_id"],
            "DMLC_STEP": ctx["step"],
            "DMLC_INSTANCE": ctx["key"],
            "DMLC_ATTEMPT": str(ctx["attempt"]),
        }
    )
    if not is_command(attrs):
        env["DMLC_WORK_DIR"] = str(ctx["work_dir"])
    if ctx["item"] is not None:
        env["DMLC_ITEM"] = to_text(ctx["item"])
    if attrs["kind"] == "serve":
        env["DMLC_SERVE_PIDFILE"] = str(attempt_dir / "serve.pid")
    return Launch(argv_for(step, attrs, spec_path, outputs_dir), env)


def read_outputs(declared: dict[str, str], outputs_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Values of the declared outputs written to `outputs_dir`, and the names that are missing."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, kind in declared.items():
        path = outputs_dir / name
        if not path.exists():
            missing.append(name)
        elif kind == "param":
            values[name] = parse_param(path)
        else:
            values[name] = str(path)
    return values, missing


def parse_param(path: Path) -> Any:
    """A param file holds JSON text; anything else is taken as a plain string (trailing newline dropped)."""
    text = path.read_text() if path.is_file() else ""
    try:
        return json.loads(text)
    except ValueError:
        return text.rstrip("\n")
