"""KFP target, stage 4 (emit), direct path: the pieces of one task, as kfp's compiler writes them.

Takes a step's component interface and settings (`taskspec.py`); gives its `ComponentSpec` (kfp's
protobuf class), its executor's container and its Kubernetes executor config, as the plain data kfp's
compiler ends up writing (both are `google.protobuf.Struct`s there, hence numbers as floats). Each
function mirrors one piece of kfp 2.17 (named in its docstring); `test_kfp_direct.py` holds them to
kfp's output. Names follow kfp's rules: function `fan_in` -> component `Fan in` -> task `fan-in`.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from dmlc_targets.kfp import taskspec

# kfp's component_factory: how a lightweight component's container runs its function
PROGRAM = (
    "program_path=$(mktemp -d)\n\n"
    'printf "%s" "$0" > "$program_path/ephemeral_component.py"\n'
    "_KFP_RUNTIME=true python3 -m kfp.dsl.executor_main"
    "                         --component_module_path"
    '                         "$program_path/ephemeral_component.py"'
    '                         "$@"\n'
)
IMPORTS = "\nimport kfp\nfrom kfp import dsl\nfrom kfp.dsl import *\nfrom typing import *\n\n"
PARAMETER_TYPES = {  # components.INPUT_TYPES / OUTPUT_TYPES keys -> kfp's ParameterType names
    "json": "STRING", "str": "STRING", "param": "STRING", "int": "NUMBER_INTEGER", "float": "NUMBER_DOUBLE",
    "bool": "BOOLEAN", "list": "LIST", "jsons": "LIST", "dict": "STRUCT",
}  # fmt: skip
ARTIFACT = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}
SCHEMAS = {  # output kinds -> kfp's artifact classes (kfp.dsl.Artifact, Metrics, ClassificationMetrics)
    "artifact": ARTIFACT,
    "metrics": {"schemaTitle": "system.Metrics", "schemaVersion": "0.0.1"},
    "classification": {"schemaTitle": "system.ClassificationMetrics", "schemaVersion": "0.0.1"},
}
CPU_RE = re.compile(r"([0-9]*[.])?[0-9]+m?$")  # pipeline_task._validate_cpu_request_limit
MEMORY_RE = re.compile(r"^[0-9]+(E|Ei|P|Pi|T|Ti|G|Gi|M|Mi|K|Ki){0,1}$")
MEMORY_UNITS = {"E": 10**18, "Ei": 1 << 60, "P": 10**15, "Pi": 1 << 50, "T": 10**12, "Ti": 1 << 40,
                "G": 10**9, "Gi": 1 << 30, "M": 10**6, "Mi": 1 << 20, "K": 10**3, "Ki": 1 << 10}  # fmt: skip


class Unsupported(Exception):
    """A construct the direct path does not build: kfp's compiler builds the pipeline instead."""


def protos() -> Any:
    """kfp's `pipeline_spec_pb2`. kfp/__init__ imports its whole SDK (DSL, client) unless `_KFP_RUNTIME`
    is set, as it is in a component's pod; the classes need none of it, so a first import of kfp here
    sets it. That light `kfp` completes itself on first use of anything it lacks (`kfp.Client`, `from
    kfp import dsl`: `_complete` re-runs kfp/__init__ in full), so later users in the process (the
    Python API's `dmlc.submit`) get the whole SDK."""
    if "kfp" not in sys.modules:
        saved = os.environ.get("_KFP_RUNTIME")
        os.environ["_KFP_RUNTIME"] = "true"
        try:
            import kfp
        finally:
            if saved is None:
                os.environ.pop("_KFP_RUNTIME", None)
            else:
                os.environ["_KFP_RUNTIME"] = saved
        kfp.__getattr__ = _complete  # type: ignore[attr-defined]  # PEP 562: only for names it lacks
    from kfp.pipeline_spec import pipeline_spec_pb2

    return pipeline_spec_pb2


def _complete(name: str) -> Any:
    """The light kfp's missing attribute `name`, after running kfp/__init__ in full in the same module."""
    import importlib

    kfp = sys.modules["kfp"]
    if name.startswith("__") or "__getattr__" not in vars(kfp):
        raise AttributeError(f"module 'kfp' has no attribute {name!r}")
    del kfp.__getattr__
    importlib.reload(kfp)
    return getattr(kfp, name)


# -- names (kfp's dsl.utils / component_factory) ------------------------------------------------------
def k8s(name: str) -> str:
    """utils.maybe_rename_for_k8s"""
    return re.sub("-+", "-", re.sub("[^-0-9a-z]+", "-", name.lower())).lstrip("-").rstrip("-")


def component_title(function: str) -> str:
    """component_factory._python_function_name_to_component_name: `fan_in` -> `Fan in`."""
    spaced = re.sub(" +", " ", function.replace("_", " ")).strip(" ")
    if not spaced:
        raise Unsupported(f"function name {function!r}")
    return spaced[0].upper() + spaced[1:]


