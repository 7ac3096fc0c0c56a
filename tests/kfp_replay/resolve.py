"""The driver's input resolution (kubeflow/pipelines 2.17.0, `backend/src/v2/driver/resolve.go`).

Takes a task spec, its component, the executions of its DAG (`Execution.children`) and the DAG's own
inputs; gives the task's resolved `Inputs` (parameter values, artifact lists) or raises
`DriverError`, which fails the task as a failed driver does:

- `componentInputParameter` / `componentInputArtifact`: the parent DAG's input; a null value (an optional
  pipeline input without default) is dropped when the component input is optional.
- `runtimeValue.constant` (the `{{$.pipeline_job_name}}`-style constants replaced as resolveInputParameter does).
- `taskOutputParameter` / `taskOutputArtifact` (resolveUpstreamParameters / resolveUpstreamArtifacts):
  a container's output; through a DAG (`dsl.If`) by its `dag.outputs` (`valueFromParameter`,
  `artifactSelectors`: GetProducerTask); through a ParallelFor DAG by collecting every iteration in
  order (CollectInputs: `dsl.Collected`). A producer that ran but wrote no such output gives null.
- A DAG driver first gives each optional component input without a task input its default (or null).
- Then handleParamTypeValidationAndConversion: an input missing without optional / default fails; a
  STRING input takes any value as its text (PbValueToText); other kinds must match.
- `taskFinalStatus` (an exit task's `dsl.PipelineTaskFinalStatus`, the MLMD-era driver's resolveInputParameter):
  the final state of the task's first dependent task (`opts.Task.DependentTasks[0]`, the ExitHandler's
  DAG) as its MLMD execution's `LastKnownState` name (COMPLETE for a Succeeded DAG, FAILED for a failed
  one), marshalled by protojson: `{"state", "pipelineJobResourceName" (the run), "pipelineTaskName",
  "error": {}}` (the driver fills no error code or message: a TODO in the source).
- `parameterExpressionSelector`, `valueFromOneof` are not replayed (NotReplayed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.kfp_replay import values
from tests.kfp_replay.model import FAILED, SUCCEEDED, Artifact, Execution, NotReplayed

MLMD_STATES = {SUCCEEDED: "COMPLETE", FAILED: "FAILED"}  # Execution_State names (ml-metadata's proto)


class DriverError(Exception):
    """The driver fails: the task's node is Failed and its executor never runs."""


@dataclass
class Inputs:
    parameters: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, list[Artifact]] = field(default_factory=dict)
    nil: set[str] = field(default_factory=set)  # parameters the driver set to null on purpose


@dataclass
class RunInfo:
    """The run-level values that runtime constants name."""

    pipeline: str
    run_id: str
    run_name: str
    created: str


def follow_parameter(ex: Execution, key: str) -> Any:
    """An output parameter of a task, looked up through DAGs and collected over loop iterations."""
    if ex.kind in ("container", "driver"):
        return ex.parameters.get(key)
    if ex.kind == "loop":
        return [v for it in ex.iterations for v in _collect(it, key, artifact=False)]
    sub, sub_key = _producer(ex, key, artifact=False)
    return follow_parameter(sub, sub_key)


def follow_artifacts(ex: Execution, key: str) -> list[Artifact]:
    if ex.kind in ("container", "driver"):
        if key not in ex.artifacts:
            raise DriverError(f"task {ex.name!r} has no output artifact {key!r}")
        return [ex.artifacts[key]]
    if ex.kind == "loop":
        return [a for it in ex.iterations for a in _collect(it, key, artifact=True)]
    sub, sub_key = _producer(ex, key, artifact=True)
    return follow_artifacts(sub, sub_key)


def _collect(iteration: Execution, key: str, artifact: bool) -> list[Any]:
    sub, sub_key = _producer(iteration, key, artifact)
    if sub.kind in ("container", "driver"):
        return follow_artifacts(sub, sub_key) if artifact else [sub.parameters.get(sub_key)]
    if sub.kind == "loop":
        return [v for it in sub.iterations for v in _collect(it, sub_key, artifact)]
    return _collect(sub, sub_key, artifact)


def _producer(dag: Execution, key: str, artifact: bool) -> tuple[Execution, str]:
    """GetProducerTask: which sub-task (and which of its outputs) a DAG output comes from."""
    outputs = dag.outputs_spec.get("artifacts" if artifact else "parameters", {})
    spec = outputs.get(key)
    if spec is None:
        raise DriverError(f"DAG {dag.name!r} has no output {key!r}")
    if artifact:
        selectors = spec.get("artifactSelectors", [])
        if len(selectors) != 1:
            raise NotReplayed(f"DAG output {key!r} with {len(selectors)} artifact selectors")
        sub_name, sub_key = selectors[0]["producerSubtask"], selectors[0]["outputArtifactKey"]
    elif "valueFromParameter" in spec:
        sub_name = spec["valueFromParameter"]["producerSubtask"]
        sub_key = spec["valueFromParameter"]["outputParameterKey"]
    else:
        raise NotReplayed(f"DAG output {key!r}: {sorted(spec)}")
    sub = dag.children.get(sub_name)
    if sub is None:
        raise DriverError(f"subTaskName, {sub_name}, not in tasks (DAG {dag.path})")
    return sub, sub_key


