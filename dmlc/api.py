"""The Python API: what the CLI does, as typed functions (DESIGN §7.5), re-exported from `dmlc`.

    import dmlc
    problems = dmlc.check("pipeline.dml")                  # [] or diagnostics, never a raise
    yaml_text = dmlc.compile("pipeline.dml", "argo").text  # DmlError on errors; warnings kept
    run = dmlc.run("pipeline.dml", {"epochs": 3})          # on this machine, like `dmlc run --local`
    run.ok, run.state("best"), run.outputs("best")["metrics"]["value"]

Takes paths and params as the CLI does; gives diagnostics, compiled text and a `Run` (states, outputs,
metrics). `check` and `compile` are what `dmlc check` / `dmlc compile` call, so the two cannot drift;
`run` goes through the target registry to the target that runs pipelines (`local`), never importing a
target by name. Nothing here imports TensorFlow, kfp or hera until a target needs them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dmlc.diagnostics.model import Diagnostic, DmlError
from dmlc.ir.model import Pipeline
from dmlc.runs import RunRecord


def load(path: str | Path, params: dict[str, Any] | None = None) -> Pipeline:
    """The validated pipeline of a `.dml` / `.yaml` file; raises DmlError with its diagnostics."""
    from dmlc.driver import load as load_file

    return load_file(str(path), _params(params)).pipeline


def _params(params: dict[str, Any] | None) -> dict[str, Any] | None:
    """Params are a mapping of names to values; anything else is a programming error (TypeError)."""
    if params is not None and not isinstance(params, dict):
        raise TypeError(f"params must be a dict of name -> value, not {type(params).__name__}")
    return params


def check(path: str | Path, *, text: str | bytes | None = None) -> list[Diagnostic]:
    """The diagnostics of one file (`dmlc check FILE`): [] when it is valid. With `text`, that text is
    checked as if it were the file `path` (an editor's unsaved buffer, `dmlc check -`)."""
    from dmlc.driver import check_file, check_text

    if text is not None and not isinstance(text, (str, bytes)):
        raise TypeError(f"text must be str or bytes, not {type(text).__name__}")
    return check_file(str(path)) if text is None else check_text(str(path), text)


@dataclass
class Compiled:
    text: str
    warnings: list[Diagnostic] = field(default_factory=list)


def compile(  # the verb users expect (`dmlc compile`); `builtins.compile` stays reachable
    path: str | Path, target: str, params: dict[str, Any] | None = None, *, with_setup: bool = False
) -> Compiled:
    """The target's output (`dmlc compile FILE --target T`); raises DmlError on errors."""
    from dmlc.driver import compile_file

    warnings: list[Diagnostic] = []
    text = compile_file(str(path), target, {"with_setup": with_setup, "params": _params(params)}, warnings)
    return Compiled(text, warnings)


@dataclass(frozen=True)
class Instance:
    """One instance of a step in a run: `model[1]` is `Instance("model", "1", item="dropout", ...)`."""

    step: str
    instance: str
    item: Any
    state: str
    reason: str
    attempts: int
    outputs: dict[str, Any]
    log: str


@dataclass
class Run:
    id: str
    pipeline: str
    status: str
    exit_code: int | None
    instances: list[Instance]
    metrics: list[dict[str, Any]]

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def of(self, step: str) -> list[Instance]:
        """The instances of `step` in item order."""
        found = [i for i in self.instances if i.step == step]
        return sorted(found, key=lambda i: (i.instance != "main", int(i.instance) if i.instance.isdigit() else 0))

    def state(self, step: str) -> str:
        """The step's state (one instance), or its instances' states joined (`succeeded,failed`)."""
        states = [i.state for i in self.of(step)]
        if not states:
            raise KeyError(f"no step `{step}` in run {self.id}")
        return states[0] if len(states) == 1 else ",".join(states)

    def outputs(self, step: str, index: int | None = None) -> dict[str, Any]:
        """The outputs of a step (param values; artifacts as paths); `index` picks a fanned-out instance."""
        found = self.of(step)
        if not found:
            raise KeyError(f"no step `{step}` in run {self.id}")
        return found[0 if index is None else index].outputs


def run(
    path: str | Path,
    params: dict[str, Any] | None = None,
    *,
    resume: bool | str = False,
    no_cache: bool = False,
    secrets: str | None = None,
    root: str | Path = ".dmlc",
    out: TextIO | None = None,
    target: str = "local",
) -> Run:
    """Run a pipeline (like `dmlc run FILE --local`); the progress lines go to `out` (default: none).
    Raises DmlError for a pipeline that cannot run (the diagnostics `dmlc run` prints), for a target
    that does not run pipelines here (DML100, `dmlc.submit` sends to a cluster) and for a run to resume
    that does not exist (DML210)."""
    from dmlc.diagnostics.catalogue import DML100, DML210
    from dmlc.diagnostics.model import Label
    from dmlc.driver import get_target

    runner = get_target(target)
    if not hasattr(runner, "run"):
        help_ = f"dmlc.submit(path, {target!r}) sends it to the target's server"
        message = f"target `{target}` compiles pipelines; it does not run them on this machine"
        raise DmlError([Diagnostic(DML100, message, Label(None), help=help_)])
    options = {"resume": resume, "no_cache": no_cache, "secrets": secrets, "root": root, "out": out}
    try:
        data = runner.run(str(path), _params(params), **options)
    except LookupError as exc:  # the target's "no such run" (`resume=` an unknown id)
        raise DmlError([Diagnostic(DML210, str(exc), Label(None), help="see `dmlc runs list`")]) from None
    return Run(
        data["id"],
        data["pipeline"],
        data["status"],
        data["exit_code"],
        [Instance(**i) for i in data["steps"]],
        data["metrics"],
    )


def submit(
    path: str | Path,
    target: str,
    params: dict[str, Any] | None = None,
    *,
    server: str | None = None,
    namespace: str | None = None,
) -> RunRecord:
    """Compile for `target` and submit to its server (`dmlc submit FILE --target T`): the record of the
    submitted run (its id, server, namespace, UI address), also kept in `.dmlc/submitted.jsonl`. The
    server comes from `server` or the target's variable (ARGO_SERVER, KF_PIPELINES_ENDPOINT); tokens
    from the environment only. Raises DmlError (DML208..DML211 for the server's refusals)."""
    from dmlc.runcmd import submit as submit_run
    from dmlc.runs import Connection

    text_params = {k: v if isinstance(v, str) else json.dumps(v) for k, v in (params or {}).items()}
    return submit_run(str(path), target, text_params, Connection(server, namespace))


__all__: Sequence[str] = (
    "Compiled",
    "DmlError",
    "Instance",
    "Run",
    "RunRecord",
    "check",
    "compile",
    "load",
    "run",
    "submit",
)
