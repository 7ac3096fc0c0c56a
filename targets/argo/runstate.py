"""An Argo Workflow's status in dmlc's words (for `dmlc status`, `--watch` and `dmlc logs` on Argo).

Takes a Workflow as the Argo Server returns it (`status.phase`, `status.nodes`: id -> NodeStatus) and
the pipeline's step names; gives dmlc's run state and one `StepState` per step instance, and the pod
of each attempt (for its log). A node belongs to the step its DAG task is named after (the last task
in its node name that is a step: `wf.model(1:mlp)` is `model[1]`); a Retry node is one instance
whose Pod children are its attempts; Argo's Omitted and Skipped are `skipped`, a memoization hit is
`cached`. Pod names follow Argo's `GeneratePodName` (workflow/util/pod_name.go, v4.1.2).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dmlc.k8s import k8s_name
from dmlc.runs import RunRecord, RunState, StepState, iso_time

RUN_STATES = {"": "pending", "Pending": "pending", "Running": "running", "Succeeded": "succeeded"}
NODE_STATES = {
    "Pending": "pending",
    "Running": "running",
    "Succeeded": "succeeded",
    "Skipped": "skipped",
    "Omitted": "skipped",
    "Failed": "failed",
    "Error": "failed",
}
INSTANCE_TYPES = ("Pod", "Retry", "Skipped", "Suspend")
POD_NAME_FORMAT = "workflows.argoproj.io/pod-name-format"
_INDEX = re.compile(r"\((\d+):")


@dataclass
class Instance:
    """One step instance: its state and the pods of its attempts (oldest first)."""

    state: StepState
    pods: list[str]


def run_state(record: RunRecord, workflow: dict) -> RunState:
    status = workflow.get("status") or {}
    phase = status.get("phase") or ""
    steps = [i.state for i in instances(record, workflow)]
    state = RUN_STATES.get(phase, "failed")  # Failed, Error
    seen = {s.step for s in steps}
    for name in record.steps:  # steps Argo has not reached yet
        if name not in seen:
            steps.append(StepState(name, name, "pending" if state in ("pending", "running") else "skipped"))
    order = {name: i for i, name in enumerate(record.steps)}
    steps.sort(key=lambda s: (order.get(s.step, len(order)), _index(s.label), s.label))
    return RunState(
        record,
        state,
        steps,
        status.get("message") or "",
        iso_time(status.get("startedAt")),
        iso_time(status.get("finishedAt")),
    )


def instances(record: RunRecord, workflow: dict) -> list[Instance]:
    """The step instances of the workflow's nodes (nodes of no step, DAGs and loop groups left out)."""
    name = (workflow.get("metadata") or {}).get("name") or record.run
    nodes: dict[str, dict] = (workflow.get("status") or {}).get("nodes") or {}
    parent = {child: nid for nid, node in nodes.items() for child in node.get("children") or ()}
    version = ((workflow.get("metadata") or {}).get("annotations") or {}).get(POD_NAME_FORMAT, "v2")
    by_k8s = {k8s_name(s): s for s in record.steps}
    out = []
    for nid, node in nodes.items():
        if node.get("type") not in INSTANCE_TYPES or nodes.get(parent.get(nid, ""), {}).get("type") == "Retry":
            continue
        step, index = _step_of(node.get("name") or "", name, by_k8s)
        if step is None:
            continue
        tries = [nodes[c] for c in node.get("children") or () if c in nodes] if node.get("type") == "Retry" else [node]
        pods = [pod_name(name, t, version) for t in tries if t.get("type") == "Pod"]
        label = step if index is None else f"{step}[{index}]"
        out.append(Instance(_step_state(step, label, node, len(pods)), pods))
    return out


def _step_state(step: str, label: str, node: dict, attempts: int) -> StepState:
    state = NODE_STATES.get(node.get("phase") or "Pending", "pending")
    if state == "succeeded" and (node.get("memoizationStatus") or {}).get("hit"):
        state = "cached"
    message = node.get("message") or ""
    if state == "skipped" and node.get("phase") == "Omitted" and not message:
        message = "omitted: its dependencies were not met"
    return StepState(
        label, step, state, attempts, iso_time(node.get("startedAt")), iso_time(node.get("finishedAt")), message
    )


def _segments(node_name: str) -> list[str]:
    """`wf.model(0:a.b).train(1)` -> [`wf`, `model(0:a.b)`, `train(1)`]: dots inside parentheses stay."""
    parts, depth, cur = [], 0, ""
    for ch in node_name:
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    return [*parts, cur]


def _step_of(node_name: str, workflow: str, by_k8s: dict[str, str]) -> tuple[str | None, int | None]:
    """The step a node runs (its innermost task named like a step) and its fan-out index, if any."""
    segments = _segments(node_name)
    if segments and segments[0] == workflow:
        segments = segments[1:]
    step, index = None, None
    for seg in segments:
        base = seg.split("(", 1)[0]
        found = _INDEX.search(seg)
        if found and index is None:
            index = int(found.group(1))
        if base in by_k8s:
            step = by_k8s[base]
    return step, index


def _index(label: str) -> int:
    found = re.search(r"\[(\d+)\]$", label)
    return int(found.group(1)) if found else -1


def fnv32a(text: str) -> int:
    """Go's hash/fnv New32a over the UTF-8 bytes."""
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


MAX_PREFIX = 253 - 10  # maxK8sResourceNameLength - k8sNamingHashLength


def pod_name(workflow: str, node: dict, version: str = "v2") -> str:
    """The pod of a Pod node: Argo's GeneratePodName (v1: the node id; v2: workflow-template-hash)."""
    if version == "v1":
        return str(node.get("id") or "")
    name = node.get("name") or ""
    if name == workflow:
        return workflow
    template = node.get("templateName") or ((node.get("templateRef") or {}).get("template")) or ""
    prefix = f"{workflow}-{template}" if template else workflow
    if len(prefix) > MAX_PREFIX - 1:
        prefix = prefix[: MAX_PREFIX - 1]
    return f"{prefix}-{fnv32a(name)}"
