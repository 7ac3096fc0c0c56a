"""Component generation of the KFP target (stage 4, emit): one lightweight Python component per step.

Takes a step's interface (input names with their kfp types, output names with theirs) and gives a
`kfp` component built by kfp's own `dsl.component` from a generated function whose body is two
lines calling `dmlc_targets.kfp.shim` (which calls `dmlc.runtime`). The function's source is
registered in `linecache` so kfp can read it like any function written in a file; the step's
own settings travel as the task's `dmlc_spec` input, never inside the source.
"""

from __future__ import annotations

import hashlib
import keyword
import linecache
from dataclasses import dataclass, field
from typing import Any

# input kind -> annotation text in the generated signature
INPUT_TYPES = {
    "artifact": "Input[Artifact]",
    "artifacts": "Input[List[Artifact]]",
    "json": "str",
    "jsons": "List[str]",
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "list": "list",
    "dict": "dict",
    "status": "PipelineTaskFinalStatus",  # the exit task's: the backend fills it in (dsl.ExitHandler)
}
OUTPUT_TYPES = {"artifact": "Output[Artifact]", "param": "OutputPath(str)", "list": "OutputPath(list)",
                "metrics": "Output[Metrics]", "classification": "Output[ClassificationMetrics]"}  # fmt: skip


@dataclass
class Interface:
    """What a generated component takes and gives, in signature order."""

    name: str
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> INPUT_TYPES key
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> OUTPUT_TYPES key


def function_name(step: str, prefix: str = "") -> str:
    """A Python name kfp turns into the task name: the step's own name where it can be."""
    name = prefix + step
    return f"step_{name}" if keyword.iskeyword(name) or name.startswith("dmlc_") else name


def _signature(iface: Interface) -> str:
    parts = ["dmlc_spec: str"]
    parts += [f"{name}: {INPUT_TYPES[kind]}" for name, kind in iface.inputs.items()]
    parts += [f"{name}: {OUTPUT_TYPES[kind]}" for name, kind in iface.outputs.items()]
    return ", ".join(parts)


def step_source(iface: Interface) -> str:
    return (
        f"def {iface.name}({_signature(iface)}):\n"
        "    from dmlc_targets.kfp.shim import run_step\n"
        "    run_step(dict(locals()))\n"
    )


def when_source(iface: Interface) -> str:
    return (
        f"def {iface.name}({_signature(iface)}) -> bool:\n"
        "    from dmlc_targets.kfp.shim import check_when\n"
        "    return check_when(dict(locals()))\n"
    )


EPOCH_SOURCE = (
    "def dmlc_epoch(seconds: float) -> int:\n"
    "    from dmlc_targets.kfp.shim import cache_epoch\n"
    "    return cache_epoch(seconds)\n"
)


def epoch(name: str, image: str) -> Any:
    """The uncached task of a `memoize.max_age` step: how many `max_age` periods have passed since 1970."""
    return _named(_shared("dmlc_epoch", EPOCH_SOURCE, image), name)


def _namespace() -> dict[str, Any]:
    from kfp.dsl import Artifact, ClassificationMetrics, Input, Metrics, Output, OutputPath, PipelineTaskFinalStatus

    return {"Artifact": Artifact, "ClassificationMetrics": ClassificationMetrics, "Input": Input, "Metrics": Metrics,
            "Output": Output, "OutputPath": OutputPath, "List": list,
            "PipelineTaskFinalStatus": PipelineTaskFinalStatus}  # fmt: skip


def define(name: str, source: str) -> Any:
    """Compile generated source under a stable pseudo file name kept in linecache (kfp reads it back)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:12]
    filename = f"<dmlc-kfp {name} {digest}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = _namespace()
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)  # real annotations for kfp
    return namespace[name]


_SHAPES: dict[tuple[str, str], Any] = {}


def component(iface: Interface, image: str, when: bool = False) -> Any:
    """A kfp lightweight Python component named after the step, for `image` (which has dmlc, hence kfp).

    kfp builds one component per interface shape (from a function named `dmlc_step` / `dmlc_when`);
    each step gets a copy under its own name, which is what kfp names the task, its component and
    its executor after. Reading the function back and parsing its signature is most of kfp's cost
    per component, and most steps of a big pipeline share a shape.
    """
    generic = Interface("dmlc_when" if when else "dmlc_step", iface.inputs, iface.outputs)
    source = when_source(generic) if when else step_source(generic)
    return _named(_shared(generic.name, source, image), iface.name)


def _shared(function: str, source: str, image: str) -> Any:
    from kfp import dsl

    shared = _SHAPES.get((source, image))
    if shared is None:
        shared = dsl.component(define(function, source), base_image=image, install_kfp_package=False)
        _SHAPES[(source, image)] = shared
    return shared


def _named(shared: Any, function: str) -> Any:
    import dataclasses

    from kfp.dsl.python_component import PythonComponent

    spec = dataclasses.replace(shared.component_spec, name=_component_name(function))
    return PythonComponent(component_spec=spec, python_func=shared.python_func)


def _component_name(function: str) -> str:
    """kfp's own rule for a function's component name (`fan_in` -> `Fan in` -> task `fan-in`)."""
    from kfp.dsl.component_factory import _python_function_name_to_component_name

    return _python_function_name_to_component_name(function)
