"""The run commands `dmlc submit`, `dmlc status` and `dmlc logs` (DESIGN §7.5), through each target's `Runs`.

`submit` takes FILE, a target, `--param`s and where its server is; it compiles through the driver
(the same checks and output as `dmlc compile`), hands the text to the target's `Runs.submit`, keeps
the returned record in `.dmlc/submitted.jsonl` and, with `--watch`, follows the run. `status` and
`logs` take a run id: a submitted run is found in that record, any other run by asking each target's
`Runs.find` (the local target looks in its store), or, with `--target`, on that target's server.
Exit codes: 0 ok (a watched run succeeded), 1 user error, 2 usage, 3 the watched run failed, 130 interrupted.
Import-light: targets load their client libraries only when a command needs them. (Not named
`dmlc/submit.py`: that module would shadow a `dmlc.submit` function of the Python API.)
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import Any

from dmlc import targets
from dmlc.diagnostics.model import Diagnostic, DmlError
from dmlc.runs import Connection, RunRecord, RunState

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
POLL_RETRIES = 3  # a watch survives this many failed polls in a row (a port-forward hiccup)


Reporter = Callable[[list[Diagnostic]], None]


def add_parsers(sub: Any, report: Reporter) -> None:
    """The three sub-commands; `report` prints compile warnings (the CLI's renderer, with source lines)."""
    p = sub.add_parser("submit", help="send a pipeline to a cluster (Argo Server, KFP API)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--target", "-t", required=True)
    p.add_argument("--param", action="append", metavar="K=V", help="override a pipeline parameter")
    p.add_argument("--watch", "-w", action="store_true", help="follow the run; exit 0 if it succeeds, 3 if not")
    _server_flags(p)
    p.set_defaults(func=cmd_submit, report=report)
    p = sub.add_parser("status", help="a run's state and its steps (local or submitted)")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--watch", "-w", action="store_true", help="follow the run until it ends")
    p.add_argument("--target", "-t", help="look for RUN on this target's server (a run dmlc did not submit)")
    _server_flags(p)
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("logs", help="the logs of a run's steps (local or submitted)")
    p.add_argument("run", metavar="RUN")
    p.add_argument("step", nargs="?", metavar="STEP", help="only this step (every instance of it)")
    p.add_argument("--target", "-t", help="look for RUN on this target's server (a run dmlc did not submit)")
    _server_flags(p)
    p.set_defaults(func=cmd_logs)


def _server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", metavar="URL", help="the server (else the target's variable, e.g. ARGO_SERVER)")
    p.add_argument("--namespace", "-n", metavar="NS", help="Kubernetes namespace of the run")
    p.add_argument("--interval", type=float, default=2.0, metavar="SECONDS", help="seconds between polls (--watch)")


def _conn(args: argparse.Namespace) -> Connection:
    return Connection(server=args.server, namespace=args.namespace)


# --- submit ---------------------------------------------------------------------------------------------


def submit(
    file: str,
    target: str,
    params: dict[str, str] | None = None,
    conn: Connection | None = None,
    warn: Reporter | None = None,
) -> RunRecord:
    """Compile FILE for `target` and submit it (compile warnings go to `warn` first); the record is kept in
    `.dmlc/submitted.jsonl`. Raises DmlError."""
    from dmlc.driver import prepare
    from dmlc.runs import SubmitRequest, remember

    prepared = prepare(file, target, {"params": params or {}})
    runs = targets.runs_of(prepared.target)
    if not targets.submits(runs):
        raise _cannot_submit(target)
    if prepared.warnings and warn is not None:
        warn(prepared.warnings)
    pipeline = prepared.loaded.pipeline
    text = prepared.target.emit(prepared.plan, prepared.ctx)
    given = {k: pipeline.params[k] for k in (params or {}) if k in pipeline.params}
    request = SubmitRequest(
        text, pipeline.pipeline, file, given, pipeline.step_names(), conn or Connection(), pipeline.namespace
    )
    record = runs.submit(request)  # type: ignore[union-attr]
    remember(record)
    return record


def _cannot_submit(target: str) -> DmlError:
    from dmlc.diagnostics.catalogue import DML103
    from dmlc.diagnostics.model import Label

    able = [n for n in targets.names() if targets.submits(targets.runs_of(targets.get(n)))]  # type: ignore[arg-type]
    help_ = f"targets that submit: {', '.join(able) or 'none installed'}"
    return DmlError(
        [Diagnostic(DML103, f"target `{target}` does not submit runs to a server", Label(None), help=help_)]
    )


def cmd_submit(args: argparse.Namespace) -> int:
    from dmlc.params import parse_params

    conn = _conn(args)
    record = submit(args.file, args.target, parse_params(args.param), conn, args.report)
    where = f" (namespace {record.namespace})" if record.namespace else ""
    what = "schedule" if record.kind == "schedule" else "run"
    print(f"submitted {what} {record.run} of pipeline `{record.pipeline}` to {record.target} at {record.server}{where}")
    if record.url:
        print(f"  view:   {record.url}")
    if not args.watch or record.kind == "schedule":
        print(f"  status: dmlc status {record.run} --watch")
        print(f"  logs:   dmlc logs {record.run} [STEP]")
        return EXIT_OK
    runs = targets.runs_of(targets.get(record.target))  # type: ignore[arg-type]
    return _watch(runs, record, conn, args.interval)


# --- status and logs ------------------------------------------------------------------------------------


def resolve(run: str, target: str | None = None, conn: Connection | None = None) -> tuple[Any, RunRecord]:
    """The target's `Runs` and the record of `run` (see the module doc for where it is looked for)."""
    from dmlc.runs import find_record, no_run

    if target is not None:
        from dmlc.driver import get_target

        runs = targets.runs_of(get_target(target))
        if not targets.submits(runs):
            raise _cannot_submit(target)
        rec = find_record(run)
        if rec is not None and rec.target == target:
            return runs, rec
        return runs, RunRecord(run, target, server="", namespace=(conn or Connection()).namespace)
    rec = find_record(run)
    if rec is not None:
        found = targets.get(rec.target)
        if found is None:
            raise no_run(run, f"on target `{rec.target}`", f"target `{rec.target}` is no longer installed")
        return targets.runs_of(found), rec
    for name in targets.names():
        runs = targets.runs_of(targets.get(name))  # type: ignore[arg-type]
        rec = runs.find(run) if runs is not None else None
        if rec is not None:
            return runs, rec
    help_ = "submitted runs are listed in .dmlc/submitted.jsonl, local ones by `dmlc runs list`; "
    help_ += "for a run dmlc did not submit, name its target: --target TARGET"
    raise no_run(run, "among the runs submitted from here or in the local store", help_)


def cmd_status(args: argparse.Namespace) -> int:
    from dmlc.watch import show

    conn = _conn(args)
    runs, record = resolve(args.run, args.target, conn)
    if args.watch:
        return _watch(runs, record, conn, args.interval)
    show(runs.status(record, conn))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    conn = _conn(args)
    runs, record = resolve(args.run, args.target, conn)
    out = sys.stdout
    for n, chunk in enumerate(runs.logs(record, args.step, conn)):
        attempt = f" (attempt {chunk.attempt})" if chunk.attempt > 1 else ""
        out.write(("\n" if n else "") + f"==> {chunk.label}{attempt} <==\n")
        out.write(chunk.text if chunk.text.endswith("\n") or not chunk.text else chunk.text + "\n")
        out.flush()
    return EXIT_OK


# --- watching ---------------------------------------------------------------------------------------------


def _watch(runs: Any, record: RunRecord, conn: Connection, interval: float) -> int:
    """Poll the run until it ends, printing each step's changes; the exit code follows the run."""
    from dmlc.watch import make_view

    view = make_view()
    view.begin(record)
    state: RunState | None = None
    failures, first = 0, True
    try:
        while state is None or not state.over:
            if not first:
                time.sleep(max(interval, 0.0))
            first = False
            try:
                state = runs.status(record, conn)
                failures = 0
            except DmlError:
                failures += 1
                if failures > POLL_RETRIES:
                    view.stop()
                    raise
                continue
            view.update(state)
    except KeyboardInterrupt:
        view.stop()
        print(f"stopped watching; the run goes on: dmlc status {record.run} --watch", file=sys.stderr)
        return EXIT_INTERRUPTED
    view.end(state)
    return EXIT_FAILED if state.state == "failed" else EXIT_OK
