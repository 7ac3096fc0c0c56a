"""An Argo Workflows rule replay: a test oracle that runs a compiled Workflow as Argo v4.1.2 would.

`replay(workflow, root)` takes a `Workflow` (or `CronWorkflow`) as a dict and executes it on this
machine with the controller's and executor's own rules, read from the argo-workflows source at tag
v4.1.2 (each module's docstring cites the files it follows):

| module | rules |
|---|---|
| `gojson.py` | Go's JSON, strconv.Quote, float and duration formats |
| `template.py` | `{{...}}` substitution on the JSON form, ProcessArgs / SubstituteParams |
| `expr.py`, `exprrun.py`, `exprenv.py` | expr-lang: parser, evaluation, Argo's environment and functions |
| `govaluate.py` | `when` (shouldExecute) |
| `dag.py`, `graph.py`, `scope.py` | DAG tasks, depends, fan-out, aggregation, the node graph and DAG phase |
| `operator.py`, `memo.py` | executing a template: inputs, memoization, retries |
| `exit.py` | the exit handler (`spec.onExit`): `workflow.status` / `.failures`, the workflow's phase |
| `pod.py`, `procs.py` | container and script templates as local processes |
| `resource.py`, `conditions.py` | resource templates: manifest, admission, conditions, outputs |
| `tfjob.py`, `kserve.py` | a TFJob (Kubeflow training-operator v1.9.0) and an InferenceService, run locally |
| `model.py` | nodes and the replay's state; `compat.py` the first one-template helpers |

Product code never imports it.

Global scope (`workflow/controller/operator.go` setGlobalParameters, setGlobalRuntimeParameters):
`workflow.name`, `.namespace`, `.uid`, `.mainEntrypoint`, `.serviceAccountName`,
`.creationTimestamp` (+ `.s`, `.RFC3339`), `.priority`, `.parameters` / `.parameters.json` /
`.parameters.<name>`, `.annotations` / `.labels` (+ `.json`, `.<name>`), `.status` (Running) and
`.duration`. The entrypoint gets `spec.arguments` (after `params`) as its arguments; the workflow's
phase is the entry node's (Skipped and Omitted count as Succeeded).

Not replayed (a node using one is an Error "not replayed", or it is noted): steps, suspend, http,
plugin, data and containerSet templates; templateRef / inline tasks; artifacts other than paths and
S3 (`artifacts.py`); lifecycle hooks (the workflow's `onExit` is replayed: `exit.py`); templateDefaults;
synchronization; parallelism (the replay is sequential); daemoned containers and sidecars; pod `timeout` /
`pendingTimeout`; the workflow's `activeDeadlineSeconds`; ConfigMap-sourced parameters; resource
actions other than create / apply / replace; Deployment / Service resources (sharded serving's
router) and any kind but TFJob and InferenceService; images (the command runs with this machine's
Python) and their pull secrets; resource requests; scheduling (`nodeSelector`, `affinity`,
`tolerations`, `serviceAccountName`: noted, every pod runs on this machine).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.compat import run_container_template, substitute, workflow_values
from tests.argo_replay.exit import final_phase, run_on_exit
from tests.argo_replay.memo import MemoCache
from tests.argo_replay.model import Ctx, Node, Replay
from tests.argo_replay.operator import execute_template
from tests.argo_replay.procs import Procs

__all__ = ["Node", "Replay", "replay", "run_container_template", "substitute", "workflow_values"]

PHASES = {
    "Pending": "Pending",
    "Running": "Running",
    "Succeeded": "Succeeded",
    "Skipped": "Succeeded",
    "Omitted": "Succeeded",
    "Failed": "Failed",
    "Error": "Error",
}


def global_params(ctx: Ctx, arguments: list[dict[str, Any]]) -> dict[str, str]:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    out = {
        "workflow.name": ctx.name,
        "workflow.namespace": ctx.namespace,
        "workflow.uid": ctx.meta.get("uid", ""),
        "workflow.mainEntrypoint": ctx.spec.get("entrypoint", ""),
        "workflow.serviceAccountName": ctx.spec.get("serviceAccountName", ""),
        "workflow.creationTimestamp": stamp,
        "workflow.creationTimestamp.RFC3339": stamp,
        "workflow.creationTimestamp.s": str(int(now)),
        "workflow.status": "Running",
        "workflow.duration": f"{0:f}",
    }
    if ctx.spec.get("priority") is not None:
        out["workflow.priority"] = str(int(ctx.spec["priority"]))
    params = gojson.marshal_ordered(
        [{k: gojson.any_string(v) if k in ("value", "default") else v for k, v in p.items()} for p in arguments]
    )
    out["workflow.parameters"] = out["workflow.parameters.json"] = params
    for p in arguments:
        if p.get("value") is None:
            raise ValueError(
                f"either value or valueFrom must be specified in order to set global parameter {p['name']}"
            )
        out[f"workflow.parameters.{p['name']}"] = gojson.any_string(p["value"])
    wf_meta = ctx.spec.get("workflowMetadata") or {}
    for what in ("annotations", "labels"):
        values = {**(ctx.meta.get(what) or {}), **(wf_meta.get(what) or {})}
        out[f"workflow.{what}"] = out[f"workflow.{what}.json"] = gojson.marshal(ctx.meta.get(what) or {})
        out |= {f"workflow.{what}.{k}": v for k, v in values.items()}
    return out


def replay(
    workflow: dict[str, Any],
    root: Path,
    *,
    params: dict[str, str] | None = None,
    name: str = "wf-x7k2p",
    env: dict[str, str] | None = None,
    cache: Path | None = None,
    keep_servers: bool = False,
    node_limit: float = 120.0,
    tfjob_limit: float = 600.0,
    namespace: str | None = None,
    transient_error_pattern: str | None = None,
    validate: bool = True,
    secrets: dict[str, dict[str, str]] | None = None,
) -> Replay:
    """Run `workflow` as Argo v4.1.2 would; every node's phase, outputs, attempts and memoization.

    `root` holds the volumes (`root/volumes/<name>`), each pod's folder and logs (`root/pods/<pod>`);
    `params` are `argo submit -p` values; `cache` is a JSON file standing in for the memoization
    ConfigMaps, shared between replays; `env` is added to the processes' environment; `validate`
    checks TFJob / InferenceService manifests against ../shared/schemas when present; `secrets` are the
    cluster's Secrets that the executor reads (S3 artifact credentials). Processes are
    stopped when the replay returns, servers too unless `keep_servers` (then `Replay.close()`).
    """
    spec = workflow["spec"]["workflowSpec"] if workflow.get("kind") == "CronWorkflow" else workflow["spec"]
    spec = json.loads(json.dumps(spec))
    meta = dict(workflow.get("metadata") or {})
    if namespace:
        meta["namespace"] = namespace
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(spec, meta, name, root, env or {})
    ctx.node_limit, ctx.tfjob_limit, ctx.transient_pattern = node_limit, tfjob_limit, transient_error_pattern
    ctx.procs, ctx.memo, ctx.schemas = Procs(), MemoCache(Path(cache) if cache else None), validate
    ctx.secrets = dict(secrets or {})
    arguments = [dict(p) for p in (spec.get("arguments") or {}).get("parameters") or []]
    unknown = set(params or {}) - {p["name"] for p in arguments}
    if unknown:
        raise ValueError(f"parameters not declared by the workflow: {sorted(unknown)}")
    for p in arguments:
        if p["name"] in (params or {}):
            p["value"] = params[p["name"]]
    spec.setdefault("arguments", {})["parameters"] = arguments
    try:
        try:
            ctx.globals = global_params(ctx, arguments)
        except ValueError as err:
            return Replay(name, "Error", str(err), ctx.nodes, root, _ctx=ctx)
        entry = execute_template(ctx, name, spec.get("entrypoint", ""), spec.get("arguments") or {}, "")
        exit_node = run_on_exit(ctx, name, spec, entry, execute_template)
    finally:
        if not keep_servers:
            ctx.procs.stop_all()
    phase, message = final_phase(PHASES.get(entry.phase, entry.phase), entry.message, exit_node)
    if phase == "Running":
        message = "; ".join(
            ctx.hangs
            + [
                f"{n.task_path}: {n.message}"
                for n in ctx.nodes.values()
                if n.phase == "Running" and n.type not in ("DAG", "TaskGroup", "Retry")
            ]
        )
    elif phase in ("Failed", "Error") and not message:
        bad = [n for n in ctx.nodes.values() if n.failed_or_error and n.type in ("Pod", "Skipped")]
        message = "; ".join(f"{n.task_path} {n.phase}: {n.message}" for n in bad)
    return Replay(name, phase, message, ctx.nodes, root, hangs=list(ctx.hangs), _ctx=ctx)
