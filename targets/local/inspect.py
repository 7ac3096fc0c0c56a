"""Looking at past runs and the cache (local executor, CLI): `dmlc runs ...` and `dmlc cache ...`.

Takes the metadata store and the cache under `.dmlc/`; gives tables of runs, one run's steps,
attempts (exit, CPU time, peak memory) and metrics, an artifact's lineage (producer, then the
producers of its inputs), a memo recipe with the reason it hits or misses, and cache pruning.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from dmlc_targets.local.cache import Cache, recipe_diff
from dmlc_targets.local.runner import STATE_DIR, store_path
from dmlc_targets.local.store import Store


def _console() -> Any:
    from rich.console import Console

    return Console(width=max(110, Console().width), highlight=False)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, box=None, pad_edge=False, title_justify="left", show_header=any(columns))
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*(Text("" if v is None else str(v)) for v in row))  # `model[mlp]` is no markup
    return table


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _took(start: float | None, end: float | None) -> str:
    return f"{end - start:.2f}s" if start and end else ""


def _store() -> Store:
    return Store(STATE_DIR / "metadata.db")


def runs_list(limit: int = 20) -> int:
    store = _store()
    rows = [
        [r["id"], r["pipeline"], _status(r), r["exit_code"], _when(r["started"]), _took(r["started"], r["ended"])]
        for r in store.runs(limit)
    ]
    _console().print(_table("runs", ["run", "pipeline", "status", "exit", "started", "took"], rows))
    return 0


def _status(run: Any) -> str:
    """A run's status; "running" only while its executor lives (one stopped by a full disk could not say)."""
    from dmlc_targets.local.proc import alive

    if run["status"] == "running" and not alive(run["pid"], run["pid_start"]):
        return "lost (executor died)"
    return str(run["status"])


def find_run(store: Store, ref: str) -> Any:
    """A run by id, unique prefix, or `latest` (the most recently started); None (said on stderr) if none."""
    if ref == "latest":
        rows = store.runs(1)
        run = rows[0] if rows else None
    else:
        run = store.run(ref)
    if run is None:
        what = "no runs yet" if ref == "latest" else f"no run `{ref}`"
        print(f"error: {what} in {store.path} (see `dmlc runs list`)", file=sys.stderr)
    return run


def runs_show(run_id: str) -> int:
    from dmlc_targets.local import readout
    from dmlc_targets.local.results import results

    store = _store()
    run = find_run(store, run_id)
    if run is None:
        return 1
    found = results(store, run["id"])
    names = readout.step_labels(found["steps"])
    label = lambda row: names.get((row["step"], row["instance"]), _label(row))  # noqa: E731
    con = _console()
    con.print(f"run {run['id']}  pipeline {run['pipeline']}  {_status(run)} (exit {run['exit_code']})", markup=False)
    con.print(f"file {run['file']}  params {run['params']}  folder {run['run_dir']}", markup=False)
    steps = [
        [label(s), s["state"], s["attempts"], _took(s["started"], s["ended"]), s["cache"], s["reason"]]
        + [_last_line(s["log"])]
        for s in store.steps(run["id"])
    ]
    con.print(_table("steps", ["step", "state", "attempts", "time", "cache", "note", "last output"], steps))
    attempts = [
        [label(a), a["attempt"], a["outcome"], a["exit_code"] if a["signal"] is None else f"signal {a['signal']}"]
        + [_took(a["started"], a["ended"]), _cpu(a["cpu_s"]), _mem(a["max_rss_kb"]), a["log"]]
        for a in store.attempts(run["id"])
    ]
    columns = ["step", "attempt", "outcome", "exit", "wall", "cpu", "peak memory", "log"]
    con.print(_table("attempts", columns, attempts))
    _show_results(con, found, names)
    con.print(f"logs: dmlc logs {run['id']} [STEP]; report: dmlc runs report {run['id']} -o report.html", markup=False)
    return 0


def _show_results(con: Any, found: dict[str, Any], names: dict[tuple[str, str], str]) -> None:
    """The highlights, the metrics (sorted; a per-epoch series on one row), each failure's log tail."""
    from dmlc_targets.local import readout

    lines = readout.highlights(found["steps"])
    if lines:
        con.print(_table("results", ["", ""], [list(line) for line in readout.grouped(lines)]))
    rows = readout.metric_table(found["metrics"], names, [s["step"] for s in found["steps"]])
    if rows:
        con.print(_table("metrics", ["step", "metric", "value"], rows))
    failed = [s for s in found["steps"] if s["state"] == "failed"]
    for s in failed[: readout.MAX_TAILS]:
        con.print(f"{names[s['step'], s['instance']]} failed: {s['reason']}", markup=False)
        for line in readout.log_tail(s["log"]):
            con.print(f"  | {line}", markup=False, highlight=False)
    if len(failed) > readout.MAX_TAILS:
        con.print(f"{len(failed) - readout.MAX_TAILS} more failed (see the steps table)", markup=False)


