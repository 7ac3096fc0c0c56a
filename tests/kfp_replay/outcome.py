"""The differential view of a KFP replay: `outcome_kfp(path, root, params)`, shaped like `outcome_local`.

Takes a dmlc pipeline file; compiles it with `dmlc.driver.compile_file(path, "kfp")`, replays it
(`tests.kfp_replay.replay`, kubeflow/pipelines 2.17.0 rules) and gives `(step, instance) -> (state,
outputs)` as `tests/differential.py` does: states `ok` / `failed` / `not run`, instance `-` for a single
instance, the innermost ParallelFor iteration index otherwise, `*` for a step none of whose instances
ran (`_collapse`); outputs are the step's declared param outputs by value (read as the local executor
reads them) and its artifacts as `<artifact>`. A task is mapped to its dmlc step by the `spec.step` of
its `dmlc_spec` input; helper tasks (`when-<step>`, `max-age-<step>`, `createpvc`) have none and are
left out. A pipeline the backend refuses (`BackendRejected`) ran nothing: every step is `not run`.
`params` are typed run-time parameter values (KFP's runtime config), not `--param` text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmlc.driver import compile_file
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics.outputs import param_value
from tests.differential import Outcome, _collapse, _kinds
from tests.kfp_replay import FAILED, SUCCEEDED, BackendRejected, Execution, Run, replay
from tests.kfp_replay.values import to_json

KFP_STATES = {SUCCEEDED: "ok", FAILED: "failed"}  # SKIPPED, NOT_TRIGGERED: not run


def step_of(ex: Execution) -> str | None:
    """The dmlc step a container task runs, from its `dmlc_spec` input (None for helper tasks)."""
    text = ex.inputs.get("dmlc_spec")
    if not isinstance(text, str):
        return None
    spec = json.loads(text).get("spec")
    return spec.get("step") if isinstance(spec, dict) else None


def _value(value: Any, kind: str) -> Any:
    if kind != "param":
        return "<artifact>"
    return param_value(value if isinstance(value, str) else json.dumps(to_json(value)))


def outcome_of(run: Run, kinds: dict[str, dict[str, str]]) -> Outcome:
    out: Outcome = {}
    for ex in run.containers():
        step = step_of(ex)
        if step is None or step not in kinds:
            continue
        key = str(ex.iterations_of[-1]) if ex.iterations_of else "-"
        produced = {**ex.parameters, **ex.artifacts}
        outputs = {n: _value(produced[n], kind) for n, kind in kinds[step].items() if n in produced}
        outputs |= ui_scalars(ex)
        out[(step, key)] = (KFP_STATES.get(ex.state, "not run"), outputs if ex.state == SUCCEEDED else {})
    return _collapse(out, kinds)


def ui_scalars(ex: Execution) -> dict[str, float]:
    """The scalars of the task's `Metrics` artifact as the backend records them: the launcher merges the
    executor output's `artifacts[name].artifacts[0].metadata` into the output artifact
    (`backend/src/v2/component/launcher_v2.go` uploadOutputArtifacts, mergeRuntimeArtifacts) and records
    it in ML Metadata as the artifact's custom properties (`Artifact.custom_properties`), which the run's
    UI lists for a `system.Metrics` artifact (`frontend/src/components/viewers/MetricsVisualizations.tsx`,
    kubeflow/pipelines master of 2026-08). Keyed `metric-<name>` as Argo's parameters are; a number the
    step could not give (NaN, an infinity) is a string there, as the shim logs it."""
    found = {}
    for artifact in ex.artifacts.values():
        if artifact.schema == "system.Metrics":
            found |= {ui_metrics.param_name(k): float(v) for k, v in artifact.custom_properties().items()}
    return found


def run_kfp(path: Path, root: Path, params: dict[str, Any] | None = None, env: dict[str, str] | None = None) -> Run:
    return replay(compile_file(str(path), "kfp"), root, params=params, env=env)


def outcome_kfp(
    path: Path, root: Path, params: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> Outcome:
    """Compile for KFP, replay it under `root`, and read every step instance back."""
    kinds = _kinds(path)
    try:
        run = run_kfp(path, root, params, env)
    except BackendRejected:
        return _collapse({}, kinds)
    return outcome_of(run, kinds)


def outcome_kfp_launching(path: Path, root: Path, params: dict[str, Any] | None = None) -> tuple[Outcome, list]:
    """`outcome_kfp` for a pipeline with launched steps: their TFJobs and InferenceServices go through a
    local API server to the Argo replay's stand-ins (`tests/kfp_cluster.py`); also every object created."""
    from tests.kfp_cluster import kubernetes

    with kubernetes(root / "k8s") as k8s:
        run = replay(k8s.mount(compile_file(str(path), "kfp")), root / "kfp", params=params, env=k8s.env)
        return outcome_of(run, _kinds(path)), k8s.cluster.created
