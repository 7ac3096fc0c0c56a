"""Placement and identity as Kubernetes pod fields (stage 4, emit), shared by the cluster targets.

Takes an *effective* step (`dmlc.ir.effective`: `defaults` already folded in) and the pipeline; gives
plain dicts in the Kubernetes API's own shape: `pod_fields` for a PodSpec (Argo templates, TFJob
replica pods, KServe predictors, the shard router), and the pieces KFP writes through kfp-kubernetes.

The affinity block maps onto core/v1 NodeAffinity with `In` expressions only:
- `require { k = [a, b]  l = [c] }` -> `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`
  with ONE term holding every expression (Kubernetes ANDs the expressions of a term, ORs terms);
- `prefer { k = [a] }` -> one `preferredDuringSchedulingIgnoredDuringExecution` term per label, weight 1
  (the scheduler adds the weight of every term a node matches).
`local_note` is the one line a local run prints about what it accepts and ignores.
"""

from __future__ import annotations

from typing import Any

from dmlc.ir.model import Pipeline, Resources, Step
from dmlc.ir.placement import DEFAULT_ACCELERATOR, PLACEMENT, NodeAffinity, TaintToleration

PREFER_WEIGHT = 1


def accelerator(res: Resources) -> str:
    """The extended resource name the GPUs are asked for under."""
    return res.accelerator or DEFAULT_ACCELERATOR


def toleration(tol: TaintToleration) -> dict[str, Any]:
    """core/v1 Toleration, unset fields left out."""
    fields = {"key": tol.key, "operator": tol.operator, "value": tol.value, "effect": tol.effect,
              "tolerationSeconds": tol.toleration_seconds}  # fmt: skip
    return {k: v for k, v in fields.items() if v is not None}


def expressions(labels: dict[str, list[str]]) -> list[dict[str, Any]]:
    return [{"key": key, "operator": "In", "values": list(values)} for key, values in labels.items()]


def node_affinity(aff: NodeAffinity) -> dict[str, Any] | None:
    """core/v1 NodeAffinity (see the module docstring), None when both maps are empty."""
    out: dict[str, Any] = {}
    if aff.require:
        out["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [{"matchExpressions": expressions(aff.require)}]
        }
    if aff.prefer:
        out["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": PREFER_WEIGHT, "preference": {"matchExpressions": expressions({key: values})}}
            for key, values in aff.prefer.items()
        ]
    return out or None


def image_pull_secrets(pipeline: Pipeline) -> list[dict[str, str]] | None:
    return [{"name": name} for name in pipeline.image_pull_secrets] or None


def pod_fields(pipeline: Pipeline, step: Step, identity: bool = True) -> dict[str, Any]:
    """PodSpec fields of placement (and, with `identity`, the service account and image pull secrets),
    only those that are set."""
    out: dict[str, Any] = {}
    if step.node_selector:
        out["nodeSelector"] = dict(step.node_selector)
    if identity and step.service_account:
        out["serviceAccountName"] = step.service_account
    affinity = node_affinity(step.affinity) if step.affinity is not None else None
    if affinity:
        out["affinity"] = {"nodeAffinity": affinity}
    if step.tolerations:
        out["tolerations"] = [toleration(t) for t in step.tolerations]
    secrets = image_pull_secrets(pipeline)
    if identity and secrets:
        out["imagePullSecrets"] = secrets
    return out


def used(pipeline: Pipeline, steps: dict[str, Step]) -> list[str]:
    """The placement and identity attributes a pipeline sets (on its effective steps), in a fixed order."""
    names = [a for a in PLACEMENT if any(getattr(s, a) for s in steps.values())]
    if any(s.resources is not None and s.resources.accelerator for s in steps.values()):
        names.append("accelerator")
    if pipeline.image_pull_secrets:
        names.append("image_pull_secrets")
    return names


def local_note(pipeline: Pipeline, steps: dict[str, Step]) -> str | None:
    """The one line a local run prints when the pipeline places its pods (None when it does not)."""
    names = used(pipeline, steps)
    if not names:
        return None
    return f"placement and identity ({', '.join(names)}) apply on a cluster only; ignored by this local run"
