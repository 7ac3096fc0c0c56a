"""Run folders (local executor, stage 4): where a run keeps attempts, promoted outputs and commit markers.

Layout under `.dmlc/runs/<run-id>/`: `run.json` (file, params), `volumes/<name>/`, and per instance
`steps/<step>/<instance>/{attempt-N/{outputs/,log.txt,spec.json}, outputs/, work/, result.json}`.
An attempt writes into its own folder; on success its `outputs/` is renamed to the instance's
`outputs/` and only then `result.json` is written atomically. `result.json` is the commit marker:
resume treats an instance as finished only if it exists, so a crash never passes off half an output.
`disk_error` is what the run reports when its folder cannot be written (full disk, read-only).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

from dmlc.atomic import NO_SPACE, write_text
from dmlc.diagnostics.catalogue import DML201, DML203
from dmlc.diagnostics.model import Diagnostic, DmlError, Label


def new_run_id(pipeline: str) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime())
    return f"{pipeline}-{stamp}-{secrets.token_hex(2)}"


class RunDir:
    def __init__(self, root: Path, run_id: str) -> None:
        self.run_id = run_id
        self.path = (root / "runs" / run_id).resolve()  # steps get absolute paths
        self._made: set[Path] = set()

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_text(self.path / "run.json", json.dumps(meta, sort_keys=True, indent=1))

    def read_meta(self) -> dict[str, Any]:
        return json.loads((self.path / "run.json").read_text())

    def volume(self, name: str) -> Path:
        path = self.path / "volumes" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def instance(self, step: str, key: str) -> Path:
        return self.path / "steps" / step / key

    def attempt(self, step: str, key: str, attempt: int) -> Path:
        path = self.instance(step, key) / f"attempt-{attempt}"
        if path.exists():  # left by an executor that died mid-attempt: start clean
            shutil.rmtree(path)
        if path.parent.parent not in self._made:  # one mkdir less per instance of a wide fan-out
            path.parent.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent.parent)
        path.parent.mkdir(exist_ok=True)
        path.mkdir()
        (path / "outputs").mkdir()
        return path

    def next_attempt(self, step: str, key: str, fresh: bool) -> int:
        """1 + the highest attempt number already on disk (attempt numbers keep counting across resumes)."""
        if fresh:  # a new run has nothing on disk yet
            return 1
        folder = self.instance(step, key)
        found = [int(p.name.split("-")[1]) for p in folder.glob("attempt-*")] if folder.exists() else []
        return max(found, default=0) + 1

    def result(self, step: str, key: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.instance(step, key) / "result.json").read_text())
        except (OSError, ValueError):
            return None

    def promote(self, step: str, key: str, staged: Path) -> Path:
        """Move a finished attempt's outputs folder to the instance's `outputs/` (one rename)."""
        final = self.instance(step, key) / "outputs"
        if final.exists():  # from a crash between rename and commit: not committed, so not trusted
            shutil.rmtree(final)
        os.rename(staged, final)
        return final

    def commit(self, step: str, key: str, result: dict[str, Any]) -> None:
        """Write the marker last, by rename. No fsync: the step's own files are not synced either, and a
        marker torn by a power cut does not parse, which counts as "not done" (redone on resume)."""
        final = self.instance(step, key) / "result.json"
        tmp = final.with_name(".result.json.tmp")
        tmp.write_text(json.dumps(result, sort_keys=True, indent=1))
        os.replace(tmp, final)


def disk_error(exc: OSError) -> DmlError:
    """A run's file that could not be written: DML203 for a full disk, else DML201; names the path."""
    where = f"`{exc.filename}`" if exc.filename else "the run's files under `.dmlc/`"
    reason = exc.strerror or str(exc)
    if exc.errno in NO_SPACE:
        help_ = "free some space on that device (`df -h`; `dmlc cache prune --older-than 7d` frees cached results)"
        return DmlError([Diagnostic(DML203, f"cannot write {where}: {reason}", Label(None), help=help_)])
    help_ = "run where you can write `.dmlc/` (it is read-only or not yours here), or make it writable"
    return DmlError([Diagnostic(DML201, f"cannot write {where}: {reason}", Label(None), help=help_)])
