"""A KFP v2 backend replay: a test oracle that runs a compiled pipeline as kubeflow/pipelines 2.17.0 would.

`replay(yaml_text, root, params=None, env=None)` takes the output of `dmlc compile X --target kfp`
(a PipelineSpec document, optionally a PlatformSpec document) and executes it on this machine with the
backend's own rules, read from the kubeflow/pipelines source at tag 2.17.0 (each module's docstring
cites the files it follows); it gives a `Run`: the tree of `Execution`s (state, resolved inputs,
output parameter values, output artifacts with their `minio://` URI and sandbox path), or raises
`BackendRejected` where the backend would not create the run at all.

| module | rules |
|---|---|
| `spec.py` | loading; the Argo compiler's wiring: implicit dependencies, `.Succeeded` depends, exit tasks |
| `dag.py` | DAG, condition, ParallelFor and container execution; failFast; exit hooks; retries |
| `resolve.py` | the driver's input resolution, DAG outputs, `dsl.Collected`, `taskFinalStatus`, type checks |
| `launcher.py` | executor input, placeholders, running the command, output parameters and artifacts |
| `values.py` | protobuf Values: text <-> value, STRING conversion, trigger conditions |
| `outcome.py` | the differential view `(step, instance) -> (state, outputs)` of a dmlc pipeline |

Unlike `kfp.local`, this runs a ParallelFor with a failed iteration, iterates any list output, follows
`ALL_UPSTREAM_TASKS_COMPLETED` as the backend does, and gives artifacts `minio://mlpipeline/...` URIs.
`env` (default: this process's environment) is given to every executor process, with `python3` this
interpreter. Steps that call the Kubernetes API (dmlc's launched TFJob / InferenceService steps) fail
here unless `env` points them at a stand-in. Product code never imports it.
"""

from __future__ import annotations

import datetime
import os
import uuid
from pathlib import Path
from typing import Any

from tests.kfp_replay.dag import Runner, Scope
from tests.kfp_replay.launcher import Sandbox
from tests.kfp_replay.model import (
    FAILED,
    NOT_TRIGGERED,
    SKIPPED,
    SUCCEEDED,
    Artifact,
    BackendRejected,
    Execution,
    NotReplayed,
    Run,
)
from tests.kfp_replay.objstore import Store
from tests.kfp_replay.resolve import DriverError, Inputs, RunInfo, check
from tests.kfp_replay.spec import load
from tests.kfp_replay.values import numbers_as_floats

__all__ = ["FAILED", "NOT_TRIGGERED", "SKIPPED", "SUCCEEDED", "Artifact", "BackendRejected", "Execution",
           "NotReplayed", "Run", "replay"]  # fmt: skip


def _root_inputs(spec: Any, params: dict[str, Any]) -> Inputs:
    """The root DAG driver: runtime parameters over the pipeline's defaults (`driver/root_dag.go`)."""
    defs = spec.pipeline["root"].get("inputDefinitions", {}).get("parameters", {})
    unknown = sorted(set(params) - set(defs))
    if unknown:
        raise BackendRejected(f"unknown pipeline parameters {unknown}")
    inputs = Inputs()
    for name, p in defs.items():
        if name in params:
            inputs.parameters[name] = numbers_as_floats(params[name])
        elif "defaultValue" in p:
            inputs.parameters[name] = numbers_as_floats(p["defaultValue"])
        elif p.get("isOptional"):
            inputs.parameters[name] = None
            inputs.nil.add(name)
    try:
        check(inputs, defs, None, iteration=False)
    except DriverError as exc:
        raise BackendRejected(f"root driver: {exc}") from None
    return inputs


def replay(
    text: str,
    root: Path,
    params: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600.0,
    store: Store | None = None,
) -> Run:
    """Run the compiled pipeline `text` with its executors' files under `root`."""
    spec = load(text)
    run_id = str(uuid.uuid4())
    created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    info = RunInfo(spec.name, run_id, f"{spec.name}-{run_id[:8]}", created)
    box = Sandbox(Path(root), dict(os.environ if env is None else env), timeout, store)
    box.setup()
    run = Run(spec.name, run_id, Execution("root", "dag", "root", "root"), str(root), platform=spec.platform)
    inputs = _root_inputs(spec, params or {})
    run.root.inputs = dict(inputs.parameters)
    run.root.outputs_spec = spec.pipeline["root"]["dag"].get("outputs", {})
    Runner(spec, box, info, run.notes).run_dag("root", Scope(run.root, inputs, ()))
    return run
