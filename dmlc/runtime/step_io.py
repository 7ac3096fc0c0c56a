"""What a step reads and writes inside `python -m dmlc.runtime`: its spec, its outputs, its errors.

Takes the spec's JSON (a file or text on the command line) and gives the typed `StepSpec` of
`dmlc.semantics.spec` with its folders set; every step kind writes its outputs with `write_param` /
`artifact_dir`, so a consumer never sees a half-written output (temp name in the same folder +
`os.replace`). `UserError` and `TransientError` become the exit codes 1 and 75.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dmlc.atomic import write_text
from dmlc.semantics import handover
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics import spec as contract
from dmlc.semantics.retry import EXIT_TRANSIENT  # noqa: F401 - the runtime's exit code for a retryable failure
from dmlc.semantics.spec import StepSpec
from dmlc.semantics.values import ResolveError, resolve

EXIT_OK = 0
EXIT_USER = 1
EXIT_FAILED = 2


class UserError(Exception):
    """A bad spec or user mistake: reported as one line on stderr, exit 1."""


class TransientError(Exception):
    """A failure worth retrying (a worker died, a port was taken): exit 75."""


def load_spec(path: str | None, text: str | None, kind: str, outputs: str | None, refs: str | None = None) -> StepSpec:
    """The spec from a file or from JSON text on the command line; DMLC_OUTPUTS wins over `outputs` (the
    --outputs flag), which wins over the spec's own `outputs_dir`. With `refs` (how an engine handed the
    values over, see `dmlc.semantics.handover`) the spec's references are resolved here first."""
    try:
        raw = Path(path).read_text() if path else (text or "")
    except OSError as exc:
        raise UserError(f"cannot read spec {path}: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
        bindings = json.loads(refs) if refs else None
    except ValueError as exc:
        raise UserError(f"spec is not valid JSON: {exc}") from exc
    try:
        if bindings is not None:
            data = _resolved(data, bindings)
        spec = contract.load(data)
    except (contract.SpecError, ResolveError) as exc:
        raise UserError(str(exc)) from None
    if spec.kind != kind:
        raise UserError(f"the spec is for a `{spec.kind}` step, not `{kind}`")
    out = os.environ.get("DMLC_OUTPUTS") or outputs or spec.outputs_dir or "outputs"
    work = spec.work_dir or os.environ.get("DMLC_WORK_DIR") or tempfile.mkdtemp(prefix="dmlc-work-")
    return spec.model_copy(update={"outputs_dir": Path(out).absolute(), "work_dir": Path(work).absolute()})


def _resolved(data: Any, bindings: dict[str, Any]) -> Any:
    """The instance's spec from a template whose values the engine put in the environment."""
    if not isinstance(data, dict) or not isinstance(data.get("attrs"), dict):
        return data  # contract.load says what is wrong
    find = handover.lookup(bindings, os.environ)
    return contract.instantiate(data, find, item=resolve(data.get("item"), find))


def spec_json(spec: StepSpec) -> str:
    """The JSON form again (how the local cluster hands the spec to its worker processes)."""
    return json.dumps(contract.dump(spec), sort_keys=True)


def write_param(outputs_dir: Path, name: str, value: Any) -> Path:
    """A param output: a file holding JSON text."""
    path = Path(outputs_dir) / name
    write_text(path, json.dumps(value, sort_keys=True, default=_json_default) + "\n")
    return path


def write_metrics(spec: StepSpec, value: dict[str, Any]) -> None:
    """The `metrics` param of a train / evaluate / select step, and beside it one file per metric the
    engines' UIs show (`dmlc.semantics.metrics`: the one place they are written)."""
    write_param(spec.outputs_dir, "metrics", value)
    ui_metrics.write(spec.outputs_dir, spec.attrs, value)


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
