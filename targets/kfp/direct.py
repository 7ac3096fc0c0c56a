"""KFP target, stage 4 (emit): the direct path, a `PipelineSpec` built with kfp's own protobuf classes.

Takes a checked plan; gives the text kfp's compiler would write for the pipeline `build.py` defines with
kfp's DSL, byte for byte, or raises `Unsupported` for what it does not build (then `emit.py` runs kfp's
compiler, which stays the oracle: `tests/targets/test_kfp_direct.py` compares both on every example and
on generated pipelines). Why hand-build what kfp's compiler does: `bench/bench_kfp.py` — defining the
pipeline with kfp's DSL, kfp's compiler (names checked against every earlier task: quadratic) and its
`MessageToDict` + PyYAML dump took 18 s for 5,000 steps; here the protobuf messages are built once per
task, components and executors once per interface, and `specyaml.py` writes the YAML.

Covered: pipelines whose steps all sit in the root DAG (no `for_each`, no `when`): tasks, pipeline params,
data and `after` dependencies, caching, `memoize.max_age` epoch tasks, retry, resources, env, secrets,
timeouts, labels, node selectors, tolerations, node affinity, image pull secrets, volumes and launched
(TFJob / InferenceService) steps with the run's data volume (`direct_volumes.py`). Loops and conditions
go through kfp's compiler.
"""

from __future__ import annotations

from typing import Any

from dmlc_targets.kfp import components, direct_parts, direct_volumes, manifests, specyaml, taskspec
from dmlc_targets.kfp.direct_parts import Unsupported, component_title
from dmlc_targets.kfp.plan import KfpPlan, StepPlan, list_outputs, tree

from dmlc.k8s import k8s_name

PARAM_KINDS = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}
COMMENT_TYPES = {"STRING": "str", "NUMBER_INTEGER": "int", "NUMBER_DOUBLE": "float", "LIST": "list",
                 "STRUCT": "dict", "BOOLEAN": "bool"}  # fmt: skip


def unsupported(plan: KfpPlan) -> str | None:
    """Why the direct path does not build this pipeline (None: it does)."""
    pipeline = plan.pipeline
    if list_outputs(pipeline):
        return "a list output"
    for p in plan.steps.values():
        if p.scope:
            return f"step `{p.name}` runs in a loop or under a condition"
        if p.step.kind == "finally":  # kfp's ExitHandler group and its exit task: built by kfp's DSL
            return f"the exit handler `{p.name}`"
    for name, value in pipeline.params.items():
        if type(value) not in PARAM_KINDS:
            return f"param `{name}` of type {type(value).__name__}"
    return None


