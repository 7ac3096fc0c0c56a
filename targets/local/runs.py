"""Local runs for `dmlc status RUN` and `dmlc logs RUN [STEP]` (the local target's `Runs`).

Takes a run id (or a unique prefix of one) and the metadata store under `.dmlc/`; gives the run as
the shared `RunState` (the executor's step states as they are: succeeded, failed, cached, skipped,
upstream failed, ...) and the log file of every attempt. A run whose executor died while it was
"running" is failed ("lost"). The store is only opened when it exists: looking for a run never
creates one. The local target does not submit: its runs start with `dmlc run --local`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dmlc.runs import Connection, LogChunk, RunRecord, RunState, StepState, no_step

RUN_STATES = {"running": "running", "succeeded": "succeeded"}  # failed, interrupted, lost: failed


def _store() -> Any:
    from dmlc_targets.local.runner import STATE_DIR
    from dmlc_targets.local.store import Store

    path = STATE_DIR / "metadata.db"
    return Store(path) if path.is_file() else None


def _label(row: Any) -> str:
    return row["step"] if row["instance"] == "main" else f"{row['step']}[{row['instance']}]"


class LocalRuns:
    def find(self, run: str) -> RunRecord | None:
        store = _store()
        row = store.run(run) if store is not None else None
        if row is None:
            return None
        steps = list(dict.fromkeys(s["step"] for s in store.steps(row["id"])))
        return RunRecord(
            run=row["id"],
            target="local",
            pipeline=row["pipeline"],
            file=row["file"] or "",
            submitted=row["started"] or 0.0,
            url=row["run_dir"] or "",
            steps=steps,
        )

    def status(self, record: RunRecord, conn: Connection) -> RunState:
        from dmlc_targets.local.proc import alive

        store = _store()
        run = store.run(record.run) if store is not None else None
        if run is None:
            return RunState(record, "failed", [], "the run is no longer in the local store")
        status, message = run["status"], ""
        if status == "running" and not alive(run["pid"], run["pid_start"]):
            status, message = "lost", "lost: its executor died (resume it with `dmlc run --resume RUN`)"
        elif status == "interrupted":
            message = "interrupted (resume it with `dmlc run --resume RUN`)"
        steps = [
            StepState(_label(s), s["step"], s["state"], s["attempts"] or 0, s["started"], s["ended"], s["reason"] or "")
            for s in store.steps(run["id"])
        ]
        state = RUN_STATES.get(status, "failed")
        return RunState(record, state, steps, message, run["started"], run["ended"])

    def logs(self, record: RunRecord, step: str | None, conn: Connection) -> Iterator[LogChunk]:
        store = _store()
        attempts = [a for a in store.attempts(record.run) if step is None or a["step"] == step] if store else []
        if step is not None and not attempts:
            raise no_step(record, step)
        tries: dict[str, int] = {}
        for a in attempts:
            tries[_label(a)] = tries.get(_label(a), 0) + 1
        for a in attempts:
            label = _label(a)
            yield LogChunk(label, _read(a["log"]), a["attempt"] if tries[label] > 1 else 0)


def _read(path: str | None) -> str:
    if not path:
        return ""
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"(log {path} cannot be read: {exc.strerror})\n"