def _last_line(log: str | None) -> str:
    from dmlc_targets.local.readout import log_tail

    tail = log_tail(log, 1)
    line = tail[-1] if tail else ""
    return line if len(line) <= 48 else line[:47] + "…"


def _label(row: Any) -> str:
    return row["step"] if row["instance"] == "main" else f"{row['step']}[{row['instance']}]"


def _cpu(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.2f}s"


def _mem(kb: int | None) -> str:
    return "" if kb is None else f"{kb / 1024:.1f} MiB"


def runs_lineage(what: str) -> int:
    store = _store()
    if os.path.exists(what):  # a path: the store keeps absolute ones
        what = os.path.abspath(what)
    found = store.artifacts_like(what)
    if not found:
        print(f"error: no artifact with digest or path `{what}`", file=sys.stderr)
        return 1
    lines: list[str] = []
    _trace(store, found[0], 0, lines, set())
    print("\n".join(lines))
    return 0


def _trace(store: Store, art: Any, depth: int, lines: list[str], seen: set[str]) -> None:
    pad = "  " * depth
    producer = f"{_label(art)} in run {art['run_id']}"
    lines.append(f"{pad}{art['name']} ({art['kind']}) {art['digest'][:19]}  <- {producer}  {art['path']}")
    mark = f"{art['run_id']}/{art['step']}/{art['instance']}"
    if mark in seen or depth > 20:
        return
    seen.add(mark)
    for inp in store.inputs_of(art["run_id"], art["step"], art["instance"]):
        producers = store.producers(inp["digest"])
        if producers:
            _trace(store, producers[-1], depth + 1, lines, seen)
        else:
            lines.append(f"{pad}  {inp['ref']} = value {inp['digest'][:19]}")


def cache_explain(file: str, step: str, params: dict[str, Any]) -> int:
    from dmlc import memo
    from dmlc.driver import prepare

    pipeline = prepare(file, "local", {"params": params or None}).plan.pipeline  # the path `dmlc run` takes
    if step not in pipeline.steps:
        print(f"error: no step `{step}` in pipeline `{pipeline.pipeline}`", file=sys.stderr)
        return 1
    from dmlc.ir.effective import effective

    memoize = effective(pipeline, step).memoize
    store = Store(store_path(pipeline, STATE_DIR))
    rows = store.last_step(pipeline.pipeline, step)
    if not rows:
        recipe = memo.memo_recipe(pipeline, step, None, {})
        print(json.dumps(recipe, indent=2, sort_keys=True))
        print(f"inputs: not known yet: run the pipeline once (`dmlc run {file} --local`) to see the full key")
        return 0
    cache = Cache(STATE_DIR / "cache")
    for row in rows:
        _explain_one(pipeline, step, row, store, cache, memoize)
    return 0


def _explain_one(pipeline: Any, step: str, row: Any, store: Store, cache: Cache, memoize: Any) -> None:
    from dmlc import memo

    item = json.loads(row["item"]) if row["item"] else None
    inputs = {r["ref"]: r["digest"] for r in store.inputs_of(row["run_id"], step, row["instance"])}
    recipe = memo.memo_recipe(pipeline, step, item, inputs)
    key = memo.memo_key(recipe)
    print(f"== {_label(row)} (inputs as of run {row['run_id']})")
    print(json.dumps(recipe, indent=2, sort_keys=True))
    print(f"key: {key}")
    if memoize is None:
        print("memoize: off for this step (add `memoize { }` or `defaults { memoize { } }`)")
        return
    found = cache.probe(key, memoize.max_age)
    print(found.reason)
    if not found.hit and found.entry is None:
        _closest(cache, pipeline.pipeline, step, recipe)


def _closest(cache: Cache, pipeline: str, step: str, recipe: dict[str, Any]) -> None:
    """Among cached results of the same step, the one whose recipe differs least, and where."""
    best: tuple[int, list[str], dict[str, Any]] | None = None
    for _, entry in cache.entries():
        if entry.get("pipeline") == pipeline and entry.get("step") == step:
            diff = recipe_diff(entry["recipe"], recipe)
            if best is None or len(diff) < best[0]:
                best = (len(diff), diff, entry)
    if best is None:
        print("no cached result of this step at all")
        return
    print(f"nearest cached result (run {best[2].get('run')}) differs in: {', '.join(best[1])}")


def cache_prune(older_than: str) -> int:
    from dmlc.units import UnitError, parse_duration

    try:
        seconds = parse_duration(older_than)
    except UnitError as exc:
        print(f"error: --older-than {older_than}: {exc}; {exc.hint}", file=sys.stderr)
        return 2
    removed, kept = Cache(STATE_DIR / "cache").prune(seconds)
    print(f"removed {removed} cached result(s) older than {older_than}; kept {kept}")
    return 0