# -- component and executor ----------------------------------------------------------------------------
def component(pb: Any, inputs: dict[str, str], outputs: dict[str, str]) -> Any:
    """pipeline_spec_builder._build_component_spec_from_component_spec_structure, for a generated function
    (`inputs` and `outputs` name -> components.INPUT_TYPES / OUTPUT_TYPES key)."""
    spec = pb.ComponentSpec()
    for name, kind in inputs.items():
        if kind in ("artifact", "artifacts"):
            spec.input_definitions.artifacts[name].artifact_type.schema_title = ARTIFACT["schemaTitle"]
            spec.input_definitions.artifacts[name].artifact_type.schema_version = ARTIFACT["schemaVersion"]
            spec.input_definitions.artifacts[name].is_artifact_list = kind == "artifacts"
        else:
            spec.input_definitions.parameters[name].parameter_type = pb.ParameterType.ParameterTypeEnum.Value(
                PARAMETER_TYPES[kind]
            )
    for name, kind in outputs.items():
        if kind in SCHEMAS:
            schema = SCHEMAS[kind]
            spec.output_definitions.artifacts[name].artifact_type.schema_title = schema["schemaTitle"]
            spec.output_definitions.artifacts[name].artifact_type.schema_version = schema["schemaVersion"]
            spec.output_definitions.artifacts[name].is_artifact_list = False
        else:
            spec.output_definitions.parameters[name].parameter_type = pb.ParameterType.ParameterTypeEnum.Value(
                PARAMETER_TYPES[kind]
            )
    return spec


def container(source: str, function: str, image: str, step: Any, launched: bool = False) -> dict[str, Any]:
    """pipeline_spec_builder.build_container_spec_for_task, as the deploymentSpec Struct holds it (a
    launched step asks for its resources inside the TFJob / predictor, not for its launcher's pod)."""
    if "{{channel:" in image:
        raise Unsupported("a pipeline channel in an image")
    out: dict[str, Any] = {
        "image": image,
        "command": ["sh", "-ec", PROGRAM, IMPORTS + source + "\n"],
        "args": ["--executor_input", "{{$}}", "--function_to_execute", function],
    }
    env = taskspec.literal_env(step) if step is not None else []
    if env:
        out["env"] = [{"name": key, "value": value} if value else {"name": key} for key, value in env]
    resources = _resources(step) if step is not None and not launched else None
    if resources:
        out["resources"] = resources
    return out


def _resources(step: Any) -> dict[str, Any] | None:
    from dmlc.placement import accelerator
    from dmlc.units import format_cpu, format_memory

    res = step.resources
    if res is None:
        return None
    out: dict[str, Any] = {}
    if res.cpu is not None:
        cpu = format_cpu(res.cpu)
        if CPU_RE.match(cpu) is None:
            raise Unsupported(f"cpu {cpu}")  # kfp refuses it
        value = float(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
        out |= {"resourceCpuRequest": cpu, "cpuRequest": value, "resourceCpuLimit": cpu, "cpuLimit": value}
    if res.memory is not None:
        memory = format_memory(res.memory)
        if MEMORY_RE.match(memory) is None:
            raise Unsupported(f"memory {memory}")
        value = _memory_gb(memory)
        out |= {"resourceMemoryRequest": memory, "memoryRequest": value}
        out |= {"resourceMemoryLimit": memory, "memoryLimit": value}
    if res.gpu:
        count, kind = str(res.gpu), accelerator(res)
        out["accelerator"] = {"resourceType": kind, "resourceCount": count, "type": kind, "count": count}
    return out


def _memory_gb(memory: str) -> float:
    """compiler_utils._memory_to_float"""
    for unit in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki", "E", "P", "T", "G", "M", "K"):
        if memory.endswith(unit):
            number = float(memory[: -len(unit)])
            return number if unit == "G" else number * MEMORY_UNITS[unit] / 10**9
    return float(memory) / 10**9


# -- Kubernetes executor config (kfp-kubernetes, as MessageToDict of KubernetesExecutorConfig) -------
def kubernetes(plan: Any, p: Any) -> dict[str, Any]:
    """add_pod_label, use_secret_as_env, set_timeout, add_node_selector, add_toleration, add_node_affinity
    and set_image_pull_secrets of `build.py`."""
    from dmlc_targets.kfp import placement as kplace
    from dmlc_targets.kfp.plan import is_distributed

    step = p.step
    config: dict[str, Any] = {}
    timeout = int(step.timeout) if step.timeout and not is_distributed(step) else 0
    if timeout:
        config["activeDeadlineSeconds"] = str(timeout)
    labels = dict(taskspec.pod_labels(plan.pipeline, p))
    if labels:
        config["podMetadata"] = {"labels": labels}
    secrets = [_secret(name, mapping) for name, mapping in taskspec.secrets(step)]
    if secrets:
        config["secretAsEnv"] = secrets
    config.update(kplace.kubernetes_fields(plan.options, p, list(plan.pipeline.image_pull_secrets)))
    return config


def _secret(name: str, mapping: dict[str, str]) -> dict[str, Any]:
    return {
        "keyToEnv": [{"secretKey": key, "envVar": env} for key, env in mapping.items()],
        "optional": False,
        "secretNameParameter": {"runtimeValue": {"constant": name}},
        "secretName": name,
    }


# -- values ----------------------------------------------------------------------------------------
def value(pb_struct: Any, data: Any) -> Any:
    """pipeline_spec_builder.to_protobuf_value"""
    if isinstance(data, bool):
        return pb_struct.Value(bool_value=data)
    if isinstance(data, str):
        return pb_struct.Value(string_value=data)
    if isinstance(data, (int, float)):
        return pb_struct.Value(number_value=data)
    if isinstance(data, dict):
        return pb_struct.Value(struct_value=pb_struct.Struct(fields={k: value(pb_struct, v) for k, v in data.items()}))
    if isinstance(data, list):
        return pb_struct.Value(list_value=pb_struct.ListValue(values=[value(pb_struct, v) for v in data]))
    raise Unsupported(f"a param value of type {type(data).__name__}")  # kfp refuses it
