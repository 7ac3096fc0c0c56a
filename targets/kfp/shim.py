"""In-component code of the KFP target (stage 5, run time, inside the step's pod or kfp.local).

Every lightweight component that dmlc compiles has a two-line body that calls `run_step` (or
`check_when`) with its arguments. Takes the task's `dmlc_spec` (written at compile time: the step
spec template of `dmlc.semantics.spec` with `${...}` references still in place, and how each
reference maps to a component input) and the engine's input values; gives the instance's spec
(resolved by the core's `instantiate`, exactly as the local executor does), runs `python -m
dmlc.runtime KIND --spec SPEC.json` (or the step's command, or the launcher for TFJob /
InferenceService steps), then moves the step's outputs to the paths KFP collects them from.
Nothing here imports kfp or TensorFlow.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmlc_targets.kfp.plan import CONFUSION_OUTPUT, METRICS_OUTPUT

from dmlc.ir import when as when_ir
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics import spec as contract
from dmlc.semantics import when
from dmlc.semantics.handover import binding_key
from dmlc.semantics.outputs import param_value
from dmlc.semantics.spec import command, environment, instantiate
from dmlc.semantics.values import ResolveError, dig, interpolate


def _path(value: Any) -> str | None:
    """A KFP artifact (has `.path`: the launcher downloaded it there) or an output path string -> a path."""
    if value is None:
        return None
    return value.path if hasattr(value, "path") else str(value)


def _decode(kind: str, value: Any, stage: Callable[[str], str] | None = None) -> Any:
    """A component input value -> the value a reference stands for; `stage` moves artifacts where a
    launched workload can read them (the run's data volume)."""
    if value is None:
        return None
    if kind == "artifact":
        path = _path(value)
        return stage(path) if stage and path else path
    if kind == "artifacts":
        return [_decode("artifact", v, stage) for v in value]
    if kind == "json":  # a param output, as its producer wrote it: JSON, or plain text
        return param_value(value) if isinstance(value, str) else value
    if kind == "jsons":
        return [param_value(v) if isinstance(v, str) else v for v in value]
    return value


class _Lookup:
    """`lookup(Ref)` for the core's resolver, answered from the component's inputs."""

    def __init__(self, task: dict[str, Any], args: dict[str, Any], stage: Callable[[str], str] | None = None) -> None:
        self.bindings = task["bindings"]
        self.args = args
        self.stage = stage  # a _Staging for a launched step
        self.item, self.index = args.get("dmlc_item"), None
        if task.get("item_wrapped"):  # a static list: {"index", "item"} as JSON text
            wrapped = json.loads(self.item)
            self.index, self.item = wrapped["index"], wrapped["item"]

    def __call__(self, ref: Any) -> Any:
        if ref.root == "each":
            return dig(self.item, ref.fields, ref.text)
        if ref.root == "pipeline":
            return run_status(self.args.get("dmlc_status"), ref)
        binding = self.bindings.get(binding_key(ref))
        if binding is None:
            raise ResolveError(f"`{ref.text}` has no input in this KFP component")
        value = _decode(binding["kind"], self.args.get(binding["input"]), self.stage)
        if isinstance(ref.index, int):
            value = value[ref.index]
        return dig(value, ref.fields[1:], ref.text)


def run_status(status: Any, ref: Any) -> str:
    """`${pipeline.status}` in the exit task, from its PipelineTaskFinalStatus (kfp's executor builds it from
    the JSON the driver resolves: kfp/dsl/executor.py, kfp 2.17.3). The 2.x backend's driver gives the
    handler DAG's MLMD execution state (backend/src/v2/driver/resolve.go, TaskFinalStatus: COMPLETE,
    FAILED, CANCELED, ...); kfp's docs (and Vertex) say SUCCEEDED: both mean succeeded, anything else
    failed. `${pipeline.failures}` is refused on KFP by `check` (DML100)."""
    if ref.fields != ("status",):
        raise ResolveError(f"`{ref.text}` is not handed to a KFP exit task")
    state = getattr(status, "state", None)
    if state is None and isinstance(status, dict):
        state = status.get("state")
    if state is None:
        raise ResolveError("`${pipeline.status}`: no PipelineTaskFinalStatus reached this task")
    return "succeeded" if str(state).upper() in ("COMPLETE", "CACHED", "SUCCEEDED") else "failed"


class _Staging:
    """This attempt's folder on the run's data volume: `in/` the input artifacts, copied there for the
    launched pods (which have no object-store access), `out/` what the workload writes, `work/` its
    checkpoints (kept across the launcher's own retries, which resume from them)."""

    def __init__(self, launch: dict[str, Any]) -> None:
        self.root = Path(launch["data"]["mount"]) / uuid.uuid4().hex
        self.copied: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        if path not in self.copied:
            target = self.root / "in" / str(len(self.copied)) / Path(path).name
            target.parent.mkdir(parents=True)
            if Path(path).is_dir():
                shutil.copytree(path, target)
            else:
                shutil.copyfile(path, target)
            self.copied[path] = str(target)
        return self.copied[path]


def _instance(task: dict[str, Any], lookup: _Lookup, tmp: str) -> dict[str, Any]:
    outputs_dir, work_dir = os.path.join(tmp, "outputs"), os.path.join(tmp, "work")
    os.makedirs(outputs_dir)
    os.makedirs(work_dir)
    return instantiate(task["spec"], lookup, item=lookup.item, index=lookup.index, outputs_dir=outputs_dir,
                       work_dir=work_dir)  # fmt: skip


def _deliver(outputs: dict[str, str], produced: Path, args: dict[str, Any]) -> None:
    """Move each output the step wrote under `produced` to the path KFP reads it from."""
    for name, kind in outputs.items():
        source = produced / name
        if not source.exists():
            raise SystemExit(f"dmlc: the step did not write its output `{name}`")
        target = Path(str(_path(args[name])))
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "param":  # as the step wrote it; consumers read it like the local executor does
            target.write_bytes(source.read_bytes())  # byte for byte (read_text would turn \r into \n)
            continue
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(source), str(target))


