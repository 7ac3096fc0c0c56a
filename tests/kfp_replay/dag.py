"""DAG execution of the KFP v2 backend (kubeflow/pipelines 2.17.0 on Argo Workflows), replayed in order.

Takes the loaded `Spec`, a sandbox and the run's identity; gives the root DAG's `Execution` tree.
Rules, with their sources:

- Task wiring (`backend/src/v2/compiler/argocompiler/dag.go`, see `spec.py`): a regular task starts when
  every task it depends on is done, and runs only if each one `.Succeeded`; otherwise Argo omits it
  (NOT_TRIGGERED). A SKIPPED (condition false) or NOT_TRIGGERED dependency is not Succeeded.
- Argo's DAG `failFast` (default true; KFP never sets it): once a task of a DAG failed, no new task of
  that DAG starts. The replay runs a DAG in waves (every ready task of a wave is "started together"), so
  tasks ready in the same wave as the failing one still run, later ones do not.
- Exit tasks (`ALL_UPSTREAM_TASKS_COMPLETED`) run as the exit hook of each task they are attached to,
  right after that task's node completes, whatever its phase (Argo lifecycle hook `exit`); an exit task
  attached to nothing never runs (NOT_TRIGGERED, reason says so). Its failure fails its DAG.
- Containers (`argocompiler/container.go`, `driver/container.go`): driver (resolve inputs, evaluate
  `triggerPolicy.condition`: false -> SKIPPED), then the launcher (`launcher.py`), retried up to
  `retryPolicy.maxRetryCount` more times. Dummy images (`argostub/createpvc`) run only their driver:
  CreatePVC's output `name` is `uuid + pvc_name_suffix` (`driver/k8s.go`, createPVC).
- DAG tasks (`driver/dag.go`): DAG driver resolves the inputs, condition false -> SKIPPED (nothing in it
  runs), else the sub-DAG runs; Failed if any task in it failed, Succeeded otherwise.
- ParallelFor (`argocompiler/dag.go` iteratorTask / iterationItemTask, `driver/dag.go`): items from
  `parameterIterator.items.raw` (JSON) or `.inputParameter` (a LIST input); one iteration DAG per item,
  whose inputs are the loop's inputs without the items plus `itemInput` = the item (resolve.go, the
  iteration driver). `iteratorPolicy.parallelismLimit` runs them in batches of that size (with failFast
  between batches); without it all run. The loop fails if an iteration failed.

Not replayed: caching (every task runs; `cachingOptions` is reported in the run's notes), timeouts
(`set_timeout`), PVC mounts (recorded in notes, not mounted), secrets as env, importer / resolver
executors, artifact iterators. `dsl.ExitHandler` is its exit task attached to the handler's DAG task (it
runs after the DAG whatever its state; the `taskFinalStatus` it reads: `resolve.py`).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from tests.kfp_replay import launcher
from tests.kfp_replay.model import FAILED, NOT_TRIGGERED, SKIPPED, SUCCEEDED, Execution
from tests.kfp_replay.resolve import DriverError, Inputs, RunInfo, check, resolve
from tests.kfp_replay.spec import DUMMY_IMAGES, DagPlan, Spec, is_loop
from tests.kfp_replay.values import ValueError_, condition_holds, numbers_as_floats


@dataclass
class Scope:
    """Where a task runs: its DAG's execution and inputs, and the iteration indexes around it."""

    dag: Execution
    inputs: Inputs
    iters: tuple[int, ...]


