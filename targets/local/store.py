"""The metadata store (local executor, stage 4): SQLite records of runs, steps, attempts, artifacts, metrics.

Takes events from the executor and gives the rows that `dmlc runs list|show|lineage` and
`dmlc cache explain` print. Default path `.dmlc/metadata.db`, or `metadata { store = PATH }`.
WAL mode, so two runs sharing one store each write without blocking the other for long.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  id TEXT PRIMARY KEY, pipeline TEXT, file TEXT, params TEXT, run_dir TEXT,
  status TEXT, exit_code INTEGER, started REAL, ended REAL, pid INTEGER, pid_start TEXT);
CREATE TABLE IF NOT EXISTS steps (
  run_id TEXT, step TEXT, instance TEXT, item TEXT, state TEXT, cache TEXT, memo_key TEXT,
  recipe TEXT, reason TEXT, attempts INTEGER, started REAL, ended REAL, log TEXT,
  PRIMARY KEY (run_id, step, instance));
CREATE TABLE IF NOT EXISTS attempts (
  run_id TEXT, step TEXT, instance TEXT, attempt INTEGER, pid INTEGER, pid_start TEXT,
  exit_code INTEGER, signal INTEGER, outcome TEXT, started REAL, ended REAL,
  cpu_s REAL, max_rss_kb INTEGER, log TEXT, PRIMARY KEY (run_id, step, instance, attempt));
CREATE TABLE IF NOT EXISTS artifacts (
  digest TEXT, path TEXT, name TEXT, kind TEXT, run_id TEXT, step TEXT, instance TEXT, created REAL);
CREATE TABLE IF NOT EXISTS inputs (
  run_id TEXT, step TEXT, instance TEXT, ref TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT, step TEXT, instance TEXT, name TEXT, value REAL);
CREATE INDEX IF NOT EXISTS artifacts_digest ON artifacts (digest);
CREATE INDEX IF NOT EXISTS artifacts_producer ON artifacts (run_id, step, instance);
"""


