"""The step SPEC (DESIGN §4): loading it, the runtime's error types and atomic output writers.

Every step kind reads one `Spec` and writes its outputs with `write_param` / `artifact_dir`, so a
consumer never sees a half-written output (temp name in the same folder + `os.replace`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmlc.atomic import write_text

EXIT_OK = 0
EXIT_USER = 1
EXIT_FAILED = 2
EXIT_TRANSIENT = 75  # EX_TEMPFAIL: the executor may retry the step


class UserError(Exception):
    """A bad spec or user mistake: reported as one line on stderr, exit 1."""


class TransientError(Exception):
    """A failure worth retrying (a worker died, a port was taken): exit 75."""


@dataclass
class Spec:
    """One step instance: identity, resolved attributes and its folders."""

    kind: str
    attrs: dict[str, Any]
    outputs_dir: Path
    work_dir: Path
    pipeline: str = "pipeline"
    step: str = "step"
    item: Any = None
    index: int | None = None
    volumes: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. "role"/"shard_urls" of a k8s router

    def attr(self, name: str, default: Any = None) -> Any:
        """An attribute, with `default` when it is absent or null."""
        value = self.attrs.get(name)
        return default if value is None else value


_KNOWN = {"kind", "attrs", "outputs_dir", "work_dir", "pipeline", "step", "item", "index", "volumes", "seed"}


def spec_from_dict(data: dict[str, Any], kind: str | None = None, outputs: str | None = None) -> Spec:
    """Build a Spec; env DMLC_OUTPUTS wins over `outputs` (the --outputs flag), which wins over the spec."""
    if not isinstance(data, dict):
        raise UserError("the spec must be a JSON object")
    attrs = data.get("attrs") or {}
    if not isinstance(attrs, dict):
        raise UserError("spec field `attrs` must be an object")
    attrs = apply_min_success(attrs, data.get("min_success") or {})
    out = os.environ.get("DMLC_OUTPUTS") or outputs or data.get("outputs_dir") or "outputs"
    work = data.get("work_dir") or os.environ.get("DMLC_WORK_DIR") or tempfile.mkdtemp(prefix="dmlc-work-")
    return Spec(
        kind=kind or data.get("kind") or attrs.get("kind") or "",
        attrs=attrs,
        outputs_dir=Path(out).absolute(),
        work_dir=Path(work).absolute(),
        pipeline=data.get("pipeline") or "pipeline",
        step=data.get("step") or "step",
        item=data.get("item"),
        index=data.get("index"),
        volumes=dict(data.get("volumes") or {}),
        seed=int(data.get("seed") or 0),
        extra={k: v for k, v in data.items() if k not in _KNOWN},
    )


def apply_min_success(attrs: dict[str, Any], gates: dict[str, int]) -> dict[str, Any]:
    """Fan-ins over a step with `min_success`: on Argo/KFP failed instances arrive as missing values;
    drop them, and fail (as the consumer) when fewer than N succeeded, exactly as the local executor."""
    if not gates:
        return attrs
    attrs = dict(attrs)
    for name, need in gates.items():
        values = attrs.get(name)
        if not isinstance(values, list):
            continue
        present = [v for v in values if v not in (None, "", "null")]
        if len(present) < int(need):
            raise UserError(
                f"only {len(present)} of {len(values)} instances feeding `{name}` succeeded; min_success = {need}"
            )
        attrs[name] = present
    return attrs


def load_spec(path: str | None, text: str | None, kind: str | None, outputs: str | None) -> Spec:
    """Read the spec from a file or from JSON text given on the command line."""
    try:
        raw = Path(path).read_text() if path else (text or "")
    except OSError as exc:
        raise UserError(f"cannot read spec {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UserError(f"spec is not valid JSON: {exc}") from exc
    return spec_from_dict(data, kind, outputs)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """The JSON form again (used to hand the spec to worker subprocesses)."""
    return {
        **spec.extra,
        "pipeline": spec.pipeline,
        "step": spec.step,
        "kind": spec.kind,
        "item": spec.item,
        "index": spec.index,
        "attrs": spec.attrs,
        "outputs_dir": str(spec.outputs_dir),
        "work_dir": str(spec.work_dir),
        "volumes": spec.volumes,
        "seed": spec.seed,
    }


def write_param(outputs_dir: Path, name: str, value: Any) -> Path:
    """A param output: a file holding JSON text."""
    path = Path(outputs_dir) / name
    write_text(path, json.dumps(value, sort_keys=True, default=_json_default) + "\n")
    return path


def _json_default(value: Any) -> Any:
    # numpy scalars and paths show up in metrics; everything else is a bug worth seeing
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextmanager
def artifact_dir(outputs_dir: Path, name: str) -> Iterator[Path]:
    """Yield a temp folder next to `<outputs_dir>/<name>`; on success it replaces that folder atomically."""
    outputs_dir = Path(outputs_dir)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=outputs_dir))
    try:
        yield tmp
        final = outputs_dir / name
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        elif final.exists() or final.is_symlink():
            final.unlink()
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_json_file(path: Path, value: Any) -> None:
    """A JSON file written atomically (metadata inside artifacts)."""
    write_text(Path(path), json.dumps(value, indent=1, sort_keys=True, default=_json_default) + "\n")


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError as exc:
        raise UserError(f"missing file {path}") from exc
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON: {exc}") from exc