class Runner:
    def __init__(self, spec: Spec, box: launcher.Sandbox, info: RunInfo, notes: list[str]) -> None:
        self.spec, self.box, self.info, self.notes = spec, box, info, notes
        root = spec.pipeline.get("defaultPipelineRoot") or "minio://mlpipeline/v2/artifacts"  # objstore.py
        self.pipeline_root = f"{root.rstrip('/')}/{info.pipeline}/{info.run_id}"

    # --- DAGs -------------------------------------------------------------------------------------

    def run_dag(self, component: str, scope: Scope) -> None:
        plan = self.spec.dag(component)
        done = scope.dag.children
        pending = list(plan.regular)
        while pending and not any(e.state == FAILED for e in done.values()):
            ready = [t for t in pending if all(d in done for d in plan.deps[t])]
            if not ready:
                break
            for name in ready:
                pending.remove(name)
                self._start(plan, name, scope)
        for name in pending:
            done[name] = self._idle(plan, name, scope, "not started: its DAG already failed (Argo failFast)")
        for name in sorted(plan.exits - set(done)):
            done[name] = self._idle(plan, name, scope, "exit task attached to no task: never runs")
        scope.dag.state = FAILED if any(e.state == FAILED for e in done.values()) else SUCCEEDED

    def _start(self, plan: DagPlan, name: str, scope: Scope) -> None:
        done = scope.dag.children
        blocked = [d for d in plan.deps[name] if done[d].state != SUCCEEDED]
        if blocked:
            reason = "omitted: " + ", ".join(f"{d} {done[d].state}" for d in blocked)
            done[name] = self._idle(plan, name, scope, reason)
        else:
            done[name] = self.run_task(plan.tasks[name], name, scope)
        hook = plan.hooks.get(name)
        if hook is not None:  # the Argo `exit` lifecycle hook of this task
            runs = done[hook].runs if hook in done else 0
            done[hook] = self.run_task(plan.tasks[hook], hook, scope)
            done[hook].runs = runs + 1

    def _idle(self, plan: DagPlan, name: str, scope: Scope, reason: str) -> Execution:
        task = plan.tasks[name]
        comp = task["componentRef"]["name"]
        kind = "loop" if is_loop(task) else "dag" if "dag" in self.spec.component(comp) else "container"
        path = f"{scope.dag.path}/{name}"
        return Execution(name, kind, path, comp, NOT_TRIGGERED, reason, scope.iters)

    # --- tasks ------------------------------------------------------------------------------------

    def run_task(self, task: dict[str, Any], name: str, scope: Scope) -> Execution:
        comp_name = task["componentRef"]["name"]
        comp = self.spec.component(comp_name)
        kind = "loop" if is_loop(task) else "dag" if "dag" in comp else "container"
        ex = Execution(name, kind, f"{scope.dag.path}/{name}", comp_name, iterations_of=scope.iters)
        ex.outputs_spec = comp.get("dag", {}).get("outputs", {})
        if "cachingOptions" in task and task["cachingOptions"].get("enableCache"):
            self.notes.append(f"{ex.path}: caching enabled, not replayed (ran anyway)")
        try:
            inputs = resolve(task, comp, scope.dag, scope.inputs, self.info, dag_driver=kind != "container")
            ex.inputs = dict(inputs.parameters)
            condition = task.get("triggerPolicy", {}).get("condition")
            if condition and not condition_holds(condition, inputs.parameters):
                ex.state, ex.reason = SKIPPED, f"condition false: {condition}"
                return ex
            if kind == "loop":
                self._loop(ex, task, inputs, scope)
            elif kind == "dag":
                self.run_dag(comp_name, Scope(ex, inputs, scope.iters))
            else:
                self._container(ex, task, comp, inputs)
        except (DriverError, ValueError_) as exc:
            ex.state, ex.reason = FAILED, f"driver: {exc}"
        return ex

    def _container(self, ex: Execution, task: dict[str, Any], comp: dict[str, Any], inputs: Inputs) -> None:
        label = comp["executorLabel"]
        container = self.spec.executor(label)["container"]
        self._platform_notes(ex, label)
        if container.get("image") in DUMMY_IMAGES:
            self._driver_only(ex, container, inputs)
            return
        retries = int(task.get("retryPolicy", {}).get("maxRetryCount", 0))
        for _ in range(retries + 1):
            ex.attempts += 1
            launcher.launch(ex, container, comp, inputs, self.box, self.pipeline_root)
            if ex.state == SUCCEEDED:
                return

    def _driver_only(self, ex: Execution, container: dict[str, Any], inputs: Inputs) -> None:
        if "createpvc" not in container["image"]:
            ex.state, ex.reason = SUCCEEDED, "Kubernetes config task: not replayed"
            return
        name, suffix = inputs.parameters.get("pvc_name") or "", inputs.parameters.get("pvc_name_suffix") or ""
        if name and suffix:
            ex.state, ex.reason = FAILED, "failed to create pvc: at most one of pvc_name and pvc_name_suffix"
            return
        ex.kind, ex.state = "driver", SUCCEEDED
        ex.parameters = {"name": name or f"{uuid.uuid4()}{suffix}"}

    def _platform_notes(self, ex: Execution, label: str) -> None:
        config = self.spec.k8s_config(label)
        for mount in config.get("pvcMount", []):
            self.notes.append(f"{ex.path}: PVC mount at {mount.get('mountPath')} recorded, not mounted")
        for secret in config.get("secretAsEnv", []):
            self.notes.append(f"{ex.path}: secret {secret.get('secretName')} as env not replayed")

    # --- loops ------------------------------------------------------------------------------------

    def _loop(self, ex: Execution, task: dict[str, Any], inputs: Inputs, scope: Scope) -> None:
        iterator = task["parameterIterator"]
        items_spec = iterator["items"]
        if "raw" in items_spec:
            items = numbers_as_floats(json.loads(items_spec["raw"]))
        else:
            items = inputs.parameters.get(items_spec["inputParameter"])
        if not isinstance(items, list):
            raise DriverError(f"iterating on item input {iterator['itemInput']!r} failed: not a list: {items!r}")
        limit = int(task.get("iteratorPolicy", {}).get("parallelismLimit", 0)) or max(len(items), 1)
        comp_name = task["componentRef"]["name"]
        comp = self.spec.component(comp_name)
        for start in range(0, len(items), limit):
            if any(it.state == FAILED for it in ex.iterations):
                break  # failFast: the next batch never starts
            for index in range(start, min(start + limit, len(items))):
                ex.iterations.append(self._iteration(ex, comp_name, comp, task, inputs, items[index], index, scope))
        ex.state = FAILED if any(it.state == FAILED for it in ex.iterations) else SUCCEEDED

    def _iteration(self, loop: Execution, comp_name: str, comp: dict[str, Any], task: dict[str, Any],
                   inputs: Inputs, item: Any, index: int, scope: Scope) -> Execution:  # fmt: skip
        iterator = task["parameterIterator"]
        it = Execution(loop.name, "iteration", f"{loop.path}[{index}]", comp_name, iterations_of=(*scope.iters, index))
        it.outputs_spec = loop.outputs_spec
        params = {k: v for k, v in inputs.parameters.items() if k != iterator["items"].get("inputParameter")}
        it_inputs = Inputs({**params, iterator["itemInput"]: item}, inputs.artifacts, inputs.nil)
        try:
            check(it_inputs, comp.get("inputDefinitions", {}).get("parameters", {}), iterator, iteration=True)
        except DriverError as exc:
            it.state, it.reason = FAILED, f"iteration driver: {exc}"
            return it
        it.inputs = dict(it_inputs.parameters)
        self.run_dag(comp_name, Scope(it, it_inputs, it.iterations_of))
        return it
