"""What a person reads about a run (local executor): instance labels by item, the results that matter,
the tail of a failed step's log.

Takes the steps of a run as plain dicts (`step`, `instance`, `item`, `state`, `reason`, `log`,
`outputs`: the shape of `results.results`, or `from_instances` for a live executor); gives labels
such as `model[mlp]` (an instance named by its item where the item is a short name), the highlights
of a run (the model a `select` step chose and by which metric, each instance's key metrics, serving
endpoints) as (heading, text) lines, and the last lines of a log with its error. Used by the end of
`dmlc run`, by `dmlc runs show` and by `dmlc runs report`, so the three say the same thing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

MAX_ITEM = 32  # a longer item text is no label: the index is
KEY_METRICS = ("accuracy", "loss", "error", "precision", "recall", "f1", "auc", "mae", "mse", "rmse")
BOOKKEEPING = {"epochs", "workers", "restarts_used", "seconds", "resumed_from_epoch", "n"}
BOOKKEEPING |= {"train_loss_first", "train_loss_last"}  # the history has every epoch's loss
TAIL_LINES = 12
MAX_LINES = 12  # metric lines of one step, candidates of one selection: the rest are counted
MAX_TAILS = 3  # failed instances whose log tail is shown (every failure still gets its line)
TAIL_BYTES = 64 << 10
ERROR_LINE = re.compile(r"Traceback|\b\w*(Error|Exception)\b|\berror\b|\bfailed\b|\bFATAL\b", re.IGNORECASE)


def item_text(item: Any) -> str | None:
    """A short, unambiguous name for an instance from its item: a string that is not a number, or a
    small map as `k=v,k=v`; None where the index reads better (numbers, lists, long values)."""
    if isinstance(item, str):
        text = item.strip()
        ok = text and not _numeric(text) and "\n" not in text and "]" not in text
        return text if ok and len(text) <= MAX_ITEM else None
    if isinstance(item, dict) and item and all(_scalar(v) for v in item.values()):
        text = ",".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in item.items())
        return text if len(text) <= MAX_ITEM and "]" not in text else None
    return None


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def labels(rows: Iterable[tuple[str, str, Any]]) -> dict[tuple[str, str], str]:
    """(step, instance key, item) -> `step`, `step[item]`, or `step[index]` where items do not name
    the instances of a step one to one."""
    by_step: dict[str, list[tuple[str, Any]]] = {}
    for step, key, item in rows:
        by_step.setdefault(step, []).append((key, item))
    out: dict[tuple[str, str], str] = {}
    for step, insts in by_step.items():
        texts = [item_text(item) for _, item in insts]
        named = None not in texts and len(set(texts)) == len(texts)
        for (key, _), text in zip(insts, texts, strict=True):
            out[step, key] = step if key == "main" else f"{step}[{text if named else key}]"
    return out


def step_labels(steps: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    return labels((s["step"], s["instance"], s.get("item")) for s in steps)


def from_instances(instances: Iterable[Any]) -> list[dict[str, Any]]:
    """The executor's instances in the shape of `results.results`' steps."""
    return [
        {
            "step": i.step,
            "instance": i.key,
            "item": i.item,
            "state": i.state,
            "reason": i.reason,
            "attempts": i.attempt,
            "log": i.log,
            "outputs": dict(i.outputs),
        }
        for i in instances
    ]


# --- the results that matter ------------------------------------------------------------------------


def highlights(steps: list[dict[str, Any]], served_now: bool = False) -> list[tuple[str, str]]:
    """(heading, text) lines: the models each `select` chose, the key metrics of each instance (at most
    MAX_LINES per step), and where each serve step served (`served_now`: still serving after the run)."""
    names = step_labels(steps)
    paths = _output_paths(steps, names)
    out: list[tuple[str, str]] = []
    for s in steps:
        metrics = s["outputs"].get("metrics")
        if _is_selection(metrics):
            out += _selection(s, metrics, paths, names)
    per_step: dict[str, int] = {}
    for s in steps:
        metrics = s["outputs"].get("metrics")
        shown = key_metrics(metrics) if isinstance(metrics, dict) and not _is_selection(metrics) else {}
        if shown:
            per_step[s["step"]] = per_step.get(s["step"], 0) + 1
            if per_step[s["step"]] <= MAX_LINES:
                out.append(("metrics", f"{names[s['step'], s['instance']]}: {_pairs(shown)}"))
    out += [
        ("metrics", f"{step}: {n - MAX_LINES} more (dmlc runs show)") for step, n in per_step.items() if n > MAX_LINES
    ]
    for s in steps:
        endpoint = s["outputs"].get("endpoint")
        if isinstance(endpoint, str) and endpoint:
            when = "serving" if served_now else "served (stopped with the run; --keep-serving keeps it up)"
            out.append(("endpoint", f"{names[s['step'], s['instance']]} {when} at {endpoint}"))
    return out


def grouped(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The lines with each heading shown once, on the first line of its group."""
    return [(h if n == 0 or lines[n - 1][0] != h else "", text) for n, (h, text) in enumerate(lines)]


