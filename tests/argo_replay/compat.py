"""The first replay helpers (one container template at a time), kept for tests/test_contract.py.

They now go through the full rules: `substitute` is `util/template/replace.go` Replace (simple and
expression tags, unresolved tags kept), `run_container_template` is ProcessArgs + the pod replay of
`pod.py` (argo-workflows v4.1.2), so a template's user text reaches the process exactly as on a
cluster.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.template import replace


def substitute(template: dict[str, Any], values: dict[str, str]) -> dict[str, Any]:
    """The template after Argo's substitution with `values` (tag -> text); unknown tags stay."""
    return json.loads(replace(gojson.marshal_ordered(template), values, True))


def workflow_values(workflow: dict[str, Any], name: str, overrides: dict[str, str] | None = None) -> dict[str, str]:
    """The global tags of a submitted workflow: its name and its (overridden) parameters."""
    params = {
        p["name"]: gojson.any_string(p.get("value", ""))
        for p in workflow["spec"].get("arguments", {}).get("parameters", [])
    }
    params.update(overrides or {})
    return {"workflow.name": name, **{f"workflow.parameters.{k}": v for k, v in params.items()}}


def run_container_template(
    template: dict[str, Any], values: dict[str, str], root: Path, base_env: dict[str, str]
) -> dict[str, str]:
    """Substitute, run init containers then the container; the output parameters' text."""
    from tests.argo_replay.model import Ctx
    from tests.argo_replay.pod import run_container
    from tests.argo_replay.procs import Procs
    from tests.argo_replay.template import process_args

    name = values.get("workflow.name", "wf-x7k2p")
    mounted = [
        m
        for c in [template.get("container") or {}, *template.get("initContainers", [])]
        for m in c.get("volumeMounts", [])
    ]
    own = {v["name"] for v in template.get("volumes") or []}
    volumes = [
        {"name": m["name"], "persistentVolumeClaim": {"claimName": m["name"]}} for m in mounted if m["name"] not in own
    ]
    ctx = Ctx({"templates": [template], "volumes": volumes}, {}, name, Path(root), {})
    ctx.base_env = {**base_env, "PATH": ctx.base_env["PATH"]}
    ctx.procs, ctx.globals = Procs(), dict(values)
    node = ctx.new_node(f"{name}.{template['name']}", "Pod", template["name"], name)
    try:
        run_container(ctx, node, process_args(template, {}, ctx.globals, {"node.name": node.name}))
    finally:
        ctx.procs.stop_all()
    assert node.phase == "Succeeded", f"{template['name']}: {node.phase}: {node.message} (log {node.log})"
    return dict(node.outputs or {})
