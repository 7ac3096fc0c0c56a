"""`dmlc run --local` (local executor, stage 4): a pipeline file -> a run (new or resumed) -> an exit code.

Takes FILE, `--param`s and the run flags; loads and checks the pipeline through the driver exactly as
`dmlc compile --target local` does (so the same DML1xx errors stop a run), opens the metadata
store, cache and run folder, picks the run to resume (`--resume` alone = the latest unfinished run
of this pipeline), runs the executor and prints the summary and what to do next. Exit codes:
0 ok, 1 user error, 3 a step failed (named, with its log), 130 interrupted (resumable).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from dmlc_targets.local import objstore, proc, secret_env
from dmlc_targets.local.cache import Cache
from dmlc_targets.local.executor import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Executor, Options
from dmlc_targets.local.plan import LocalPlan
from dmlc_targets.local.progress import make_view, summary
from dmlc_targets.local.rundir import RunDir, disk_error, new_run_id
from dmlc_targets.local.state import FAILED
from dmlc_targets.local.store import Store

from dmlc import placement
from dmlc.driver import prepare
from dmlc.ir.model import Pipeline

STATE_DIR = Path(".dmlc")


@dataclass
class RunRequest:
    file: str | None
    params: dict[str, Any] = field(default_factory=dict)
    resume: str | bool = False  # False, True (latest unfinished), or a run id
    no_cache: bool = False
    keep_serving: bool = False
    secrets: str | None = None  # the --secrets FILE
    root: Path = STATE_DIR
    run_id: str | None = None  # set by `execute`: the run it started or resumed (for the Python API)
    store: Path | None = None  # set by `execute`: the metadata store it used


def store_path(pipeline: Pipeline, root: Path) -> Path:
    if pipeline.metadata and pipeline.metadata.store:
        return Path(pipeline.metadata.store)
    return root / "metadata.db"


class UsageError(Exception):
    """A run request that cannot be honoured (no run to resume, ...): exit 1 with this message."""


def _pick_run(req: RunRequest, store: Store, pipeline: Pipeline | None) -> Any:
    if req.resume is True:
        row = store.latest_unfinished(pipeline.pipeline if pipeline else None)
        if row is None:
            what = f" of pipeline `{pipeline.pipeline}`" if pipeline else ""
            raise UsageError(f"no unfinished run{what} to resume")
    else:
        row = store.run(str(req.resume))
        if row is None:
            raise UsageError(f"no run `{req.resume}` in {store.path} (see `dmlc runs list`)")
    if row["status"] == "running" and proc.alive(row["pid"], row["pid_start"]):
        raise UsageError(f"run {row['id']} is still running (executor pid {row['pid']}); wait for it or stop it")
    return row


def execute(req: RunRequest, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    file = req.file or "pipeline.dml"
    previous = None
    if req.resume and req.file is None:  # `--resume RUN` alone: the run knows its file
        probe = Store(req.root / "metadata.db")
        try:
            previous = _pick_run(req, probe, None)
        finally:
            probe.close()
        file = previous["file"]
    plan = _plan(file, req.params)
    store = Store(store_path(plan.pipeline, req.root))
    try:
        if req.resume:
            previous = _pick_run(req, store, plan.pipeline) if previous is None else previous
            params = {**json.loads(previous["params"]), **req.params}
            if params != plan.pipeline.params:
                plan = _plan(file, params)
        return _execute(req, file, plan, store, previous, out)
    except BaseException as exc:  # the run is over: never leave it marked running
        stopped = isinstance(exc, KeyboardInterrupt)
        store.abandon("interrupted" if stopped else "failed", EXIT_INTERRUPTED if stopped else 1)
        if isinstance(exc, OSError):  # writing the run's folder: a coded error naming the path
            raise disk_error(exc) from None
        raise
    finally:
        store.close()


def _plan(file: str, params: dict[str, Any]) -> LocalPlan:
    """The local target's plan: load -> target.check, the path `dmlc compile --target local` takes."""
    return prepare(file, "local", {"params": params or None}).plan