def _retry_locked(action: Any, seconds: float = 30.0) -> Any:
    """Switching a new store to WAL (and the first write) can meet "database is locked" at once,
    without SQLite's busy wait, when two runs open the same new store together: wait and retry."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return action()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


SCHEMA_VERSION = 1  # bump when SCHEMA changes; an older store is moved aside, never misread


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = self._open(path)
        if not self._create_or_check():
            self.db.close()
            aside = path.with_name(f"{path.name}.v{int(time.time())}.old")
            os.replace(path, aside)
            for suffix in ("-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            print(f"note: metadata store {path} has an older layout; moved it to {aside}", file=sys.stderr)
            self.db = self._open(path)
            self._create_or_check()

    def _create_or_check(self) -> bool:
        """Create the tables and stamp the version in one write transaction, so a second run opening
        the same new store never sees tables without a version; False if the store is older."""
        _retry_locked(lambda: self.db.execute("BEGIN IMMEDIATE"))
        try:
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            tables = self.db.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
            if tables and version != SCHEMA_VERSION:
                return False
            for statement in filter(str.strip, SCHEMA.split(";")):
                self.db.execute(statement)
            self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return True
        finally:
            self.db.execute("COMMIT")

    @staticmethod
    def _open(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        _retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def close(self) -> None:
        self.db.close()

    def _put(self, table: str, row: dict[str, Any], replace: bool = False) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self.db.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", list(row.values()))

    # --- writes ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, pipeline: str, file: str, params: dict[str, Any], run_dir: str) -> None:
        row = {"id": run_id, "pipeline": pipeline, "file": file, "params": json.dumps(params, sort_keys=True)}
        row |= {"run_dir": run_dir, "status": "running", "exit_code": None, "started": time.time(), "ended": None}
        self._put("runs", row | _me(), replace=True)

    def resume_run(self, run_id: str) -> None:
        me = _me()
        sql = "UPDATE runs SET status='running', exit_code=NULL, ended=NULL, pid=?, pid_start=? WHERE id=?"
        self.db.execute(sql, (me["pid"], me["pid_start"], run_id))

    def finish_run(self, run_id: str, status: str, exit_code: int) -> None:
        sql = "UPDATE runs SET status=?, exit_code=?, ended=? WHERE id=?"
        self.db.execute(sql, (status, exit_code, time.time(), run_id))

    def put_step(self, row: dict[str, Any]) -> None:
        self._put("steps", row, replace=True)

    def put_attempt(self, row: dict[str, Any]) -> None:
        self._put("attempts", row, replace=True)

    def put_outputs(self, run_id: str, step: str, instance: str, rows: list[dict[str, Any]]) -> None:
        self.db.execute("BEGIN")
        self.db.execute("DELETE FROM artifacts WHERE run_id=? AND step=? AND instance=?", (run_id, step, instance))
        self.db.execute("DELETE FROM metrics WHERE run_id=? AND step=? AND instance=?", (run_id, step, instance))
        now = time.time()
        for row in rows:
            base = {"run_id": run_id, "step": step, "instance": instance}
            if row.get("metric"):
                self._put("metrics", base | {"name": row["name"], "value": row["value"]})
            else:
                self._put(
                    "artifacts", base | {k: row[k] for k in ("digest", "path", "name", "kind")} | {"created": now}
                )
        self.db.execute("COMMIT")

    def put_inputs(self, run_id: str, step: str, instance: str, inputs: dict[str, str]) -> None:
        self.db.execute("DELETE FROM inputs WHERE run_id=? AND step=? AND instance=?", (run_id, step, instance))
        for ref, digest in inputs.items():
            row = {"run_id": run_id, "step": step, "instance": instance, "ref": ref, "digest": digest}
            self._put("inputs", row)

    # --- reads ----------------------------------------------------------------------------------

    def runs(self, limit: int = 50) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM runs ORDER BY started DESC LIMIT ?", (limit,)).fetchall()

    def run(self, run_id: str) -> sqlite3.Row | None:
        row = self.db.execute("SELECT * FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:  # a unique prefix is enough
            rows = self.db.execute("SELECT * FROM runs WHERE id LIKE ?", (run_id + "%",)).fetchall()
            row = rows[0] if len(rows) == 1 else None
        return row

    def latest_unfinished(self, pipeline: str | None = None) -> sqlite3.Row | None:
        sql = "SELECT * FROM runs WHERE status != 'succeeded'"
        args: tuple[Any, ...] = ()
        if pipeline:
            sql, args = sql + " AND pipeline=?", (pipeline,)
        return self.db.execute(sql + " ORDER BY started DESC LIMIT 1", args).fetchone()

    def steps(self, run_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM steps WHERE run_id=? ORDER BY started", (run_id,)).fetchall()

    def attempts(self, run_id: str) -> list[sqlite3.Row]:
        sql = "SELECT * FROM attempts WHERE run_id=? ORDER BY started"
        return self.db.execute(sql, (run_id,)).fetchall()

    def running_attempts(self, run_id: str) -> list[sqlite3.Row]:
        sql = "SELECT * FROM attempts WHERE run_id=? AND outcome='running'"
        return self.db.execute(sql, (run_id,)).fetchall()

    def metrics(self, run_id: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM metrics WHERE run_id=?", (run_id,)).fetchall()

    def artifacts_like(self, what: str) -> list[sqlite3.Row]:
        """Artifacts whose digest starts with `what` (with or without `sha256:`) or whose path is `what`."""
        prefix = what if what.startswith("sha256:") else "sha256:" + what
        sql = "SELECT * FROM artifacts WHERE digest LIKE ? OR path=? ORDER BY created DESC"
        return self.db.execute(sql, (prefix + "%", what)).fetchall()

    def inputs_of(self, run_id: str, step: str, instance: str) -> list[sqlite3.Row]:
        sql = "SELECT * FROM inputs WHERE run_id=? AND step=? AND instance=?"
        return self.db.execute(sql, (run_id, step, instance)).fetchall()

    def producers(self, digest: str) -> list[sqlite3.Row]:
        return self.db.execute("SELECT * FROM artifacts WHERE digest=? ORDER BY created", (digest,)).fetchall()

    def last_step(self, pipeline: str, step: str) -> list[sqlite3.Row]:
        """The most recent records of `step` in runs of `pipeline` (one per instance)."""
        sql = (
            "SELECT s.* FROM steps s JOIN runs r ON r.id = s.run_id WHERE r.pipeline=? AND s.step=? "
            "AND s.recipe IS NOT NULL ORDER BY r.started DESC, s.instance"
        )
        rows = self.db.execute(sql, (pipeline, step)).fetchall()
        if not rows:
            return []
        newest = rows[0]["run_id"]
        return [r for r in rows if r["run_id"] == newest]


def _me() -> dict[str, Any]:
    """This executor's pid and process start time: tells a live run from one whose executor died."""
    from dmlc_targets.local.proc import start_token

    return {"pid": os.getpid(), "pid_start": start_token(os.getpid())}