def _constant(value: Any, info: RunInfo, task_name: str) -> Any:
    specials = {
        "{{$.pipeline_job_name}}": info.run_name,
        "{{$.pipeline_job_resource_name}}": info.run_name,
        "{{$.pipeline_job_uuid}}": info.run_id,
        "{{$.pipeline_task_name}}": task_name,
        "{{$.pipeline_job_create_time_utc}}": info.created,
        "{{$.pipeline_job_schedule_time_utc}}": "",
    }
    return specials.get(value, value) if isinstance(value, str) else values.numbers_as_floats(value)


def _parameter(name: str, spec: dict[str, Any], ctx: dict[str, Any]) -> tuple[bool, Any]:
    """(has a value, the value) of one task input parameter."""
    if "componentInputParameter" in spec:
        source = spec["componentInputParameter"]
        if source not in ctx["dag_inputs"].parameters:
            raise DriverError(f"parent DAG does not have input parameter {source}")
        value = ctx["dag_inputs"].parameters[source]
        if value is None:
            if ctx["comp_params"].get(name, {}).get("isOptional"):
                return False, None
            raise DriverError(f"resolved parameter is null: {source}")
        return True, value
    if "taskOutputParameter" in spec:
        out = spec["taskOutputParameter"]
        producer = ctx["children"].get(out["producerTask"])
        if producer is None:
            raise DriverError(f"producer task, {out['producerTask']}, not in tasks")
        return True, follow_parameter(producer, out["outputParameterKey"])
    if "runtimeValue" in spec:
        return True, _constant(spec["runtimeValue"]["constant"], ctx["info"], ctx["task_name"])
    if "taskFinalStatus" in spec:
        return True, _final_status(ctx)
    raise NotReplayed(f"input parameter {name!r}: {sorted(spec)}")


def _final_status(ctx: dict[str, Any]) -> dict[str, Any]:
    deps = ctx["dependent_tasks"]
    if not deps:
        raise DriverError(f"task {ctx['task_name']} has no dependent tasks")
    producer = ctx["children"].get(deps[0])
    if producer is None:
        raise DriverError(f"producer task, {deps[0]}, not in tasks")
    if producer.state not in MLMD_STATES:
        raise NotReplayed(f"the final status of a {producer.state} task")
    return {
        "state": MLMD_STATES[producer.state],
        "pipelineJobResourceName": ctx["info"].run_name,
        "pipelineTaskName": deps[0],
        "error": {},
    }


def _artifacts(name: str, spec: dict[str, Any], ctx: dict[str, Any]) -> list[Artifact]:
    if "componentInputArtifact" in spec:
        source = spec["componentInputArtifact"]
        if source not in ctx["dag_inputs"].artifacts:
            raise DriverError(f"parent DAG does not have input artifact {source}")
        return ctx["dag_inputs"].artifacts[source]
    if "taskOutputArtifact" in spec:
        out = spec["taskOutputArtifact"]
        producer = ctx["children"].get(out["producerTask"])
        if producer is None:
            raise DriverError(f"producer task, {out['producerTask']}, not in tasks")
        return follow_artifacts(producer, out["outputArtifactKey"])
    raise NotReplayed(f"input artifact {name!r}: {sorted(spec)}")


def resolve(
    task: dict[str, Any],
    component: dict[str, Any],
    dag: Execution,
    dag_inputs: Inputs,
    info: RunInfo,
    dag_driver: bool,
) -> Inputs:
    """resolveInputs for the (non-iteration) driver of `task` in the DAG execution `dag`."""
    comp_params = component.get("inputDefinitions", {}).get("parameters", {})
    given = task.get("inputs", {})
    ctx = {"dag_inputs": dag_inputs, "children": dag.children, "info": info, "comp_params": comp_params,
           "task_name": task.get("taskInfo", {}).get("name", ""),
           "dependent_tasks": task.get("dependentTasks", [])}  # fmt: skip
    out = Inputs()
    if dag_driver:  # a nested pipeline's omitted optional inputs: the default, or null
        for name, p in comp_params.items():
            if name not in given.get("parameters", {}) and p.get("isOptional"):
                out.parameters[name] = values.numbers_as_floats(p.get("defaultValue"))
                if p.get("defaultValue") is None:
                    out.nil.add(name)
    for name, spec in given.get("parameters", {}).items():
        if "parameterExpressionSelector" in spec:
            raise NotReplayed(f"parameterExpressionSelector of {name!r}")
        has, value = _parameter(name, spec, ctx)
        if has:
            out.parameters[name] = value
    for name, spec in given.get("artifacts", {}).items():
        out.artifacts[name] = _artifacts(name, spec, ctx)
    check(out, comp_params, task.get("parameterIterator"), iteration=False)
    return out


def check(inputs: Inputs, comp_params: dict[str, Any], iterator: dict[str, Any] | None, iteration: bool) -> None:
    """handleParamTypeValidationAndConversion, in place."""
    for name, p in comp_params.items():
        if iterator is not None:
            if not iteration and iterator.get("itemInput") == name:
                continue  # only the iterations get the item
            if iteration and iterator.get("items", {}).get("inputParameter") == name:
                continue
        if name not in inputs.parameters:
            if not p.get("isOptional") and "defaultValue" not in p:
                raise DriverError(f"neither value nor default value provided for non-optional parameter {name!r}")
            continue
        try:
            inputs.parameters[name] = values.check_and_convert(
                name, inputs.parameters[name], p["parameterType"], name in inputs.nil
            )
        except values.ValueError_ as exc:
            raise DriverError(str(exc)) from None