def _execute(req: RunRequest, file: str, plan: LocalPlan, store: Store, previous: Any, out: TextIO) -> int:
    pipeline = plan.pipeline
    secrets = secret_env.load(req.secrets)
    values = secret_env.resolve(pipeline, secrets, os.environ)  # DML207 before anything runs
    remote = objstore.open_remote(pipeline.artifacts, secrets, os.environ)  # DML212 before anything runs
    run_id = previous["id"] if previous is not None else new_run_id(pipeline.pipeline)
    rundir = RunDir(req.root, run_id)
    req.run_id, req.store = run_id, store.path
    if previous is None:
        store.start_run(run_id, pipeline.pipeline, str(Path(file).resolve()), pipeline.params, str(rundir.path))
        rundir.write_meta({"id": run_id, "file": str(Path(file).resolve()), "params": pipeline.params})
    else:
        _kill_leftovers(store, run_id)
        store.resume_run(run_id, pipeline.params)
        _remember_params(rundir, run_id, file, pipeline.params)
    note = placement.local_note(pipeline, {name: p.step for name, p in plan.steps.items()})
    if note:  # once per run, before the progress view takes the terminal
        out.write(f"note: {note}\n")
    view = make_view(out)
    opts = Options(no_cache=req.no_cache, keep_serving=req.keep_serving, resume=previous is not None, secrets=values)
    opts.remote = remote
    executor = Executor(plan, rundir, Cache(req.root / "cache"), store, view, opts)
    verb = "resuming" if previous is not None else "run"
    view.begin(executor, f"{verb} {run_id}: pipeline {pipeline.pipeline} ({file})")
    try:
        code = executor.run()
    finally:
        view.end()
    status = {EXIT_OK: "succeeded", EXIT_FAILED: "failed", EXIT_INTERRUPTED: "interrupted"}[code]
    store.finish_run(run_id, status, code)
    summary(executor.instances(), out)
    _epilogue(executor, code, file, run_id, out)
    return code


def _remember_params(rundir: RunDir, run_id: str, file: str, params: dict[str, Any]) -> None:
    """run.json holds the params the run goes on with (a damaged one is written afresh)."""
    try:
        meta = rundir.read_meta()
    except (OSError, ValueError):
        meta = {"id": run_id, "file": str(Path(file).resolve())}
    rundir.write_meta({**meta, "params": params})


def _kill_leftovers(store: Store, run_id: str) -> None:
    """Attempts still marked running belong to an executor that died: stop them if they still run."""
    for row in store.running_attempts(run_id):
        if row["pid"]:
            proc.kill_stale(row["pid"], row["pid_start"] or "")
        store.put_attempt({**dict(row), "outcome": "lost (executor died)"})
    proc.kill_tagged(run_id)  # what those attempts started outside their groups (setsid, daemons)


def _epilogue(executor: Executor, code: int, file: str, run_id: str, out: TextIO) -> None:
    """The results that matter (chosen model, metrics, endpoints), each failure with its log's tail, and
    what to do next."""
    from dmlc_targets.local import readout

    resume = f"dmlc run {file} --local --resume {run_id}"
    steps = readout.from_instances(executor.instances())
    serving = executor.opts.keep_serving  # the serve steps outlive the run
    _results(readout.highlights(steps, served_now=serving), out)
    if code == EXIT_OK:
        out.write(f"run {run_id} succeeded; details: dmlc runs show {run_id}, dmlc runs report {run_id}\n")
        return
    if code == EXIT_INTERRUPTED:
        out.write(f"run {run_id} interrupted; resume with: {resume}\n")
        return
    names = readout.step_labels(steps)
    failed = [inst for inst in executor.instances() if inst.state == FAILED]
    for n, inst in enumerate(failed):
        log = f"; log: {_short(inst.log)}" if inst.log else ""
        out.write(f"error: step `{names[inst.step, inst.key]}` failed: {inst.reason}{log}\n")
        tail = readout.log_tail(inst.log) if n < readout.MAX_TAILS else []
        out.writelines(f"  | {line}\n" for line in tail)
    out.write(f"run {run_id} failed; fix the step and resume with: {resume}\n")


def _results(lines: list[tuple[str, str]], out: TextIO) -> None:
    from dmlc_targets.local.readout import grouped

    out.writelines(f"{heading:<11}{text}\n" for heading, text in grouped(lines))


def _short(path: str) -> str:
    """A path relative to the current folder when it is inside it (what a user can paste)."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel
