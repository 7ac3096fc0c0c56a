"""The execution plan (local target, stage 3): a validated IR -> per-step scheduling facts.

Takes a `Pipeline`; gives `StepPlan`s in topological order (upstreams, data vs control edges, the
fanned-out upstreams a `wait = "each"` step is paired with, gang slots and resource requests) and
`plan_json`, the deterministic JSON that `dmlc compile --target local` prints. The executor runs
exactly this plan, so the printed plan is what `dmlc run --local` will do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmlc import memo, units
from dmlc.ir.effective import effective
from dmlc.ir.graph import data_dependencies, dependencies, refs, topological_order
from dmlc.ir.model import Pipeline, Step, Train
from dmlc.semantics import spec as contract


@dataclass
class StepPlan:
    name: str
    order: int
    step: Step  # effective: defaults and image folded in
    deps: list[str]
    data_deps: list[str]
    spec: dict[str, Any]  # the step spec template (dmlc.semantics.spec), references in place
    drivers: list[str] = field(default_factory=list)  # fanned-out upstreams paired by `wait = "each"`
    multi: bool = False  # more than one instance possible (for_each, or paired with a fanned-out step)

    @property
    def slots(self) -> int:
        """Processes started at once: a distributed train job is gang-scheduled as one unit."""
        return self.step.slots if isinstance(self.step, Train) else 1

    @property
    def cpu(self) -> int:
        res = self.step.resources
        return (res.cpu or 0) * self.slots if res else 0

    @property
    def memory(self) -> int:
        res = self.step.resources
        return (res.memory or 0) * self.slots if res else 0

    @property
    def gpu(self) -> int:
        res = self.step.resources
        return (res.gpu or 0) * self.slots if res else 0

    @property
    def attempts(self) -> int:
        """Attempts allowed: the first, `retry.limit` retries, and `restarts` for a train job."""
        extra = self.step.retry.limit if self.step.retry else 0
        if isinstance(self.step, Train):
            extra += self.step.restarts
        return 1 + extra


@dataclass
class LocalPlan:
    """What the local target's check gives its emit and `dmlc run`: the pipeline and its step plans."""

    pipeline: Pipeline
    steps: dict[str, StepPlan]
    source_name: str


def build(pipeline: Pipeline) -> dict[str, StepPlan]:
    """StepPlans in topological order (ties in pipeline order)."""
    deps = dependencies(pipeline)
    position = {name: i for i, name in enumerate(pipeline.steps)}
    plans: dict[str, StepPlan] = {}
    for name in topological_order(pipeline):
        step = effective(pipeline, name)
        spec = contract.dump(contract.template(pipeline, name))
        plan = StepPlan(name, position[name], step, deps[name], data_dependencies(pipeline, name), spec)
        if step.wait == "each":
            plan.drivers = _drivers(pipeline, name, plans)
        plan.multi = step.for_each is not None or bool(plan.drivers)
        plans[name] = plan
    for name, plan in list(plans.items()):
        if plan.step.kind == "finally":  # the exit handler: after every other step, whatever they did
            plan.deps = [n for n in plans if n != name]
            plans[name] = plans.pop(name)
    return plans


def _drivers(pipeline: Pipeline, name: str, plans: dict[str, StepPlan]) -> list[str]:
    """Upstreams referenced without an index that have several instances: one consumer per instance."""
    found = []
    for _, ref in refs(pipeline.steps[name]):
        up = plans.get(ref.root)
        if up is not None and up.multi and ref.index is None:
            found.append(ref.root)
    return list(dict.fromkeys(found))


def parallelism(pipeline: Pipeline) -> int:
    """`scheduling.parallelism`, else a cap that keeps a laptop responsive (2 per core)."""
    if pipeline.scheduling and pipeline.scheduling.parallelism:
        return pipeline.scheduling.parallelism
    return max(2, (os.cpu_count() or 1) * 2)


def command_template(plan: StepPlan) -> list[str]:
    """What the step runs, before values are filled in (shown by the plan)."""
    argv = contract.command(plan.spec)
    if argv is not None:
        return argv
    return ["python", "-m", "dmlc.runtime", plan.step.kind, "--spec", "SPEC.json", "--outputs", "OUTPUTS"]


def _step_json(pipeline: Pipeline, plan: StepPlan) -> dict[str, Any]:
    """How the executor runs the step; what it runs (every attribute, defaults applied) is its `spec`."""
    step = plan.step
    out: dict[str, Any] = {
        "kind": step.kind,
        "depends_on": plan.deps,
        "command": command_template(plan),
        "for_each": step.model_dump(mode="json", include={"for_each"})["for_each"],
        "wait": step.wait or ("each" if plan.drivers else None),
        "paired_with": plan.drivers,
        "priority": step.priority or 0,
        "slots": plan.slots,
        "attempts": plan.attempts,
        "spec_digest": memo.spec_digest(pipeline, plan.name),
        "spec": plan.spec,
    }
    return out


def plan_json(plan: LocalPlan) -> dict[str, Any]:
    """The whole plan: deterministic (no machine facts, no times), steps in execution order."""
    pipeline, plans, source_name = plan.pipeline, plan.steps, plan.source_name
    sched = pipeline.scheduling
    doc: dict[str, Any] = {
        "$comment": f"{Path(source_name).stem}: execution plan generated by dmlc (dmlc run --local runs it)",
        "pipeline": pipeline.pipeline,
        "params": pipeline.params,
        "parallelism": sched.parallelism if sched and sched.parallelism else "auto (2 per CPU core)",
        "volumes": {n: {"size": units.format_memory(v.size), "mount": v.mount} for n, v in pipeline.volumes.items()},
        "order": list(plans),
        "steps": {name: _step_json(pipeline, p) for name, p in plans.items()},
    }
    if pipeline.schedule is not None:
        doc["crontab"] = crontab_line(pipeline, source_name)
    return doc


def crontab_line(pipeline: Pipeline, source_name: str) -> str:
    sched = pipeline.schedule
    assert sched is not None
    tz = f"CRON_TZ={sched.timezone}\n" if sched.timezone else ""
    base = os.path.basename(source_name)
    run = f"dmlc run {base} --local"
    if sched.concurrency == "forbid":  # skip a tick while the previous run still holds the lock
        run = f"flock -n .dmlc/cron.lock {run}"
    return f"{tz}{sched.cron.strip()} {run}  # pipeline {pipeline.pipeline}"
