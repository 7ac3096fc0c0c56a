"""Resource templates (argo-workflows v4.1.2 `workflow/controller/operator.go` executeResource,
`cmd/argoexec/commands/resource.go`, `workflow/executor/resource.go`, `docs/resource-template.md`).

- The substituted `manifest` must be YAML. With `setOwnerReference` the controller parses it itself
  (`yaml.Unmarshal` into an Unstructured) and a parse error makes the node an Error with the YAML
  error; otherwise argoexec's `kubectl create -f` rejects it, its main container exits 1 and the node
  is Failed. The YAML error text is PyYAML's, prefixed as sigs.k8s.io/yaml prefixes it.
- The API server's admission is a schema check: TFJob and InferenceService manifests are validated
  against the CRD schemas in `../shared/schemas` with that folder's `validate_argo.py` (strict: unknown
  fields rejected, as `kubectl --validate=strict`); a rejection fails the node.
- Actions `create`, `apply`, `replace` are replayed; `generateName` gets a 5-character suffix.
  A TFJob runs through `tfjob.py`, an InferenceService through `kserve.py`; any other kind (a sharded
  serving router's Deployment and Service included) is an Error node "not replayed".
- argoexec then waits on `successCondition` / `failureCondition` (`conditions.py`) against the
  object's status as it changes; a failure condition fails the node, an unparsable one too. When the
  launched processes are done and neither condition ever matched, Argo would wait forever: the node
  stays Running. Output parameters come from `valueFrom.jsonPath` on the object (`jqFilter` is not
  replayed); a missing field fails the node, as kubectl's jsonpath error does.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import string
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from tests.argo_replay import conditions, gojson, pod
from tests.argo_replay.kserve import InferenceService
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.tfjob import TFJob

LAUNCHERS = {("kubeflow.org/v1", "TFJob"): TFJob, ("serving.kserve.io/v1beta1", "InferenceService"): InferenceService}


@functools.cache
def schema_store() -> Any:
    """validate_argo.SchemaStore of ../shared/schemas (DMLC_SHARED_SCHEMAS overrides), or None."""
    folder = Path(os.environ.get("DMLC_SHARED_SCHEMAS") or Path(__file__).resolve().parents[3] / "shared" / "schemas")
    script = folder / "validate_argo.py"
    if not script.exists():
        return None
    spec = importlib.util.spec_from_file_location("dmlc_shared_validate_argo", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.SchemaStore(str(folder), strict=True, exact_scalars=False)


def _yaml_error(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}: " if mark else ""
    problem = getattr(err, "problem", None) or str(err)
    return f"error converting YAML to JSON: yaml: {where}{problem}"


def _suffix(node: Node) -> str:
    alphabet, h, out = string.ascii_lowercase + string.digits, gojson.fnv32a(node.name), ""
    for _ in range(5):
        out, h = out + alphabet[h % 36], h // 36 + 7
    return out


def _admit(ctx: Ctx, node: Node, obj: dict[str, Any], kind: str) -> str | None:
    store = schema_store() if ctx.schemas else None
    if store is None:
        node.notes.append("the CRD schemas are not here (../shared/schemas): the manifest is not validated")
        return None
    validator = store.validator(obj.get("apiVersion"), kind)
    if validator is None:
        return None
    errors = sorted(validator.iter_errors(obj), key=lambda e: [str(p) for p in e.absolute_path])
    if not errors:
        return None
    shown = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:200]}" for e in errors[:5])
    return f'{kind}.{obj.get("apiVersion", "").split("/")[0]} "{obj["metadata"]["name"]}" is invalid: {shown}'


def run_resource(ctx: Ctx, node: Node, tmpl: dict[str, Any]) -> None:
    res = tmpl.get("resource") or {}
    action = res.get("action", "")
    if res.get("manifestFrom") or res.get("flags") or res.get("mergeStrategy"):
        ctx.finish(node, "Error", "not replayed: resource manifestFrom / flags / mergeStrategy")
        return
    try:
        obj = yaml.safe_load(res.get("manifest") or "")
    except yaml.YAMLError as err:
        if res.get("setOwnerReference"):
            ctx.finish(node, "Error", _yaml_error(err))
        else:
            ctx.finish(node, "Failed", f"error: error parsing manifest: {_yaml_error(err)}")
        return
    if not isinstance(obj, dict) or not obj.get("kind") or not obj.get("apiVersion"):
        ctx.finish(
            node,
            "Failed" if not res.get("setOwnerReference") else "Error",
            "error: unable to decode the manifest: Object 'Kind' or 'apiVersion' is missing",
        )
        return
    kind, meta = obj["kind"], obj.setdefault("metadata", {})
    if action not in ("create", "apply", "replace"):
        ctx.finish(node, "Error", f"not replayed: resource action {action!r}")
        return
    if res.get("setOwnerReference"):
        ref = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "name": ctx.name,
            "uid": ctx.meta.get("uid", ""),
            "controller": True,
            "blockOwnerDeletion": True,
        }
        meta["ownerReferences"] = [*(meta.get("ownerReferences") or []), ref]
    if not meta.get("name"):
        if not meta.get("generateName") or action != "create":
            ctx.finish(node, "Failed", "error: resource name may not be empty")
            return
        meta["name"] = meta["generateName"] + _suffix(node)
    meta.setdefault("namespace", ctx.namespace)
    node.resource = obj
    rejected = _admit(ctx, node, obj, kind)
    if rejected:
        ctx.finish(node, "Failed", rejected)
        return
    parsed: dict[str, list] = {}
    for which, key in (("success", "successCondition"), ("fail", "failureCondition")):
        try:
            parsed[which] = conditions.parse_selector(res[key]) if res.get(key) else []
        except conditions.SelectorError as err:
            ctx.finish(node, "Failed", f"{which} condition '{res[key]}' failed to parse: {err}")
            return
    success, failure = parsed["success"], parsed["fail"]
    launcher_type = LAUNCHERS.get((obj["apiVersion"], kind))
    if launcher_type is None:
        ctx.finish(
            node,
            "Error",
            f"not replayed: a {obj['apiVersion']} {kind} resource (only TFJob and InferenceService run locally)",
        )
        return
    launcher = launcher_type(ctx, node, obj)
    try:
        launcher.start()
    except pod.PodError as err:
        launcher.stop()
        ctx.finish(node, "Error", str(err))
        return
    limit = time.time() + (ctx.tfjob_limit if kind == "TFJob" else ctx.node_limit)
    while True:
        current = launcher.poll()
        node.resource = current
        outcome, message = ("success", "") if not (success or failure) else conditions.check(current, success, failure)
        if outcome == "failure":
            ctx.finish(node, "Failed", message)
            return
        if outcome == "success":
            break
        if launcher.finished:
            why = "; ".join(
                c.get("message", "") for c in current.get("status", {}).get("conditions", []) if c.get("message")
            )
            ctx.hangs.append(f"{node.task_path}: the {kind}'s conditions never matched")
            node.phase = "Running"
            node.message = (
                f"replay: Argo would wait forever: the {kind} is final ({why or 'no status message'}) "
                f"but neither successCondition nor failureCondition matches its status"
            )
            return
        if time.time() > limit:
            launcher.stop()
            ctx.finish(node, "Error", f"replay: the {kind} exceeded the replay's limit for a node")
            return
        time.sleep(0.1)
    outputs = {}
    for p in (tmpl.get("outputs") or {}).get("parameters") or []:
        vf = p.get("valueFrom") or {}
        if vf.get("jqFilter"):
            ctx.finish(node, "Error", f"not replayed: output {p['name']} uses jqFilter")
            return
        if vf.get("jsonPath"):
            try:
                outputs[p["name"]] = conditions.kubectl_jsonpath(node.resource, vf["jsonPath"])
            except ValueError as err:
                ctx.finish(node, "Failed", str(err))
                return
    node.outputs = outputs if (tmpl.get("outputs") or {}).get("parameters") else None
    ctx.finish(node, "Succeeded")