class _Direct:
    def __init__(self, plan: KfpPlan) -> None:
        from google.protobuf import json_format, struct_pb2

        self.plan, self.pipeline = plan, plan.pipeline
        self.pb, self.struct, self.to_dict = direct_parts.protos(), struct_pb2, json_format.MessageToDict
        self.spec = self.pb.PipelineSpec()
        self.names: dict[str, str] = {}  # step -> task name
        self.taken: set[str] = set()
        self.executors: dict[str, Any] = {}
        self.kubernetes: dict[str, Any] = {}
        self.components: dict[str, Any] = {}
        self.shapes: dict[Any, Any] = {}  # (inputs, outputs) -> ComponentSpec as JSON
        self.containers: dict[Any, Any] = {}
        self.claims: dict[str | None, str] = {}  # volume (None: the data volume) -> its CreatePVC task

    def documents(self) -> list[dict[str, Any]]:
        import kfp

        spec, pipeline = self.spec, self.pipeline
        spec.pipeline_info.name = k8s_name(pipeline.pipeline)
        if pipeline.description:
            spec.pipeline_info.description = pipeline.description
        if pipeline.artifacts:  # the SDK's `dsl.pipeline(pipeline_root=...)`
            spec.default_pipeline_root = pipeline.artifacts.store
        spec.sdk_version = f"kfp-{kfp.__version__}"
        spec.schema_version = "2.1.0"
        for name, value in pipeline.params.items():
            self._param(name, value)
        for volume, arguments, display in direct_volumes.claims(self.plan):
            self.claims[volume] = self._claim(arguments, display)
        for item in tree(pipeline, self.plan.steps).items:
            self._step(self.plan.steps[item])
        doc = self.to_dict(spec)
        doc["components"] = self.components
        doc["deploymentSpec"] = {"executors": self.executors}
        return [doc, {"platforms": {"kubernetes": {"deploymentSpec": {"executors": self.kubernetes}}}}]

    def _param(self, name: str, value: Any) -> None:
        """A pipeline parameter with its default (kfp reads the type from the annotation `build.py` gives)."""
        kind = direct_parts.PARAMETER_TYPES[PARAM_KINDS[type(value)]]
        param = self.spec.root.input_definitions.parameters[name]
        param.parameter_type = self.pb.ParameterType.ParameterTypeEnum.Value(kind)
        param.is_optional = True
        if kind in ("NUMBER_INTEGER", "NUMBER_DOUBLE"):
            param.default_value.number_value = value
        elif kind == "STRING":
            param.default_value.string_value = value
        elif kind == "BOOLEAN":
            param.default_value.bool_value = value
        else:
            param.default_value.CopyFrom(direct_parts.value(self.struct, value))

    def _name(self, function: str) -> str:
        """pipeline_context.Pipeline.add_task: the component's name, sanitized, made unique."""
        name = base = direct_parts.k8s(component_title(function))
        for i in range(2, len(self.taken) + 3):
            if name not in self.taken:
                break
            name = f"{base}-{i}"
        if name == "":
            return self._name("task")
        self.taken.add(name)
        return name

    def _claim(self, arguments: dict[str, Any], display: str) -> str:
        """A kfp-kubernetes CreatePVC task (uncached), made before every step as `build.py` makes it."""
        component, container = direct_volumes.create_pvc()
        name = self._name("CreatePVC")
        task = self._task(name, {}, {}, container, component)
        task.task_info.name = display
        task.caching_options.enable_cache = False
        for key, value in arguments.items():
            task.inputs.parameters[key].runtime_value.constant.CopyFrom(direct_parts.value(self.struct, value))
        return name

    def _task(self, name: str, inputs: dict, outputs: dict, container: dict, shape: dict | None = None) -> Any:
        """The component, executor and task of one kfp task named `name`; the task spec is returned."""
        label = f"exec-{name}"
        key = (tuple(inputs.items()), tuple(outputs.items()))
        shape = shape or self.shapes.get(key)
        if shape is None:  # one ComponentSpec message per interface, as its JSON form
            shape = self.shapes[key] = self.to_dict(direct_parts.component(self.pb, inputs, outputs))
        self.components[f"comp-{name}"] = {**shape, "executorLabel": label}
        self.executors[label] = {"container": container}
        task = self.spec.root.dag.tasks[name]
        task.component_ref.name = f"comp-{name}"
        return task

    def _container(self, source: str, function: str, image: str, p: StepPlan | None) -> dict:
        """An executor's container, shared by the tasks of one interface, image, resources and env."""
        step = p.step if p is not None else None
        res = step.resources if step is not None and not p.launched else None  # type: ignore[union-attr]
        settings = (res.cpu, res.memory, res.gpu, res.accelerator) if res is not None else None
        key = (source, function, image, settings, tuple(taskspec.literal_env(step)) if step is not None else ())
        found = self.containers.get(key)
        if found is None:
            launched = p is not None and p.launched
            found = self.containers[key] = direct_parts.container(source, function, image, step, launched)
        return found

    def _step(self, p: StepPlan) -> None:
        step, image = p.step, p.step.image or self.pipeline.image
        epoch = self._epoch(p, image)
        iface = taskspec.step_interface(self.plan, p, set(), False)
        if epoch is not None:
            iface.inputs["dmlc_cache_epoch"] = "int"
        name = self.names[p.name] = self._name(iface.name)
        source = components.step_source(components.Interface("dmlc_step", iface.inputs, iface.outputs))
        container = self._container(source, "dmlc_step", image, p)
        task = self._task(name, {"dmlc_spec": "str", **iface.inputs}, iface.outputs, container)
        task.task_info.name = p.name
        task.caching_options.enable_cache = step.memoize is not None
        if taskspec.retried(p, self.plan.options):
            self._retry(task, step.retry)
        text = taskspec.spec_input(taskspec.step_spec(self.plan, p, None))
        if "{{channel:" in text:
            raise Unsupported("a pipeline channel in a spec")  # kfp would read it as a reference
        params = task.inputs.parameters
        params["dmlc_spec"].runtime_value.constant.string_value = text
        upstream = {self.names[up] for up in step.after} | self._claim_inputs(p, params)
        for b in p.bindings.values():
            if b.source is None:
                params[b.input].component_input_parameter = b.input.removeprefix("params__")
                continue
            producer = upstream_name = self.names[b.source.root]
            upstream.add(upstream_name)
            if b.kind == "artifact":
                ref = task.inputs.artifacts[b.input].task_output_artifact
                ref.producer_task, ref.output_artifact_key = producer, b.source.output
            else:
                out = params[b.input].task_output_parameter
                out.producer_task, out.output_parameter_key = producer, b.source.output
        if epoch is not None:
            out = params["dmlc_cache_epoch"].task_output_parameter
            out.producer_task, out.output_parameter_key = epoch, "Output"
            upstream.add(epoch)
        upstream |= {self.claims[volume] for volume in self.pipeline.volumes}  # mount_pvc orders after the claim
        task.dependent_tasks.extend(sorted(upstream))
        self.kubernetes[f"exec-{name}"] = self._kubernetes(p, volumes=True)

    def _claim_inputs(self, p: StepPlan, params: Any) -> set[str]:
        """A launched step's inputs naming the claims its workload mounts (their tasks come first)."""
        if not p.launched:
            return set()
        for volume in self.pipeline.volumes:
            out = params[f"dmlc_pvc_{volume}"].task_output_parameter
            out.producer_task, out.output_parameter_key = self.claims[volume], "name"
        out = params["dmlc_data_pvc"].task_output_parameter
        out.producer_task, out.output_parameter_key = self.claims[None], "name"
        return set(self.claims.values())

    def _epoch(self, p: StepPlan, image: str) -> str | None:
        """The uncached `max-age-<step>` task of `build.py`'s `_epoch`."""
        memo = p.step.memoize
        if memo is None or memo.max_age is None or self.plan.options.cache_max_age == "ignore":
            return None
        name = self._name(components.function_name(p.name, "max_age_"))
        container = self._container(components.EPOCH_SOURCE, "dmlc_epoch", image, None)
        task = self._task(name, {"seconds": "float"}, {"Output": "int"}, container)
        task.task_info.name = f"max_age {p.name}"
        task.caching_options.enable_cache = False
        task.inputs.parameters["seconds"].runtime_value.constant.number_value = float(memo.max_age)
        task.dependent_tasks.extend(sorted({self.names[up] for up in p.upstream}))
        self.kubernetes[f"exec-{name}"] = self._kubernetes(p)
        return name

    def _kubernetes(self, p: StepPlan, volumes: bool = False) -> dict:
        """The task's Kubernetes settings; a step's task mounts the pipeline's volumes (and, launched, the
        data volume), the epoch task of a memoized step none."""
        config = direct_parts.kubernetes(self.plan, p)
        volume_items = self.pipeline.volumes.items() if volumes else ()
        mounts = [direct_volumes.mount(vol.mount, self.claims[name]) for name, vol in volume_items]
        if volumes and p.launched:
            mounts.append(direct_volumes.mount(manifests.DATA_MOUNT, self.claims[None]))
        if mounts:
            config["pvcMount"] = mounts
        return config

    def _retry(self, task: Any, retry: Any) -> None:
        """structures.RetryPolicy.to_proto: kfp's defaults written out."""
        from google.protobuf import json_format

        policy = {
            "max_retry_count": retry.limit,
            "backoff_duration": taskspec.backoff(retry) or "0s",
            "backoff_factor": retry.factor or 2.0,
            "backoff_max_duration": "3600s",
        }
        json_format.ParseDict(policy, task.retry_policy)


