"""The compiled pipeline as the KFP v2 backend (kubeflow/pipelines 2.17.0) compiles it to Argo.

Takes the YAML text that `dmlc compile --target kfp` writes (header comments, a PipelineSpec document,
optionally a PlatformSpec document); gives a `Spec` with the components, executors, the kubernetes
platform config and, per DAG, the task wiring the Argo compiler derives
(`backend/src/v2/compiler/argocompiler/dag.go`, 2.17.0):

- `addImplicitDependencies`: a task depends on every producer of a `taskOutputParameter` /
  `taskOutputArtifact` input, besides its `dependentTasks`.
- `depends`: a non-exit task runs when each dependency's node is `.Succeeded` (enhanced depends).
- exit tasks: a task with `triggerPolicy.strategy: ALL_UPSTREAM_TASKS_COMPLETED` (kfp's
  `.ignore_upstream_failure()`) is *not* a DAG task. It becomes the template `exit-hook-<dag>-<task>`,
  set as the Argo `exit` lifecycle hook of each task it depends on (`taskToExitTemplate[dep]`, a map:
  with two exit tasks on one dependency, the later name in sorted order wins). An iterator
  (ParallelFor) task drops the hook (`task()` returns `iteratorTask(...)` without `exitTemplate`), so
  an exit task that only depends on loops, or on nothing, never runs.
- A DAG whose tasks are all exit tasks is refused ("DAG %s must contain one or more non-exit tasks"),
  and so is, by Argo's validation, a task depending on an exit task (that name is no task of the DAG).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.kfp_replay.model import BackendRejected

COMPLETED = "ALL_UPSTREAM_TASKS_COMPLETED"
# argocompiler/container.go dummyImages: Kubernetes-config tasks, only their driver runs
DUMMY_IMAGES = {"argostub/createpvc", "argostub/deletepvc"}


@dataclass
class DagPlan:
    """One DAG component's tasks as the Argo compiler wires them."""

    tasks: dict[str, dict[str, Any]]
    deps: dict[str, list[str]]
    exits: set[str] = field(default_factory=set)
    hooks: dict[str, str] = field(default_factory=dict)  # task -> exit task run on its exit

    @property
    def regular(self) -> list[str]:
        return sorted(t for t in self.tasks if t not in self.exits)


@dataclass
class Spec:
    pipeline: dict[str, Any]
    platform: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.pipeline["pipelineInfo"]["name"])

    @property
    def components(self) -> dict[str, Any]:
        return self.pipeline.get("components", {})

    def component(self, name: str) -> dict[str, Any]:
        return self.pipeline["root"] if name == "root" else self.components[name]

    def executor(self, label: str) -> dict[str, Any]:
        return self.pipeline["deploymentSpec"]["executors"][label]

    def k8s_config(self, label: str) -> dict[str, Any]:
        executors = self.platform.get("kubernetes", {}).get("deploymentSpec", {}).get("executors", {})
        return executors.get(label, {})

    def dag(self, component: str) -> DagPlan:
        return plan_dag(component, self.component(component)["dag"])


def load(text: str) -> Spec:
    docs = [d for d in yaml.safe_load_all(text) if d]
    pipeline = docs[0]
    platform = docs[1].get("platforms", {}) if len(docs) > 1 else {}
    spec = Spec(pipeline, platform)
    validate(spec)
    return spec


def _producers(task: dict[str, Any]) -> list[str]:
    inputs = task.get("inputs", {})
    out = [p["taskOutputParameter"]["producerTask"] for p in inputs.get("parameters", {}).values()
           if "taskOutputParameter" in p]  # fmt: skip
    out += [a["taskOutputArtifact"]["producerTask"] for a in inputs.get("artifacts", {}).values()
            if "taskOutputArtifact" in a]  # fmt: skip
    return out


def plan_dag(name: str, dag: dict[str, Any]) -> DagPlan:
    tasks = dag.get("tasks", {})
    deps: dict[str, list[str]] = {}
    for task_name, task in tasks.items():
        found = list(task.get("dependentTasks", []))
        for producer in _producers(task):
            if producer not in tasks:
                raise BackendRejected(f"failed to add implicit deps: unknown producer task {producer!r} in DAG")
            if producer not in found:
                found.append(producer)
        deps[task_name] = found
    plan = DagPlan(tasks, deps)
    plan.exits = {t for t, task in tasks.items() if task.get("triggerPolicy", {}).get("strategy") == COMPLETED}
    for exit_task in sorted(plan.exits):
        for dep in deps[exit_task]:
            plan.hooks[dep] = exit_task
    # the hook of an iterator task or of another exit task is never set on an Argo task
    plan.hooks = {dep: ex for dep, ex in plan.hooks.items() if dep not in plan.exits and not is_loop(tasks[dep])}
    return plan


def is_loop(task: dict[str, Any]) -> bool:
    return "parameterIterator" in task or "artifactIterator" in task


def validate(spec: Spec) -> None:
    """What the backend's compiler, or Argo's validation of the Workflow it makes, refuses."""
    for name, comp in [("root", spec.pipeline["root"]), *spec.components.items()]:
        if "dag" not in comp:
            continue
        plan = spec.dag(name)
        if not plan.regular:
            raise BackendRejected(f'compiling DAG "{name}": DAG {name} must contain one or more non-exit tasks')
        for task in plan.regular:
            for dep in plan.deps[task]:
                if dep in plan.exits:
                    raise BackendRejected(
                        f"templates.{name}.tasks.{task}-driver dependency '{dep}' not defined "
                        f"(`{dep}` is an exit task: ALL_UPSTREAM_TASKS_COMPLETED)"
                    )
        if any("artifactIterator" in task for task in plan.tasks.values()):
            raise BackendRejected(f'compiling DAG "{name}": artifact iterator not implemented yet')
