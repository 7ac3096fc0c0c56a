"""The `select` step: pick the best model(s) of a fan-in by a metric in each `dmlc_metrics.json`.

Candidates below `threshold` (above it for goal = "min") are dropped; ties go to the earlier
candidate. Outputs: artifact `model` (a copy of the winner), or `models/0..top-1` when top > 1, and
param `metrics` recording the choice and why.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dmlc.ir.model import Select
from dmlc.runtime.step_io import UserError, artifact_dir, read_json_file, write_metrics
from dmlc.semantics.spec import StepSpec


def run(spec: StepSpec) -> None:
    cfg: Select = spec.config(Select)
    models = cfg.models
    if not isinstance(models, list) or not models:
        raise UserError("select needs `models`: a non-empty list of model folders (e.g. model[*].model)")
    metric, goal, top, threshold = cfg.metric, cfg.goal, cfg.top, cfg.threshold
    candidates = [candidate(i, p, metric) for i, p in enumerate(models)]
    chosen = choose(candidates, goal, top, threshold)
    write_outputs(spec, chosen, top)
    best = chosen[0]
    reason = f"highest {metric}" if goal == "max" else f"lowest {metric}"
    reason += f" among {len(candidates)} candidate(s)"
    if threshold is not None:
        kept = sum(1 for c in candidates if passes(c["value"], goal, threshold))
        reason += f", {kept} meeting the threshold {threshold}"
    result = {
        "metric": metric,
        "goal": goal,
        "value": best["value"],
        "chosen": best["index"] if top == 1 else [c["index"] for c in chosen],
        "candidates": candidates,
        "reason": reason,
    }
    write_metrics(spec, result)
    print(f"select: candidate {best['index']} ({best['path']}) with {metric} = {best['value']}: {reason}")


def candidate(index: int, path: str, metric: str) -> dict[str, Any]:
    meta_path = Path(path) / "dmlc_metrics.json"
    if not meta_path.exists():
        raise UserError(f"candidate {index} ({path}) has no dmlc_metrics.json")
    meta = read_json_file(meta_path)
    value = meta.get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise UserError(f"candidate {index} ({path}) has no numeric metric {metric!r}")
    return {"index": index, "path": str(path), "value": float(value)}


def passes(value: float, goal: str, threshold: float | None) -> bool:
    if threshold is None:
        return True
    return value >= threshold if goal == "max" else value <= threshold


def choose(candidates: list[dict[str, Any]], goal: str, top: int, threshold: float | None) -> list[dict[str, Any]]:
    """The best `top` candidates; a stable sort keeps ties in their original (fan-out) order."""
    kept = [c for c in candidates if passes(c["value"], goal, threshold)]
    if not kept:
        values = ", ".join(f"{c['value']:g}" for c in candidates)
        raise UserError(f"no candidate meets the threshold {threshold} (values: {values})")
    sign = -1.0 if goal == "max" else 1.0
    return sorted(kept, key=lambda c: sign * c["value"])[:top]


def write_outputs(spec: StepSpec, chosen: list[dict[str, Any]], top: int) -> None:
    if top == 1:
        with artifact_dir(spec.outputs_dir, "model") as out:
            _copy_into(Path(chosen[0]["path"]), out)
        return
    with artifact_dir(spec.outputs_dir, "models") as out:
        for rank, item in enumerate(chosen):
            (out / str(rank)).mkdir()
            _copy_into(Path(item["path"]), out / str(rank))


def _copy_into(src: Path, dest: Path) -> None:
    shutil.copytree(src, dest, dirs_exist_ok=True, symlinks=True)
