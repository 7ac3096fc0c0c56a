"""A KFP run's state in dmlc's words (for `dmlc status`, `--watch` and `dmlc logs` on KFP).

Takes a v2beta1 Run as a dict (`state`, `error`, `run_details.task_details[]`) and the pipeline's step
names; gives dmlc's run state and one `StepState` per task that runs a step. A task belongs to the
step it is named after (KFP names a task after its component: the step's name with `-` for `_`);
tasks of one step (the iterations of a ParallelFor) are `step[0]`, `step[1]`, ... in the order KFP
created them, since the v2beta1 API does not give the iteration index. Helper tasks (the volume,
clocks, conditions, loops) are left out. KFP's SKIPPED covers a cache hit and a false condition alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dmlc.k8s import k8s_name
from dmlc.runs import RunRecord, RunState, StepState, iso_time

RUN_STATES = {
    "PENDING": "pending",
    "RUNTIME_STATE_UNSPECIFIED": "pending",
    "RUNNING": "running",
    "CANCELING": "running",
    "PAUSED": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "succeeded",
    "FAILED": "failed",
    "CANCELED": "failed",
}
TASK_STATES = {
    "PENDING": "pending",
    "RUNTIME_STATE_UNSPECIFIED": "pending",
    "PAUSED": "pending",
    "RUNNING": "running",
    "CANCELING": "running",
    "SUCCEEDED": "succeeded",
    "SKIPPED": "skipped",
    "FAILED": "failed",
    "CANCELED": "failed",
}


def when(value: Any) -> float | None:
    """A time as the API client gives it (a datetime) or as JSON has it (RFC 3339 text)."""
    if isinstance(value, datetime):
        stamp = value.timestamp()
        return stamp if stamp > 0 else None
    return iso_time(value) if isinstance(value, str) else None


def step_tasks(record: RunRecord, run: dict) -> list[tuple[str, str, dict]]:
    """(step, label, task) for every task that runs a step, in creation order."""
    names = {}
    for step in record.steps:
        names[k8s_name(step)] = step
        names[step.replace("_", "-")] = step
    tasks = ((run.get("run_details") or {}).get("task_details")) or []
    tasks = sorted(tasks, key=lambda t: (when(t.get("create_time")) or 0.0, str(t.get("task_id") or "")))
    mine = [(names[t.get("display_name") or ""], t) for t in tasks if (t.get("display_name") or "") in names]
    counts: dict[str, int] = {}
    for step, _ in mine:
        counts[step] = counts.get(step, 0) + 1
    out, seen = [], dict.fromkeys(counts, 0)
    for step, task in mine:
        label = step if counts[step] == 1 else f"{step}[{seen[step]}]"
        seen[step] += 1
        out.append((step, label, task))
    return out


def run_state(record: RunRecord, run: dict) -> RunState:
    state = RUN_STATES.get(str(run.get("state") or "PENDING"), "pending")
    steps = [_step_state(step, label, task) for step, label, task in step_tasks(record, run)]
    seen = {s.step for s in steps}
    for name in record.steps:
        if name not in seen:
            steps.append(StepState(name, name, "pending" if state in ("pending", "running") else "skipped"))
    order = {name: i for i, name in enumerate(record.steps)}
    steps.sort(key=lambda s: order.get(s.step, len(order)))  # stable: instances keep their order
    message = _error(run.get("error"))
    if str(run.get("state")) == "CANCELED":
        message = message or "the run was canceled"
    return RunState(record, state, steps, message, when(run.get("created_at")), when(run.get("finished_at")))


def _step_state(step: str, label: str, task: dict) -> StepState:
    raw = str(task.get("state") or "PENDING")
    state = TASK_STATES.get(raw, "pending")
    message = _error(task.get("error"))
    if raw == "SKIPPED":
        message = message or "skipped by KFP (a cache hit, or a false condition)"
    return StepState(
        label, step, state, 1 if pod_of(task) else 0, when(task.get("start_time")), when(task.get("end_time")), message
    )


def _error(error: Any) -> str:
    return str(error.get("message") or "") if isinstance(error, dict) else ""


def pod_of(task: dict) -> str:
    """The task's pod (KFP calls it node_id too): its own, else its first child's."""
    if task.get("pod_name"):
        return str(task["pod_name"])
    pods = [c.get("pod_name") for c in task.get("child_tasks") or [] if isinstance(c, dict) and c.get("pod_name")]
    return str(pods[0]) if pods else ""
