"""In-component code of the KFP target (stage 5, run time, inside the step's pod or kfp.local).

Every lightweight component that dmlc compiles has a two-line body that calls `run_step` (or
`check_when`) with its arguments. Takes the task's `dmlc_spec` (a JSON template written at compile
time: the step's attributes with `${...}` references still in place, plus how each reference maps
to a component input) and the engine's input values; gives the runtime SPEC (DESIGN §4), runs
`python -m dmlc.runtime KIND --spec SPEC.json` (or the launcher for TFJob / InferenceService
steps), then moves the step's outputs to the paths KFP collects them from. Nothing here imports
kfp or TensorFlow; resolution and `when` use the local executor's code, so the semantics match.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any


def _path(value: Any, uri: bool = False) -> str:
    """A KFP artifact (has `.path`, `.uri`) or an output path string -> a path (or the artifact's URI)."""
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
    if kind == "json":
        return json.loads(value) if isinstance(value, str) else value
    if kind == "jsons":
        return [json.loads(v) if isinstance(v, str) else v for v in value]
    return value


class _Lookup:
    """`lookup(Ref)` for dmlc's resolver, answered from the component's inputs."""

    def __init__(self, spec: dict[str, Any], args: dict[str, Any]) -> None:
        self.bindings = spec["bindings"]
        self.args = args
        self.uri = bool(spec.get("launch"))  # a TFJob's pods read the object store, not this pod's files
        self.item, self.index = args.get("dmlc_item"), None
        if spec.get("item_wrapped"):  # a static list: {"index", "item"} as JSON text
            wrapped = json.loads(self.item)
            self.index, self.item = wrapped["index"], wrapped["item"]

    def __call__(self, ref: Any) -> Any:
        from dmlc_targets.local.values import ResolveError, dig

        if ref.root == "each":
            return dig(self.item, ref.fields, ref.text)
        key, skip = _binding_key(ref)
        binding = self.bindings.get(key)
        if binding is None:
            raise ResolveError(f"`{ref.text}` has no input in this KFP component")
        value = _decode(binding["kind"], self.args.get(binding["input"]), self.uri)
        if isinstance(ref.index, int):
            value = value[ref.index]
        return dig(value, [*binding.get("dig", []), *ref.fields[skip:]], ref.text)


def _binding_key(ref: Any) -> tuple[str, int]:
    """The binding a reference reads and how many of its fields that binding already covers."""
    if ref.root == "params":
        return f"params.{ref.fields[0]}", 1
    index = "" if ref.index is None else "[*]"
    return f"{ref.root}{index}.{ref.fields[0]}", 1


def _min_success(spec: dict[str, Any], lookup: _Lookup) -> None:
    """Partial failure: a fan-in over a step with `min_success` needs that many instances."""
    for key, needed in spec.get("min_success", {}).items():
        got = len([v for v in lookup.args.get(spec["bindings"][key]["input"]) or [] if v is not None])
        if got < needed:
            raise SystemExit(f"dmlc: `{key}` has {got} successful instances, `min_success` asks for {needed}")


def _runtime_spec(spec: dict[str, Any], lookup: _Lookup, outputs_dir: str, work_dir: str) -> dict[str, Any]:
    from dmlc_targets.local.launch import seed_for
    from dmlc_targets.local.values import resolve

    written = spec["attrs"]
    attrs = resolve({k: v for k, v in written.items() if k != "for_each"}, lookup)
    attrs["for_each"] = written.get("for_each")  # as written, like the local executor
    return {
        "pipeline": spec["pipeline"],
        "step": spec["step"],
        "kind": spec["kind"],
        "item": lookup.item if "dmlc_item" in lookup.args else None,
        "index": lookup.index,
        "attrs": attrs,
        "outputs_dir": outputs_dir,
        "work_dir": work_dir,
        "volumes": spec["volumes"],
        "seed": seed_for(spec["pipeline"], spec["step"], lookup.index, attrs),
    }


def _runtime_argv(spec: dict[str, Any], runtime_spec: dict[str, Any], spec_path: str, outputs_dir: str) -> list[str]:
    attrs = runtime_spec["attrs"]
    if spec["kind"] == "task" and attrs.get("command"):
        from dmlc_targets.local.values import to_text

        return [to_text(a) for a in attrs["command"] + attrs.get("args", [])]
    if spec.get("launch"):
        return [sys.executable, "-m", "dmlc.runtime", "launch", "--spec", spec_path, "--outputs", outputs_dir]
    return [sys.executable, "-m", "dmlc.runtime", spec["kind"], "--spec", spec_path, "--outputs", outputs_dir]


def _deliver(outputs: dict[str, str], produced: Path, args: dict[str, Any]) -> None:
    """Move each output the runtime wrote under `produced` to the path KFP reads it from."""
    for name, kind in outputs.items():
        source = produced / name
        if not source.exists():
            raise SystemExit(f"dmlc: the step did not write its output `{name}`")
        target = Path(_path(args[name]))
        target.parent.mkdir(parents=True, exist_ok=True)
        if kind == "param":
            target.write_text(source.read_text())
            continue
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        shutil.move(str(source), str(target))


def run_step(args: dict[str, Any]) -> None:
    """The body of every built-in / `run` step component: spec -> runtime -> outputs."""
    spec = json.loads(args.pop("dmlc_spec"))
    lookup = _Lookup(spec, args)
    _min_success(spec, lookup)
    with tempfile.TemporaryDirectory(prefix="dmlc-kfp-") as tmp:
        outputs_dir, work_dir = os.path.join(tmp, "outputs"), os.path.join(tmp, "work")
        os.makedirs(outputs_dir)
        os.makedirs(work_dir)
        runtime_spec = _runtime_spec(spec, lookup, outputs_dir, work_dir)
        if spec.get("launch"):
            launch = {**spec["launch"], "outputs_dir": _job_outputs_dir(spec, args), "outputs": spec["outputs"]}
            runtime_spec["launch"] = _launch_spec(launch, runtime_spec, args)
        spec_path = os.path.join(tmp, "spec.json")
        Path(spec_path).write_text(json.dumps(runtime_spec, sort_keys=True, default=str))
        env = {**os.environ, "DMLC_OUTPUTS": outputs_dir, "DMLC_WORK_DIR": work_dir, "DMLC_STEP": spec["step"]}
        argv = _runtime_argv(spec, runtime_spec, spec_path, outputs_dir)
        done = subprocess.run(argv, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(done.returncode)
        _deliver(spec["outputs"], Path(outputs_dir), args)


def _job_outputs_dir(spec: dict[str, Any], args: dict[str, Any]) -> str:
    """Where the launched job writes its outputs: beside this task's first output artifact in the store."""
    for name, kind in spec["outputs"].items():
        if kind == "artifact":
            return _path(args[name], uri=True).rstrip("/") + ".dmlc-outputs"
    return ""


def _fill(value: Any, spec: dict[str, Any], marker: str, claims: dict[str, str]) -> Any:
    """Put the resolved SPEC where a manifest holds the marker, this run's PVC names where it holds theirs."""
    if isinstance(value, dict):
        return {k: _fill(v, spec, marker, claims) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, spec, marker, claims) for v in value]
    if isinstance(value, str) and marker in value and value.startswith("{"):
        extra = {k: v for k, v in json.loads(value).items() if k != marker}  # e.g. the shard of a shard server
        return json.dumps({**spec, **extra}, sort_keys=True, separators=(",", ":"))
    return claims.get(value, value) if isinstance(value, str) else value


def _launch_spec(launch: dict[str, Any], runtime_spec: dict[str, Any], args: dict[str, Any]) -> dict[str, Any]:
    """The manifests with the resolved step SPEC and this run's PVC names filled in."""
    job_spec = {**runtime_spec, "outputs_dir": launch["outputs_dir"]}
    claims = {placeholder: str(args[f"dmlc_pvc_{volume}"]) for volume, placeholder in launch["claims"].items()}
    return {**launch, "manifests": _fill(launch["manifests"], job_spec, launch["marker"], claims)}


def check_when(args: dict[str, Any]) -> bool:
    """The body of a `when` component: the step's condition, evaluated like the local executor does."""
    from dmlc_targets.local.values import eval_when

    spec = json.loads(args.pop("dmlc_spec"))
    return bool(eval_when(spec["when"], _Lookup(spec, args)))
