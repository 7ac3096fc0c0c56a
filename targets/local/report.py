"""`dmlc runs report RUN [-o FILE]` (local executor): one run -> one self-contained, offline HTML page.

Takes a run of the local metadata store (id, unique prefix or `latest`); gives a page with the run's
facts and results (chosen model, metrics, endpoints: the same lines as the end of `dmlc run`), the
DAG (report_dag: inline SVG, coloured by outcome), a timeline of every instance's attempts and plots of
the metrics per epoch and per instance (report_plots: matplotlib SVG), the sorted metrics, the steps,
and the tail of each step's log (a failed one opened). No script, stylesheet, font or image is fetched:
everything is in the file. The DAG comes from the run's pipeline file when it still loads with the
run's steps, else from the references the store recorded (data edges only).
"""

from __future__ import annotations

import json
import sys
import time
from html import escape
from pathlib import Path
from typing import Any

from dmlc_targets.local import readout, report_dag, report_plots
from dmlc_targets.local.records import split_epoch
from dmlc_targets.local.store import Store

LOG_LINES = 40
MAX_ROWS = 60  # instances drawn one per timeline row, and logs shown; past this, per step / failures first
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px auto;max-width:1100px;
color:#222;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;
padding-bottom:4px}
table{border-collapse:collapse;font-size:13px}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{color:#555;font-weight:600}.facts td:first-child{color:#555}
.state-failed,.state-upstream{color:#c62828;font-weight:600}.state-succeeded{color:#2e7d32}
.state-cached{color:#1565c0}.plots{display:flex;flex-wrap:wrap;gap:12px}.plots svg{max-width:100%;height:auto}
.figure{overflow-x:auto}pre{background:#f6f8fa;padding:8px;font-size:12px;overflow-x:auto;margin:4px 0 10px}
details summary{cursor:pointer;font-size:13px;margin:4px 0}.note{color:#666;font-size:13px}
"""


def write_report(run_ref: str, output: str | None, store_path: Path) -> int:
    """The CLI's command: find the run, build the page, write it (`-` is stdout). Exit 0, or 1 (no such
    run, or the file cannot be written)."""
    from dmlc_targets.local.inspect import find_run

    store = Store(store_path)
    try:
        run = find_run(store, run_ref)
        if run is None:
            return 1
        page = build(store, run)
    finally:
        store.close()
    if output == "-":
        sys.stdout.write(page)
        return 0
    path = Path(output or f"{run['id']}.html")
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        print(f"error: cannot write the report to {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} (run {run['id']}); open it in a browser, it needs no network")
    return 0


def build(store: Store, run: Any) -> str:
    """The whole page for `run` (a row of the store's runs table)."""
    from dmlc_targets.local.results import results

    found = results(store, run["id"])
    steps = found["steps"]
    names = readout.step_labels(steps)
    attempts = store.attempts(run["id"])
    rows = store.steps(run["id"])
    body = [
        f"<h1>Run {escape(run['id'])}</h1>",
        _facts(run),
        _section("Results", _results(steps)),
        _section("Pipeline", f'<div class="figure">{_dag(run, store, steps)}</div>'),
        _section("Timeline", _timeline(run, rows, attempts, names)),
        _section("Metrics", _metrics(found["metrics"], names, steps)),
        _section("Steps", _steps(rows, names)),
        _section("Logs", _logs(steps, names, attempts)),
    ]
    title = f"dmlc run {run['id']}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + f'\n<p class="note">written by dmlc {time.strftime("%Y-%m-%d %H:%M:%S")}</p>\n</body></html>\n'
    )


def _section(title: str, inner: str) -> str:
    anchor = title.lower()
    return f'<section id="{anchor}"><h2>{escape(title)}</h2>\n{inner}\n</section>'


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else ""


def _facts(run: Any) -> str:
    took = f"{run['ended'] - run['started']:.1f}s" if run["started"] and run["ended"] else ""
    rows = [
        ("pipeline", run["pipeline"]),
        ("status", f"{run['status']} (exit {run['exit_code']})"),
        ("started", _when(run["started"])),
        ("took", took),
        ("params", run["params"]),
        ("file", run["file"]),
        ("folder", run["run_dir"]),
    ]
    cells = "".join(f"<tr><td>{escape(k)}</td><td>{escape(str(v or ''))}</td></tr>" for k, v in rows)
    return f'<table class="facts">{cells}</table>'


def _results(steps: list[dict[str, Any]]) -> str:
    lines = readout.grouped(readout.highlights(steps))
    if not lines:
        return '<p class="note">no selection, metrics or endpoints in this run</p>'
    cells = "".join(f"<tr><th>{escape(h)}</th><td>{escape(t)}</td></tr>" for h, t in lines)
    return f'<table class="results">{cells}</table>'


# --- the DAG ------------------------------------------------------------------------------------------


def _dag(run: Any, store: Store, steps: list[dict[str, Any]]) -> str:
    states: dict[str, list[str]] = {}
    for s in steps:
        states.setdefault(s["step"], []).append(s["state"])
    shape = _pipeline_shape(run, set(states))
    if shape is None:
        titles = {name: name for name in states}
        edges = _recorded_edges(store, run["id"], set(states))
    else:
        titles, edges = shape
    nodes = [report_dag.Node(name, title, states.get(name, [])) for name, title in titles.items()]
    return report_dag.dag_svg(nodes, edges)


def _pipeline_shape(run: Any, ran: set[str]) -> tuple[dict[str, str], list[tuple[str, str, str]]] | None:
    """Titles (`train model x3`) and edges from the run's file, if it loads and has every step the run
    ran; None otherwise (edited since, moved, or broken)."""
    try:
        from dmlc.driver import prepare
        from dmlc.ir.graph import edges

        params = json.loads(run["params"] or "{}")
        pipeline = prepare(run["file"], "local", {"params": params or None}).plan.pipeline
    except Exception:  # any failure to load means: draw from the store instead
        return None
    if not ran <= set(pipeline.steps):
        return None
    titles = {name: f"{step.kind} {name}{_width(step)}" for name, step in pipeline.steps.items()}
    found = [(up, down, kind) for down, ups in edges(pipeline).items() for up, kind in ups.items()]
    return titles, found


def _width(step: Any) -> str:
    if isinstance(step.for_each, list):
        return f" x{len(step.for_each)}"
    return " xN" if step.for_each is not None else ""


def _recorded_edges(store: Store, run_id: str, ran: set[str]) -> list[tuple[str, str, str]]:
    found: dict[tuple[str, str], None] = {}
    for s in store.steps(run_id):
        for row in store.inputs_of(run_id, s["step"], s["instance"]):
            root = row["ref"].split(".")[0].split("[")[0]
            if root in ran and root != s["step"]:
                found[root, s["step"]] = None
    return [(up, down, "data") for up, down in found]


# --- the timeline and the metrics -----------------------------------------------------------------------


def _timeline(run: Any, rows: list[Any], attempts: list[Any], names: dict) -> str:
    if not report_plots.available():
        return _no_plots()
    t0 = run["started"] or 0.0
    bars = [
        (
            names[a["step"], a["instance"]],
            a["started"] - t0,
            (a["ended"] or a["started"]) - t0,
            a["outcome"],
            a["attempt"],
        )
        for a in attempts
        if a["started"] and (a["step"], a["instance"]) in names
    ]
    tried = {(a["step"], a["instance"]) for a in attempts}
    for s in rows:  # cached instances ran no attempt: a thin mark where they settled
        if (s["step"], s["instance"]) not in tried and s["state"] == "cached" and s["ended"]:
            bars.append((names[s["step"], s["instance"]], s["ended"] - t0, s["ended"] - t0, "cached", 0))
    if not bars:
        return '<p class="note">no step ran</p>'
    order = {names[s["step"], s["instance"]]: n for n, s in enumerate(rows)}
    bars.sort(key=lambda bar: (order.get(bar[0], len(order)), bar[1]))
    if len(order) > MAX_ROWS:  # a wide fan-out: a row per step, its instances' bars on it
        step_of = {names[s["step"], s["instance"]]: s["step"] for s in rows}
        bars = [(step_of.get(label, label), *rest) for label, *rest in bars]
    return f'<div class="figure">{report_plots.timeline_svg(bars)}</div>'


def _metrics(metrics: list[dict[str, Any]], names: dict, steps: list[dict[str, Any]]) -> str:
    order = [s["step"] for s in steps]
    rows = readout.metric_table(metrics, names, order)
    if not rows:
        return '<p class="note">this run recorded no metrics</p>'
    plots = _metric_plots(metrics, names) if report_plots.available() else [_no_plots()]
    cells = "".join("<tr>" + "".join(f"<td>{escape(v)}</td>" for v in row) + "</tr>" for row in rows)
    table = f'<table class="metrics"><tr><th>step</th><th>metric</th><th>value</th></tr>{cells}</table>'
    return f'<div class="plots">{"".join(plots)}</div>\n{table}'


def _metric_plots(metrics: list[dict[str, Any]], names: dict) -> list[str]:
    """A per-epoch plot for each metric with a history; a by-instance plot for each key metric that
    several instances of one step report."""
    per_epoch: dict[str, dict[str, list[tuple[int, float]]]] = {}
    single: dict[tuple[str, str], dict[str, float]] = {}
    for m in metrics:
        who = names.get((m["step"], m["instance"]), m["step"])
        base, epoch = split_epoch(m["name"])
        if epoch is not None:
            per_epoch.setdefault(base, {}).setdefault(who, []).append((epoch, m["value"]))
        elif base in readout.KEY_METRICS:
            single.setdefault((m["step"], base), {})[who] = m["value"]
    plots = [report_plots.epoch_svg(name, series) for name, series in sorted(per_epoch.items(), key=_first)]
    plots += [report_plots.instances_svg(name, vals) for (_, name), vals in single.items() if len(vals) > 1]
    return [f'<div class="figure">{p}</div>' for p in plots]


def _first(item: tuple[str, Any]) -> tuple[int, str]:
    """accuracy first, then the other key metrics, then the rest by name."""
    name = item[0]
    return (readout.KEY_METRICS.index(name) if name in readout.KEY_METRICS else len(readout.KEY_METRICS), name)


def _no_plots() -> str:
    return '<p class="note">plots need matplotlib: <code>pip install "dmlc[report]"</code></p>'


# --- steps and logs -------------------------------------------------------------------------------------


def _steps(rows: list[Any], names: dict) -> str:
    head = "<tr><th>step</th><th>state</th><th>attempts</th><th>time</th><th>cache</th><th>note</th></tr>"
    cells = []
    for s in rows:
        took = f"{s['ended'] - s['started']:.2f}s" if s["started"] and s["ended"] else ""
        state = escape(s["state"] or "")
        values = [names.get((s["step"], s["instance"]), s["step"]), s["attempts"], took, s["cache"], s["reason"]]
        tds = [f"<td>{escape(str(values[0]))}</td>", f'<td class="state-{state.split()[0]}">{state}</td>']
        tds += [f"<td>{escape(str(v if v is not None else ''))}</td>" for v in values[1:]]
        cells.append("<tr>" + "".join(tds) + "</tr>")
    return f'<table class="steps">{head}{"".join(cells)}</table>'


def _logs(steps: list[dict[str, Any]], names: dict, attempts: list[Any]) -> str:
    """The tail of each instance's log, failures first where there are more than MAX_ROWS."""
    tries: dict[tuple[str, str], int] = {}
    for a in attempts:
        tries[a["step"], a["instance"]] = tries.get((a["step"], a["instance"]), 0) + 1
    shown = steps if len(steps) <= MAX_ROWS else sorted(steps, key=lambda s: s["state"] != "failed")[:MAX_ROWS]
    out = []
    if len(shown) < len(steps):
        out.append(f'<p class="note">{len(steps) - len(shown)} more: <code>dmlc logs RUN STEP</code></p>')
    for s in shown:
        key = (s["step"], s["instance"])
        tail = readout.log_tail(s["log"], LOG_LINES)
        more = f", {tries[key]} attempts" if tries.get(key, 0) > 1 else ""
        opened = " open" if s["state"] == "failed" else ""
        text = "\n".join(tail) if tail else "(no log: the step did not run here)"
        summary = f"{escape(names[key])} ({escape(s['state'])}{more}): last {len(tail)} line(s)"
        log = f'<div class="note">{escape(s["log"] or "")}</div>' if s["log"] else ""
        out.append(f"<details{opened}><summary>{summary}</summary>{log}<pre>{escape(text)}</pre></details>")
    return "\n".join(out)