def cache_epoch(seconds: float) -> int:
    """The body of a `max_age` epoch task: its value, an input of the memoized task, changes every `seconds`."""
    return int(time.time() // seconds)


def run_step(args: dict[str, Any]) -> None:
    """The body of every built-in / `run` / `command` step component: spec -> runtime -> outputs."""
    task = json.loads(args.pop("dmlc_spec"))
    args.pop("dmlc_cache_epoch", None)  # only a part of KFP's cache key (`memoize.max_age`)
    staging = _Staging(task["launch"]) if task.get("launch") else None
    lookup = _Lookup(task, args, staging)
    with tempfile.TemporaryDirectory(prefix="dmlc-kfp-") as tmp:
        try:
            spec = _instance(task, lookup, tmp)
        except ResolveError as exc:
            raise SystemExit(f"dmlc: {exc}") from None
        if staging is not None:
            _launch(task, spec, args, lookup)
        else:
            _run(spec, tmp)
        _deliver(spec["outputs"], Path(spec["outputs_dir"]), args)
        _report_metrics(spec, Path(spec["outputs_dir"]), args.get(METRICS_OUTPUT))
        _report_confusion(Path(spec["outputs_dir"]), args.get(CONFUSION_OUTPUT))


def _report_confusion(produced: Path, artifact: Any) -> None:
    """evaluate's confusion matrix as its `ClassificationMetrics` artifact (kfp's `log_confusion_matrix`
    writes the metadata the UI draws), and as the artifact's file."""
    if artifact is None:
        return
    try:
        categories, matrix = ui_metrics.read_confusion(produced)
    except (OSError, ValueError, KeyError) as exc:
        raise SystemExit(f"dmlc: the step's confusion matrix cannot be read: {exc}") from None
    artifact.log_confusion_matrix(categories, matrix)
    path = Path(str(_path(artifact)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"categories": categories, "matrix": matrix}))


def _metric_names(spec: dict[str, Any]) -> list[str]:
    return ui_metrics.names(contract.load(spec).attrs)