def _is_selection(metrics: Any) -> bool:
    return isinstance(metrics, dict) and {"metric", "value", "chosen", "candidates"} <= set(metrics)


def _selection(s: dict[str, Any], m: dict[str, Any], paths: dict[str, str], names: dict) -> list:
    cands = [c for c in m["candidates"] if isinstance(c, dict)]
    who = {c.get("index"): candidate_label(c, paths, names) for c in cands}
    chosen = m["chosen"] if isinstance(m["chosen"], list) else [m["chosen"]]
    picked = ", ".join(str(who.get(c, f"candidate {c}")) for c in chosen)
    head = f"{names[s['step'], s['instance']]}: {picked} by {m['metric']} = {_num(m['value'])}"
    lines = [("selected", head + (f" ({m['reason']})" if m.get("reason") else ""))]
    if len(cands) > 1:
        listed = ", ".join(f"{who[c.get('index')]} {_num(c.get('value'))}" for c in cands[:MAX_LINES])
        more = f", and {len(cands) - MAX_LINES} more" if len(cands) > MAX_LINES else ""
        lines.append(("candidates", listed + more))
    return lines


STEP_PATH = re.compile(r"/steps/([^/]+)/([^/]+)/outputs/")


def _output_paths(steps: list[dict[str, Any]], names: dict) -> dict[str, str]:
    """The path of every artifact output -> the label of the instance that made it."""
    return {v: names[s["step"], s["instance"]] for s in steps for v in s["outputs"].values() if isinstance(v, str)}


def candidate_label(cand: dict[str, Any], paths: dict[str, str], names: dict) -> str:
    """The instance whose output folder a `select` candidate is (by path), else `candidate N`."""
    path = str(cand.get("path", ""))
    if path in paths:
        return paths[path]
    found = STEP_PATH.search(path)
    if found and (found[1], found[2]) in names:
        return names[found[1], found[2]]
    return f"candidate {cand.get('index')}"


def key_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a metrics output worth a glance: the usual ones first, bookkeeping left out."""
    nums = {k: v for k, v in metrics.items() if _number(v) and k not in BOOKKEEPING}
    first = {k: nums[k] for k in KEY_METRICS if k in nums}
    return first | {k: nums[k] for k in sorted(nums) if k not in first}


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _pairs(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {_num(v)}" for k, v in values.items())


def metric_table(metrics: list[dict], names: dict[tuple[str, str], str], order: list[str]) -> list[list[str]]:
    """[label, metric, value] sorted by step (in `order`), instance and name; `loss@1..n` as one
    `loss (per epoch)` row."""
    from dmlc_targets.local.records import split_epoch

    rank = {step: n for n, step in enumerate(dict.fromkeys(order))}
    single: dict[tuple[int, str, str], str] = {}
    series: dict[tuple[int, str, str], list[tuple[int, float]]] = {}
    for m in metrics:
        who = (rank.get(m["step"], len(rank)), names.get((m["step"], m["instance"]), m["step"]))
        base, epoch = split_epoch(m["name"])
        if epoch is None:
            single[(*who, base)] = f"{m['value']:g}"
        else:
            series.setdefault((*who, f"{base} (per epoch)"), []).append((epoch, m["value"]))
    for key, points in series.items():
        single[key] = " ".join(f"{v:.4g}" for _, v in sorted(points))
    return [[who, name, value] for (_, who, name), value in sorted(single.items())]


# --- logs ---------------------------------------------------------------------------------------------


def log_tail(path: str | None, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log (its last 64 KiB read); where none of them reads like an error,
    the last line that does comes first, then `...`."""
    if not path:
        return []
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - TAIL_BYTES))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    every = [line.rstrip()[:300] for line in text.splitlines() if line.strip()]
    if size > TAIL_BYTES:
        every = every[1:]  # the first line read is likely cut
    tail = every[-lines:]
    if any(ERROR_LINE.search(line) for line in tail):
        return tail
    earlier = [line for line in every[:-lines] if ERROR_LINE.search(line)]
    return [earlier[-1], "..."] + tail if earlier else tail
