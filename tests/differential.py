"""One pipeline, two executors: `dmlc run --local` and the Argo replay of the compiled Workflow.

`outcome_local` and `outcome_argo` give the same shape: `(step, instance) -> (state, outputs)`, where
instance is the fan-out index (`"*"` for a step that never expanded, `"-"` for a single instance),
state is `ok`, `failed` or `not run` (a step skipped by `when`, or not run because an upstream was
skipped or failed: locally "skipped" / "upstream failed", on Argo Skipped / Omitted), and outputs are
the param outputs' values (read as the local executor reads them) and the names of the artifacts,
and the numbers each engine's UI shows for a train / evaluate / select step (`metric-<name>`: locally
the rows of `dmlc runs show`, on Argo the output parameters, on KFP the `Metrics` artifact's scalars).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import yaml

from dmlc.cli import main
from dmlc.driver import compile_file
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics.outputs import param_value
from tests.argo_replay import replay

LOCAL_STATES = {
    "succeeded": "ok",
    "cached": "ok",
    "failed": "failed",
    "skipped": "not run",
    "upstream failed": "not run",
}
ARGO_STATES = {"Succeeded": "ok", "Failed": "failed", "Error": "failed", "Skipped": "not run", "Omitted": "not run"}
Outcome = dict[tuple[str, str], tuple[str, dict[str, Any]]]


def _values(outputs: dict[str, str], kinds: dict[str, str]) -> dict[str, Any]:
    """Param outputs by value, artifacts by presence (their paths differ per executor)."""
    return {name: param_value(text) if kinds.get(name) == "param" else "<artifact>" for name, text in outputs.items()}


def outcome_local(path: Path, params: dict[str, str] | None = None) -> Outcome:
    """Run the pipeline here (cwd is the state folder) and read every instance back."""
    argv = ["run", str(path), "--local"] + [a for k, v in (params or {}).items() for a in ("--param", f"{k}={v}")]
    main(argv)
    db = sqlite3.connect(".dmlc/metadata.db")
    db.row_factory = sqlite3.Row
    (run,) = [r["id"] for r in db.execute("SELECT id FROM runs ORDER BY started DESC LIMIT 1")]
    kinds = _kinds(path)
    out: Outcome = {}
    ui = ui_names(path)
    for row in db.execute("SELECT step, instance, state FROM steps WHERE run_id = ?", (run,)):
        result = Path(".dmlc/runs", run, "steps", row["step"], row["instance"], "result.json")
        outputs = json.loads(result.read_text())["outputs"] if result.exists() else {}
        texts = {n: v if kinds[row["step"]].get(n) != "param" else json.dumps(v) for n, v in outputs.items()}
        key = "-" if row["instance"] == "main" else row["instance"]
        values = _values(texts, kinds[row["step"]])
        if LOCAL_STATES[row["state"]] == "ok":
            shown = db.execute(
                "SELECT name, value FROM metrics WHERE run_id = ? AND step = ? AND instance = ?",
                (run, row["step"], row["instance"]),
            )
            values |= {ui_metrics.param_name(n): v for n, v in shown if n in ui[row["step"]]}
        out[(row["step"], key)] = (LOCAL_STATES[row["state"]], values)
    return _collapse(out, kinds)


def ui_names(path: Path) -> dict[str, list[str]]:
    """Step -> the metrics its UIs show (`dmlc.semantics.metrics.names`)."""
    from dmlc.driver import load

    return {name: ui_metrics.names(step) for name, step in load(str(path)).pipeline.steps.items()}


def outcome_argo(path: Path, root: Path, params: dict[str, str] | None = None) -> Outcome:
    """Compile for Argo, replay it, and read every step instance's node."""
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    kinds = _kinds(path)
    out: Outcome = {}
    with replay(workflow, root, params=params, env=dict(os.environ)) as done:
        for node in done.nodes.values():
            step = node.labels.get("dmlc.io/step")
            if step is None or node.retried or node.type not in ("Pod", "Retry", "Skipped"):
                continue
            index = re.findall(r"\((\d+):", node.task_path)
            key = index[-1] if index else "-"
            outputs = {k: v for k, v in (node.outputs or {}).items() if k != "dmlc-ok"}
            shown = {k: float(outputs.pop(k)) for k in list(outputs) if k.startswith(ui_metrics.PREFIX)}
            out[(step, key)] = (ARGO_STATES.get(node.phase, node.phase), _values(outputs, kinds[step]) | shown)
    return _collapse(out, kinds)


def _collapse(out: Outcome, kinds: dict[str, dict[str, str]]) -> Outcome:
    """Instances that ran, and one `*` entry for a step none of whose instances ran. An instance that
    did not run left nothing behind, and the executors report it differently: the local executor skips
    each instance of a skipped fan-out, Argo skips its task as a whole, and creates no node inside a
    loop body that never ran or that failed before reaching it."""
    ran = {key: value for key, value in out.items() if value != ("not run", {})}
    idle = {step for step in kinds if not any(key[0] == step for key in ran)}
    return ran | {(step, "*"): ("not run", {}) for step in idle}


def _kinds(path: Path) -> dict[str, dict[str, str]]:
    from dmlc.driver import load

    pipeline = load(str(path)).pipeline
    return {name: step.outputs() for name, step in pipeline.steps.items()}