def _report_metrics(spec: dict[str, Any], produced: Path, artifact: Any) -> None:
    """The step's numbers (the `metric-<name>` files the runtime wrote) as scalars of its `Metrics`
    artifact: kfp's executor writes the artifact's metadata into `executor_output.json`
    (`artifacts[name].artifacts[0].metadata`), the backend's launcher records it in ML Metadata, and
    the run's UI shows each one. The artifact's file holds the same numbers as JSON."""
    if artifact is None:
        return
    try:
        found = ui_metrics.read(produced, contract.load(spec).attrs)
    except (OSError, ValueError) as exc:
        raise SystemExit(f"dmlc: {exc}") from None
    for name, value in found.items():
        # the backend reads executor_output.json with Go's protojson, which takes no NaN or Infinity: such a
        # number goes as its text ("NaN", "+Inf"), which the UI shows as it is
        artifact.log_metric(name, value if math.isfinite(value) else ui_metrics.text(value))
    path = Path(str(_path(artifact)))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({k: ui_metrics.text(v) for k, v in found.items()}, sort_keys=True))


def _run(spec: dict[str, Any], tmp: str) -> None:
    argv = command(spec)
    if argv is None:
        spec_path = os.path.join(tmp, "spec.json")
        Path(spec_path).write_text(json.dumps(spec, sort_keys=True))
        kind = spec["attrs"]["kind"]
        argv = [sys.executable, "-m", "dmlc.runtime", kind, "--spec", spec_path, "--outputs", spec["outputs_dir"]]
    done = subprocess.run(argv, env={**os.environ, **environment(spec)}, check=False)
    if done.returncode != 0:
        raise SystemExit(done.returncode)


def _launch(task: dict[str, Any], spec: dict[str, Any], args: dict[str, Any], lookup: _Lookup) -> None:
    """Create the step's TFJob / InferenceService in this pod's namespace, on the data volume, and wait;
    then copy what the job wrote on the volume into this task's outputs (KFP uploads them from there)."""
    from dmlc_targets.kfp import apply

    staging = lookup.stage
    assert isinstance(staging, _Staging)
    out, work = staging.root / "out", staging.root / "work"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    metric_files = {ui_metrics.param_name(name): "param" for name in _metric_names(spec)}
    launch = {**task["launch"], "outputs_dir": str(out), "outputs": {**spec["outputs"], **metric_files}}
    job_spec = {**spec, "outputs_dir": str(out), "work_dir": str(work)}
    claims = {placeholder: str(args[f"dmlc_pvc_{volume}"]) for volume, placeholder in launch["claims"].items()}
    claims[launch["data"]["claim"]] = str(args["dmlc_data_pvc"])
    manifests = _fill(launch["manifests"], job_spec, launch["marker"], claims, lookup)
    text = json.dumps(manifests).replace(launch["namespace_marker"], apply.current_namespace())
    launch["manifests"] = json.loads(text)  # shard URLs name the namespace the objects land in
    apply.run(launch, spec["attrs"]["kind"], Path(spec["outputs_dir"]))
    if spec["attrs"]["kind"] != "serve":  # a server keeps reading its model from the volume
        shutil.rmtree(staging.root, ignore_errors=True)


def _fill(value: Any, spec: dict[str, Any], marker: str, claims: dict[str, str], lookup: _Lookup) -> Any:
    """Put the resolved spec where a manifest holds the marker, this run's PVC names where it holds theirs,
    and the text of `${...}` references where user text holds them (an `env` value, an image tag)."""
    if isinstance(value, dict):
        return {k: _fill(v, spec, marker, claims, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, spec, marker, claims, lookup) for v in value]
    if not isinstance(value, str):
        return value
    if marker in value and value.startswith("{"):
        extra = {k: v for k, v in json.loads(value).items() if k != marker}  # e.g. the shard of a shard server
        return json.dumps({**spec, **extra}, sort_keys=True, separators=(",", ":"))
    return interpolate(claims.get(value, value), lookup) if "${" in value else claims.get(value, value)


def check_when(args: dict[str, Any]) -> bool:
    """The body of a `when` component: the step's condition, evaluated by the core like the local executor."""
    task = json.loads(args.pop("dmlc_spec"))
    return when.holds(when_ir.parse(task["when"]), _Lookup(task, args))
