"""KFP target, stage 4 (emit): what a step's task carries, without kfp, for both ways of building the pipeline.

Takes the validated pipeline and a step's plan (`plan.py`); gives the step's component interface (its
input and output kinds, `components.Interface`), the text of its `dmlc_spec` input, its pod labels and
secrets, its retry backoff, and the Python type kfp reads a pipeline param's type from. `build.py` (kfp's
DSL) and `direct.py` (kfp's protobuf classes) both take these, so the two paths cannot drift apart.
"""

from __future__ import annotations

import json
from typing import Any

from dmlc_targets.kfp import components, manifests
from dmlc_targets.kfp.plan import KfpPlan, StepPlan, output_kinds

from dmlc import k8s
from dmlc.ir import when
from dmlc.ir.model import Pipeline
from dmlc.semantics import spec as contract

PY_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "list": list, "dict": dict}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def py_type(value: Any) -> type:
    return PY_TYPES.get(type(value).__name__, str)


def base_spec(pipeline: Pipeline, bindings: dict[str, Any], loop_owner: str | None) -> dict[str, Any]:
    """How the shim resolves the references of a step: which component input each one reads."""
    return {
        "bindings": {key: b.to_json() for key, b in bindings.items()},
        "item_wrapped": loop_owner is not None and isinstance(pipeline.steps[loop_owner].for_each, list),
    }


def step_spec(plan: KfpPlan, p: StepPlan, loop_owner: str | None) -> dict[str, Any]:
    """The `dmlc_spec` of a step's task: bindings, the step spec template and, when launched, its manifests."""
    spec = base_spec(plan.pipeline, p.bindings, loop_owner)
    spec["spec"] = contract.dump(contract.template(plan.pipeline, p.name))
    if p.launched:
        spec["launch"] = manifests.launch_spec(plan.pipeline, p)
    return spec


def when_spec(pipeline: Pipeline, p: StepPlan, loop_owner: str | None) -> dict[str, Any]:
    """The `dmlc_spec` of a `when-<step>` task: the bindings of the condition and the condition itself."""
    assert p.step.when is not None
    return base_spec(pipeline, p.when_bindings, loop_owner) | {"when": when.render(p.step.when.tree)}


def spec_input(spec: dict[str, Any]) -> str:
    """The `dmlc_spec` argument: kfp.local rewrites every "python3" in a task's arguments into its
    interpreter path; a JSON escape keeps the spec's own text (a command, a path) intact there and on
    the cluster alike."""
    return canonical(spec).replace("python3", "\\u0070ython3")


def step_interface(plan: KfpPlan, p: StepPlan, lists: set[tuple[str, str]], in_loop: bool) -> components.Interface:
    """The component's inputs (`dmlc_spec` first, then one per binding) and outputs of a step's task."""
    iface = components.Interface(components.function_name(p.name), outputs=output_kinds(plan.pipeline, p.name, lists))
    iface.inputs = {b.input: b.kind for b in p.bindings.values()} | item_input(in_loop)
    if p.launched:
        iface.inputs.update({f"dmlc_pvc_{v}": "str" for v in plan.pipeline.volumes} | {"dmlc_data_pvc": "str"})
    return iface


def item_input(in_loop: bool) -> dict[str, str]:
    """The `for_each` item of the innermost loop: {index, item} for a static list, the raw item otherwise."""
    return {"dmlc_item": "str"} if in_loop else {}


def pod_labels(pipeline: Pipeline, p: StepPlan) -> list[tuple[str, str]]:
    """The task's pod labels in the order they are added: the step's, then the scheduling ones."""
    return sorted(k8s.pod_labels(pipeline, p.name, p.step).items()) + sorted(scheduling_labels(pipeline).items())


def scheduling_labels(pipeline: Pipeline) -> dict[str, str]:
    """Kueue labels: the team's queue and the workload priority class, on every pod of the run."""
    sched = pipeline.scheduling
    labels: dict[str, str] = {}
    if sched is not None and sched.queue:
        labels[k8s.QUEUE_LABEL] = sched.queue
    if sched is not None and isinstance(sched.priority, str):
        labels["kueue.x-k8s.io/priority-class"] = sched.priority
    return labels


def secrets(step: Any) -> list[tuple[str, dict[str, str]]]:
    """`secret_env` grouped by Secret (sorted): secret name -> {key: env var}."""
    by_secret: dict[str, dict[str, str]] = {}
    for env, ref in step.secret_env.items():
        secret, _, key = ref.partition("/")
        by_secret.setdefault(secret, {})[key] = env
    return sorted(by_secret.items())


def retried(p: StepPlan, options: Any) -> bool:
    """KFP retries the task itself (a launched step's launcher applies the policy): every failure, so only
    `on = "any"`, or any `on` with the `task_retry = "any"` opt-in."""
    retry = p.step.retry
    every = retry is not None and (retry.on == "any" or options.task_retry == "any")
    return retry is not None and bool(retry.limit) and every and not p.launched


def backoff(retry: Any) -> str | None:
    return f"{int(retry.backoff)}s" if retry.backoff else None


def literal_env(step: Any) -> list[tuple[str, str]]:
    """`env` values without references (the shim resolves the others for the step's process)."""
    return [(key, value) for key, value in step.env.items() if "${" not in value]
