"""Metadata rows (local executor, stage 4): instance and attempt state -> rows for the SQLite store.

Takes an `Instance` (and the `Exit` of an attempt); gives the dicts `Store` writes: the step row
(state, cache decision, memo key and recipe), the attempt row (exit, signal, CPU seconds, peak
memory), output rows (artifacts with digests) and metric rows (numbers in param outputs, and a
row per epoch of a training `history`, named `loss@3`: the store's metrics table is unchanged).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmlc_targets.local.proc import Exit
from dmlc_targets.local.state import Instance

from dmlc.ir.model import Step
from dmlc.semantics import metrics as ui_metrics


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def step_row(run_id: str, inst: Instance) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "step": inst.step,
        "instance": inst.key,
        "item": None if inst.item is None else _json(inst.item),
        "state": inst.state,
        "cache": inst.cache,
        "memo_key": inst.memo_key,
        "recipe": _json(inst.recipe) if inst.recipe is not None else None,
        "reason": inst.reason,
        "attempts": inst.attempt,
        "started": inst.started,
        "ended": inst.ended,
        "log": inst.log,
    }


def attempt_row(run_id: str, inst: Instance, outcome: str, ex: Exit | None) -> dict[str, Any]:
    p = inst.proc
    return {
        "run_id": run_id,
        "step": inst.step,
        "instance": inst.key,
        "attempt": inst.attempt,
        "pid": p.pid if p else None,
        "pid_start": p.start_token if p else None,
        "exit_code": ex.code if ex else None,
        "signal": ex.signal if ex else None,
        "outcome": "timed out" if p and p.timed_out else outcome,
        "started": inst.started,
        "ended": ex.ended if ex else None,
        "cpu_s": ex.cpu_s if ex else None,
        "max_rss_kb": ex.max_rss_kb if ex else None,
        "log": inst.log,
    }


def output_rows(step: Step, outputs: dict[str, Any], digests: dict[str, str], folder: Path) -> list[dict]:
    """One artifact row per output (a param's file counts: lineage follows values too), plus metrics."""
    kinds = step.outputs()
    rows: list[dict[str, Any]] = []
    for name, value in outputs.items():
        path = value if kinds[name] == "artifact" else str(folder / name)
        rows.append({"digest": digests[name], "path": path, "name": name, "kind": kinds[name]})
        if kinds[name] == "param":
            rows += metric_rows(name, value)
    return rows + ui_rows(step, outputs, {r["name"] for r in rows if r.get("metric")})


def ui_rows(step: Step, outputs: dict[str, Any], have: set[str]) -> list[dict[str, Any]]:
    """The numbers the engines' UIs show for this step (`dmlc.semantics.metrics`) that the rows above
    lack under their names: a `select` step's chosen value, as `accuracy` (say) beside `value`."""
    if not isinstance(outputs.get("metrics"), dict):
        return []
    try:
        found = ui_metrics.values(step, outputs["metrics"])
    except (KeyError, TypeError, ValueError):
        return []  # a `metrics` output without them (a step written by hand): nothing more to show
    return [{"metric": True, "name": k, "value": v} for k, v in found.items() if k not in have]


def metric_rows(name: str, value: Any) -> list[dict[str, Any]]:
    """A number in a param output is a metric (an integer too large for a float is not); a `history`
    of per-epoch values ({"epoch": [1, 2, ...], "loss": [...]}) gives a row per epoch: `loss@2`."""
    items = list(value.items()) if isinstance(value, dict) else [(name, value)]
    if isinstance(value, dict) and isinstance(value.get("history"), dict):
        items += epoch_items(value["history"])
    return [{"metric": True, "name": k, "value": float(v)} for k, v in items if _number(v)]


def epoch_items(history: dict[str, Any]) -> list[tuple[str, Any]]:
    """(`name@epoch`, value) for every per-epoch list of equal length to the history's epochs."""
    epochs = history.get("epoch")
    if not isinstance(epochs, list) or not all(_number(e) for e in epochs):
        return []
    return [
        (f"{name}@{int(e)}", v)
        for name, values in history.items()
        if name != "epoch" and isinstance(values, list) and len(values) == len(epochs)
        for e, v in zip(epochs, values, strict=True)
    ]


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and (isinstance(v, float) or abs(v) < 2**1023)


def split_epoch(name: str) -> tuple[str, int | None]:
    """`loss@3` -> ("loss", 3); a plain metric name -> (name, None)."""
    base, at, epoch = name.rpartition("@")
    return (base, int(epoch)) if at and base and epoch.isdigit() else (name, None)
