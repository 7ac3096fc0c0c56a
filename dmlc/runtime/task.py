"""The `task` step with `run = "pkg.module:function"`: call a user function and store its outputs.

The function is called with the resolved `inputs` as keyword arguments. One declared output gets the
return value; several take a returned dict keyed by output name. A param output is stored as JSON.
An artifact output is a folder `<DMLC_OUTPUTS>/<name>/`: the function may write it itself (env
DMLC_OUTPUTS is set before the call) or return the path of a file or folder, which is copied there.
`command` tasks are run by the executor directly, never by the runtime.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from dmlc.ir.model import Task
from dmlc.runtime.loader import load_function
from dmlc.runtime.step_io import UserError, artifact_dir, write_param
from dmlc.semantics.spec import StepSpec


def run(spec: StepSpec) -> None:
    cfg: Task = spec.config(Task)
    if not cfg.run:
        if cfg.command:
            raise UserError("a `command` task is run by the executor, not by `python -m dmlc.runtime task`")
        raise UserError('task needs `run = "pkg.module:function"` or `command`')
    declared: dict[str, str] = dict(cfg.outputs())
    func = load_function(cfg.run)
    spec.outputs_dir.mkdir(parents=True, exist_ok=True)
    os.environ["DMLC_OUTPUTS"] = str(spec.outputs_dir)
    result = func(**dict(cfg.inputs))
    for name, value in output_values(declared, result).items():
        store(spec.outputs_dir, name, declared[name], value)


def output_values(declared: dict[str, str], result: Any) -> dict[str, Any]:
    """Map the return value onto the declared outputs."""
    if not declared:
        return {}
    if len(declared) == 1:
        name = next(iter(declared))
        value = result.get(name, result) if isinstance(result, dict) and set(result) == {name} else result
        return {name: value}
    if not isinstance(result, dict):
        raise UserError(f"the function must return a dict with keys {', '.join(declared)}")
    missing = [n for n in declared if n not in result and declared[n] == "param"]
    if missing:
        raise UserError(f"the function's result lacks param output(s) {', '.join(missing)}")
    return {n: result.get(n) for n in declared}


def store(outputs_dir: Path, name: str, kind: str, value: Any) -> None:
    if kind == "param":
        write_param(outputs_dir, name, value)
        return
    target = outputs_dir / name
    if isinstance(value, (str, os.PathLike)) and Path(value).exists():
        if Path(value).resolve() == target.resolve():
            return  # the function wrote its artifact in place
        with artifact_dir(outputs_dir, name) as out:
            source = Path(value)
            if source.is_dir():
                shutil.copytree(source, out, dirs_exist_ok=True)
            else:
                shutil.copy2(source, out / source.name)
    elif not target.exists():
        raise UserError(f"artifact output {name!r}: return a file/folder path or write {target}")
