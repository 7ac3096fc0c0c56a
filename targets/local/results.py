"""The results of a local run as plain data (for `dmlc.api.run`): the store's rows and each instance's
`result.json` -> {id, pipeline, status, exit_code, steps: [...], metrics: [...]}.

Takes the store and a run id; gives, per step instance, its state, the reason, attempts, item, log path
and output values (artifact outputs as paths), and the run's metric rows. Reads only: nothing here
changes a run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dmlc_targets.local.store import Store


def results(store: Store, run_id: str) -> dict[str, Any]:
    run = store.run(run_id)
    if run is None:
        raise LookupError(f"no run `{run_id}` in {store.path}")
    folder = Path(run["run_dir"])
    return {
        "id": run["id"],
        "pipeline": run["pipeline"],
        "status": run["status"],
        "exit_code": run["exit_code"],
        "steps": [_step(row, folder) for row in store.steps(run_id)],
        "metrics": [{k: row[k] for k in ("step", "instance", "name", "value")} for row in store.metrics(run_id)],
    }


def _step(row: Any, folder: Path) -> dict[str, Any]:
    return {
        "step": row["step"],
        "instance": row["instance"],
        "item": json.loads(row["item"]) if row["item"] is not None else None,
        "state": row["state"],
        "reason": row["reason"],
        "attempts": row["attempts"],
        "log": row["log"],
        "outputs": _outputs(folder / "steps" / row["step"] / row["instance"] / "result.json"),
    }


def _outputs(result: Path) -> dict[str, Any]:
    try:
        data = json.loads(result.read_text())
    except (OSError, ValueError):
        return {}  # not finished (failed, skipped), or a marker torn by a crash
    outputs = data.get("outputs") if isinstance(data, dict) else None
    return outputs if isinstance(outputs, dict) else {}