def comments(spec: dict[str, Any], description: str | None) -> str:
    """kfp's extract_comments_from_pipeline_spec (the `# Inputs:` header), every line kept a comment
    as `emit.commented_header` keeps it."""
    lines = ["# PIPELINE DEFINITION", "# Name: " + spec["pipelineInfo"]["name"]]
    if description:
        lines.append("# Description: " + "\n#              ".join(description.splitlines()))
    inputs = spec["root"].get("inputDefinitions")
    if inputs is not None:
        lines.append("# Inputs:")
        for name, body in sorted(inputs.get("parameters", {}).items()):
            line = f"#    {name}: {COMMENT_TYPES[body['parameterType']]}"
            if "defaultValue" in body:
                default = body["defaultValue"]
                line += " [Default: " + (f"'{default}'" if isinstance(default, str) else str(default)) + "]"
            lines.append(line)
    text = "\n".join(lines) + "\n"
    return "\n".join(line if line.startswith("#") else "#    " + line for line in text.splitlines()) + "\n"


def compile_text(plan: KfpPlan) -> str:
    """What kfp's compiler writes for the pipeline (header comment and documents); raises Unsupported."""
    why = unsupported(plan)
    if why is not None:
        raise Unsupported(why)
    docs = _Direct(plan).documents()
    try:
        body = specyaml.dump_all(docs)
    except specyaml.Unsupported as exc:
        raise Unsupported(str(exc)) from None
    return comments(docs[0], plan.pipeline.description or None) + body
