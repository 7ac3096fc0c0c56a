"""Pipeline construction of the KFP target (stage 4, emit): IR + plans -> a kfp `GraphComponent`.

Takes the validated `Pipeline`, the placement from `plan.py` and the target options; gives the
pipeline built with kfp's own DSL (`dsl.pipeline`, `ParallelFor`, `Collected`, `If`) and
kfp-kubernetes, ready for kfp's compiler. Pipeline `params` become pipeline parameters (overridable
per run), each step one task named after it, configured from its *effective* settings.
"""

from __future__ import annotations

import inspect
from typing import Any

from dmlc_targets.kfp import components, manifests, taskspec
from dmlc_targets.kfp import placement as kplace
from dmlc_targets.kfp.plan import Group, KfpPlan, StepPlan, is_distributed, list_outputs, tree
from kfp import dsl
from kfp import kubernetes as k8s_kfp

from dmlc import k8s, placement
from dmlc.ir.types import Ref
from dmlc.units import format_cpu, format_memory

# CreatePVC's "" means "a pre-provisioned volume only" (the claim stays Pending), and the 2.17 backend
# has no way to ask for the cluster's default class (driver/k8s.go createPVC: "standard" when absent)
DEFAULT_STORAGE_CLASS = "standard"


class Builder:
    """Creates the tasks of one pipeline inside kfp's pipeline context."""

    def __init__(self, plan: KfpPlan) -> None:
        self.plan, self.pipeline, self.options = plan, plan.pipeline, plan.options
        self.plans = plan.steps
        self.lists = list_outputs(self.pipeline)
        self.tasks: dict[str, Any] = {}
        self.items: dict[str, Any] = {}  # loop owner -> kfp loop argument
        self.loops: list[str] = []  # loop owners around the code being emitted, outermost first
        self.params: dict[str, Any] = {}
        self.pvcs: dict[str, Any] = {}
        self.data_pvc: Any = None

    # --- the pipeline function -----------------------------------------------------------------

    def graph_component(self) -> Any:
        names = list(self.pipeline.params)

        def body(*channels: Any) -> None:
            self.params = dict(zip(names, channels, strict=True))
            self._volumes()
            exit_task = self._exit_task()
            steps = {n: p for n, p in self.plans.items() if p.step.kind != "finally"}
            if exit_task is None:
                self._emit(tree(self.pipeline, steps))
                return
            with dsl.ExitHandler(exit_task, name="dmlc-finally"):  # the exit task runs after all of it
                self._emit(tree(self.pipeline, steps))

        body.__name__ = self.pipeline.pipeline
        body.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=v, annotation=taskspec.py_type(v))
                for n, v in self.pipeline.params.items()
            ]
        )
        name = k8s.k8s_name(self.pipeline.pipeline)
        store = self.pipeline.artifacts.store if self.pipeline.artifacts else None  # -> defaultPipelineRoot
        return dsl.pipeline(name=name, description=self.pipeline.description, pipeline_root=store)(body)

    def _volumes(self) -> None:
        if any(p.launched for p in self.plans.values()):
            self.data_pvc = k8s_kfp.CreatePVC(
                pvc_name_suffix=f"-{manifests.DATA_VOLUME}",
                access_modes=["ReadWriteMany"],  # the launcher task and the workload's pods, on any node
                size=self.options.data_volume_size,
                storage_class_name=self.options.data_volume_class,
            )
            self.data_pvc.set_caching_options(False)
            self.data_pvc.set_display_name("volume for launched workloads")
        for vol_name, vol in self.pipeline.volumes.items():
            task = k8s_kfp.CreatePVC(
                pvc_name_suffix=f"-{k8s.k8s_name(vol_name)}",
                access_modes=[vol.access],
                size=format_memory(vol.size),
                storage_class_name=vol.storage_class or DEFAULT_STORAGE_CLASS,
            )
            task.set_caching_options(False)
            task.set_display_name(f"volume {vol_name}")
            self.pvcs[vol_name] = task

    # --- groups ---------------------------------------------------------------------------------

    def _emit(self, group: Group) -> None:
        for item in group.items:
            if isinstance(item, str):
                self.tasks[item] = self._task(self.plans[item])
            elif item.frame[0] == "loop":
                self._loop(item)
            else:
                self._condition(item)

    def _loop(self, group: Group) -> None:
        owner = group.frame[1]
        step = self.pipeline.steps[owner]
        if isinstance(step.for_each, Ref):
            items: Any = self._channel(step.for_each, collected=False)
        else:
            # JSON text, not dicts: protobuf Structs would turn every int item into a float
            items = [taskspec.canonical({"index": i, "item": v}) for i, v in enumerate(step.for_each or [])]
        sched = self.pipeline.scheduling
        parallelism = sched.parallelism if sched is not None and sched.parallelism else None
        with dsl.ParallelFor(items, parallelism=parallelism) as item:
            self.items[owner] = item
            self.loops.append(owner)
            self._emit(group)
            self.loops.pop()

    def _condition(self, group: Group) -> None:
        owner = group.frame[1]
        p = self.plans[owner]
        iface = components.Interface(components.function_name(owner, "when_"))
        iface.inputs = {b.input: b.kind for b in p.when_bindings.values()} | taskspec.item_input(bool(self.loops))
        comp = components.component(iface, p.step.image or self.pipeline.image, when=True)
        spec = taskspec.when_spec(self.pipeline, p, self._loop_owner())
        task = comp(**self._arguments(p, p.when_bindings, spec))
        task.set_caching_options(False)
        task.set_display_name(f"when {owner}")
        self._kubernetes(task, p)
        with dsl.If(task.output == True, name=f"when-{k8s.k8s_name(owner)}"):  # noqa: E712 - a kfp condition
            self._emit(group)

    # --- tasks ----------------------------------------------------------------------------------

    def _task(self, p: StepPlan) -> Any:
        iface = taskspec.step_interface(self.plan, p, self.lists, bool(self.loops))
        arguments = self._arguments(p, p.bindings, taskspec.step_spec(self.plan, p, self._loop_owner()))
        if p.launched:
            arguments.update({f"dmlc_pvc_{v}": t.outputs["name"] for v, t in self.pvcs.items()})
            arguments["dmlc_data_pvc"] = self.data_pvc.outputs["name"]
        epoch = self._epoch(p)
        if epoch is not None:
            iface.inputs["dmlc_cache_epoch"] = "int"
            arguments["dmlc_cache_epoch"] = epoch.output
        comp = components.component(iface, p.step.image or self.pipeline.image)
        task = comp(**arguments)
        self._configure(task, p)
        return task

    def _exit_task(self) -> Any:
        """The `finally` step's task, made first (kfp's ExitHandler takes a task that depends on nothing):
        it also takes `dmlc_status`, the PipelineTaskFinalStatus the backend gives an exit task."""
        p = next((p for p in self.plans.values() if p.step.kind == "finally"), None)
        if p is None:
            return None
        iface = taskspec.step_interface(self.plan, p, self.lists, False)
        iface.inputs["dmlc_status"] = "status"
        arguments = self._arguments(p, p.bindings, taskspec.step_spec(self.plan, p, None))
        task = components.component(iface, p.step.image or self.pipeline.image)(**arguments)
        self._configure(task, p)
        return task

    def _epoch(self, p: StepPlan) -> Any:
        """For `memoize.max_age`: an uncached task started right before the step (after the same upstream
        tasks), whose output, `floor(now / max_age)`, the step takes as an input. KFP's cache key holds
        the task's inputs, so a cached result is reused only within the period it was made in."""
        memo = p.step.memoize
        if memo is None or memo.max_age is None or self.options.cache_max_age == "ignore":
            return None
        epoch = components.epoch(components.function_name(p.name, "max_age_"), p.step.image or self.pipeline.image)
        task = epoch(seconds=float(memo.max_age))
        task.set_caching_options(False)
        task.set_display_name(f"max_age {p.name}")
        for up in p.upstream:
            task.after(self.tasks[up])
        self._kubernetes(task, p, volumes=False)
        return task

    def _loop_owner(self) -> str | None:
        return self.loops[-1] if self.loops else None

    def _arguments(self, p: StepPlan, bindings: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        args: dict[str, Any] = {"dmlc_spec": taskspec.spec_input(spec)}
        for b in bindings.values():
            if b.source is None:
                args[b.input] = self.params[b.input.removeprefix("params__")]
            else:
                args[b.input] = self._channel(b.source, b.collected)
        if self.loops:
            args["dmlc_item"] = self.items[self.loops[-1]]
        return args

    def _channel(self, ref: Ref, collected: bool) -> Any:
        if ref.root == "params":
            return self.params[ref.fields[0]]
        output = self.tasks[ref.root].outputs[ref.output]
        return dsl.Collected(output) if collected else output

    # --- task settings --------------------------------------------------------------------------

    def _configure(self, task: Any, p: StepPlan) -> None:
        step = p.step
        task.set_display_name(p.name)
        memo = step.memoize
        task.set_caching_options(memo is not None)
        for up in step.after:
            task.after(self.tasks[up])
        if taskspec.retried(p, self.options):
            task.set_retry(num_retries=step.retry.limit, backoff_duration=taskspec.backoff(step.retry),
                           backoff_factor=step.retry.factor)  # fmt: skip
        if not p.launched:  # a launched step asks for its resources inside the TFJob / predictor
            self._resources(task, step)
        for key, value in taskspec.literal_env(step):
            task.set_env_variable(key, value)
        self._kubernetes(task, p)
        if p.launched:  # its workload reads its inputs from and writes its outputs to this volume
            k8s_kfp.mount_pvc(task, pvc_name=self.data_pvc.outputs["name"], mount_path=manifests.DATA_MOUNT)

    def _resources(self, task: Any, step: Any) -> None:
        res = step.resources
        if res is None:
            return
        if res.cpu is not None:
            task.set_cpu_request(format_cpu(res.cpu)).set_cpu_limit(format_cpu(res.cpu))
        if res.memory is not None:
            task.set_memory_request(format_memory(res.memory)).set_memory_limit(format_memory(res.memory))
        if res.gpu:  # KFP OSS's driver asks for the accelerator type as the resource name of the limit
            task.set_accelerator_type(placement.accelerator(res)).set_accelerator_limit(res.gpu)

    def _kubernetes(self, task: Any, p: StepPlan, volumes: bool = True) -> None:
        step = p.step
        if step.timeout and not is_distributed(step):  # a TFJob has its own activeDeadlineSeconds
            k8s_kfp.set_timeout(task, int(step.timeout))
        for key, value in taskspec.pod_labels(self.pipeline, p):
            k8s_kfp.add_pod_label(task, key, value)
        for secret, mapping in taskspec.secrets(step):
            k8s_kfp.use_secret_as_env(task, secret_name=secret, secret_key_to_env=mapping)
        for vol_name, vol in self.pipeline.volumes.items() if volumes else ():
            k8s_kfp.mount_pvc(task, pvc_name=self.pvcs[vol_name].outputs["name"], mount_path=vol.mount)
        for key, value in kplace.node_selector(self.options, p):
            k8s_kfp.add_node_selector(task, key, value)
        for tol in kplace.tolerations(self.options, p):
            k8s_kfp.add_toleration(task, **tol)
        for expressions, weight in kplace.node_affinity(p):
            k8s_kfp.add_node_affinity(task, match_expressions=expressions, weight=weight)
        if self.pipeline.image_pull_secrets:
            k8s_kfp.set_image_pull_secrets(task, list(self.pipeline.image_pull_secrets))


def build(plan: KfpPlan) -> Any:
    """The kfp GraphComponent of a checked pipeline."""
    return Builder(plan).graph_component()
