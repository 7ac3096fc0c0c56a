"""KFP target, stage 4 (emit): a task's placement through kfp-kubernetes, for both ways of building.

Takes the target options and a step's plan; gives the arguments of kfp-kubernetes 2.17.3's
`add_node_selector`, `add_toleration`, `add_node_affinity` (and `set_image_pull_secrets`, from the
pipeline) that `build.py` calls, and `kubernetes_fields` the same settings as the `KubernetesExecutorConfig`
JSON `direct.py` writes (what `json_format.MessageToDict` makes of the messages those calls build).

The target options' node selector and tolerations hold for every task; a step's own are added (its
node selector wins on a shared label). A launched step (TFJob, InferenceService) places its workload's
pods in the manifest (`dmlc.k8s`), so its launcher task gets only the options'. Node affinity: one
required term holding every `require` expression, one term of weight 1 per `prefer` label: the driver
(kubeflow/pipelines backend/src/v2/driver/k8s.go at 7b70c7b, 2026-08) makes a term with a weight a
PreferredSchedulingTerm and one without a NodeSelectorTerm of the required selector, so the pod gets
exactly what Argo's does (`dmlc.placement`). driver.go asks for the GPUs under the accelerator type.
"""

from __future__ import annotations

from typing import Any

from dmlc_targets.kfp.plan import StepPlan

from dmlc import placement


def node_selector(options: Any, p: StepPlan) -> list[tuple[str, str]]:
    labels = dict(options.node_selector)
    if not p.launched:
        labels.update(p.step.node_selector or {})
    return sorted(labels.items())


def tolerations(options: Any, p: StepPlan) -> list[dict[str, Any]]:
    """`add_toleration` keyword arguments (unset ones left out)."""
    out = [tol.model_dump(exclude_none=True) for tol in options.tolerations]
    if not p.launched:
        out += [t.model_dump(exclude_none=True) for t in p.step.tolerations or ()]
    return out


def node_affinity(p: StepPlan) -> list[tuple[list[dict[str, Any]], int | None]]:
    """(match_expressions, weight) of each `add_node_affinity` call (weight None: required)."""
    aff = p.step.affinity
    if p.launched or aff is None:
        return []
    out: list[tuple[list[dict[str, Any]], int | None]] = []
    if aff.require:
        out.append((placement.expressions(aff.require), None))
    out += [(placement.expressions({k: v}), placement.PREFER_WEIGHT) for k, v in aff.prefer.items()]
    return out


def kubernetes_fields(options: Any, p: StepPlan, secrets: list[str]) -> dict[str, Any]:
    """The same settings as KubernetesExecutorConfig JSON (proto3: unset and empty fields not written;
    int64 `tolerationSeconds` as a string, as MessageToDict writes it)."""
    config: dict[str, Any] = {}
    labels = node_selector(options, p)
    if labels:
        config["nodeSelector"] = {"labels": dict(labels)}
    tols = [_toleration(t) for t in tolerations(options, p)]
    if tols:
        config["tolerations"] = tols
    terms = [_term(expressions, weight) for expressions, weight in node_affinity(p)]
    if terms:
        config["nodeAffinity"] = terms
    if secrets:
        config["imagePullSecret"] = [_pull_secret(name) for name in secrets]
    return config


def _toleration(tol: dict[str, Any]) -> dict[str, Any]:
    out = {k: tol[k] for k in ("key", "operator", "value", "effect") if tol.get(k)}
    if tol.get("toleration_seconds") is not None:
        out["tolerationSeconds"] = str(tol["toleration_seconds"])
    return out


def _term(expressions: list[dict[str, Any]], weight: int | None) -> dict[str, Any]:
    term: dict[str, Any] = {"matchExpressions": expressions}
    if weight is not None:  # int32 in the message, a float once the platform spec is a protobuf Struct
        term["weight"] = float(weight)
    return term


def _pull_secret(name: str) -> dict[str, Any]:
    return {"secretName": name, "secretNameParameter": {"runtimeValue": {"constant": name}}}
