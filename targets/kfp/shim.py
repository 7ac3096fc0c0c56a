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
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dmlc.ir import when as when_ir
from dmlc.semantics import when
from dmlc.semantics.handover import binding_key
from dmlc.semantics.outputs import param_value
from dmlc.semantics.spec import command, environment, instantiate
from dmlc.semantics.values import ResolveError, dig, interpolate


def _path(value: Any, uri: bool = False) -> str | None:
    """A KFP artifact (has `.path`, `.uri`) or an output path string -> a path (or the artifact's URI)."""
    if value is None:
        return None  # the output of an instance that failed (a `min_success` fan-in)
    if hasattr(value, "path"):
        return value.uri if uri else value.path
    return str(value)


def _decode(kind: str, value: Any, uri: bool = False) -> Any:
    """A component input value -> the value a reference stands for (artifacts as URIs for launched jobs)."""
    if value is None:
        return None
    if kind == "artifact":
        return _path(value, uri)
    if kind == "artifacts":
        return [_path(v, uri) for v in value]
    if kind == "json":  # a param output, as its producer wrote it: JSON, or plain text
        return param_value(value) if isinstance(value, str) else value
    if kind == "jsons":
        return [param_value(v) if isinstance(v, str) else v for v in value]
    return value


class _Lookup:
    """`lookup(Ref)` for the core's resolver, answered from the component's inputs."""

    def __init__(self, task: dict[str, Any], args: dict[str, Any]) -> None:
        self.bindings = task["bindings"]
        self.args = args
        self.uri = bool(task.get("launch"))  # a TFJob's pods read the object store, not this pod's files
        self.item, self.index = args.get("dmlc_item"), None
        if task.get("item_wrapped"):  # a static list: {"index", "item"} as JSON text
            wrapped = json.loads(self.item)
            self.index, self.item = wrapped["index"], wrapped["item"]

    def __call__(self, ref: Any) -> Any:
        if ref.root == "each":
            return dig(self.item, ref.fields, ref.text)
        binding = self.bindings.get(binding_key(ref))
        if binding is None:
            raise ResolveError(f"`{ref.text}` has no input in this KFP component")
        value = _decode(binding["kind"], self.args.get(binding["input"]), self.uri)
        if isinstance(ref.index, int):
            value = value[ref.index]
        return dig(value, ref.fields[1:], ref.text)


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


def _check_upstream(task: dict[str, Any], args: dict[str, Any]) -> None:
    """A task that ignores upstream failures (see plan._tolerance) runs only when the local executor
    would run its step: every input it needs arrived whole, every `after` dependency succeeded (its
    `min_success` instances, or all of them)."""
    missing = [name for name in task.get("required", ()) if _incomplete(args.get(name))]
    for name, need in (task.get("after_ok") or {}).items():
        value = args.pop(name, None)
        marks = value if isinstance(value, list) else [value]
        if sum(m is not None for m in marks) < (len(marks) if need is None else need) or value is None:
            missing.append(name.removesuffix("dmlc_ok").removesuffix("__all__").removesuffix("__"))
    if missing:
        raise SystemExit(f"dmlc: upstream {', '.join(missing)} did not succeed: an upstream step failed")


def _incomplete(value: Any) -> bool:
    return value is None or (isinstance(value, list) and any(v is None for v in value))


def cache_epoch(seconds: float) -> int:
    """The body of a `max_age` epoch task: its value, an input of the memoized task, changes every `seconds`."""
    return int(time.time() // seconds)


def run_step(args: dict[str, Any]) -> None:
    """The body of every built-in / `run` / `command` step component: spec -> runtime -> outputs."""
    task = json.loads(args.pop("dmlc_spec"))
    args.pop("dmlc_cache_epoch", None)  # only a part of KFP's cache key (`memoize.max_age`)
    _check_upstream(task, args)
    lookup = _Lookup(task, args)
    with tempfile.TemporaryDirectory(prefix="dmlc-kfp-") as tmp:
        try:
            spec = _instance(task, lookup, tmp)
        except ResolveError as exc:
            raise SystemExit(f"dmlc: {exc}") from None
        if task.get("launch"):
            _launch(task, spec, args, lookup)
        else:
            _run(spec, tmp)
        _deliver(spec["outputs"], Path(spec["outputs_dir"]), args)
    if task.get("ok_output"):  # read by tasks that ignore upstream failures (`after` on this step)
        Path(str(args["dmlc_ok"])).parent.mkdir(parents=True, exist_ok=True)
        Path(str(args["dmlc_ok"])).write_text("true")


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
    from dmlc_targets.kfp import apply

    launch = {**task["launch"], "outputs_dir": _job_outputs_dir(spec, args), "outputs": spec["outputs"]}
    job_spec = {**spec, "outputs_dir": launch["outputs_dir"]}
    claims = {placeholder: str(args[f"dmlc_pvc_{volume}"]) for volume, placeholder in launch["claims"].items()}
    manifests = _fill(launch["manifests"], job_spec, launch["marker"], claims, lookup)
    marker = launch.get("namespace_marker")  # shard URLs name the namespace the objects land in
    text = json.dumps(manifests)
    launch["manifests"] = json.loads(text.replace(marker, apply.current_namespace()) if marker else text)
    apply.run(launch, spec["attrs"]["kind"], Path(spec["outputs_dir"]))


def _job_outputs_dir(spec: dict[str, Any], args: dict[str, Any]) -> str:
    """Where the launched job writes its outputs: beside this task's first output artifact in the store."""
    for name, kind in spec["outputs"].items():
        if kind == "artifact":
            return str(_path(args[name], uri=True)).rstrip("/") + ".dmlc-outputs"
    return ""


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
    _check_upstream(task, args)
    return when.holds(when_ir.parse(task["when"]), _Lookup(task, args))
