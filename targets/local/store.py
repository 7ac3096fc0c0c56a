"""The metadata store (local executor, stage 4): SQLite records of runs, steps, attempts, artifacts, metrics.

Takes events from the executor and gives the rows that `dmlc runs list|show|lineage` and
`dmlc cache explain` print. Default path `.dmlc/metadata.db`, or `metadata { store = PATH }`.
WAL mode, so two runs sharing one store each write without blocking the other for long.
dmlc stamps the stores it creates (`PRAGMA application_id`); an existing file that is neither stamped
nor an older dmlc store (only dmlc's tables) is refused with DML202 after a read-only look, and is
never switched to WAL, written, or moved aside. Any failure of SQLite or of the disk, when the store
is opened or at any write or read later, is a coded error naming the store (DML202 damaged, DML203
full disk, DML201 read-only or otherwise unusable), never a traceback; a run whose executor stops on
one is marked failed where the store still takes that write (`abandon`).
"""

from __future__ import annotations

import errno
import functools
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from dmlc.atomic import NO_SPACE
from dmlc.diagnostics.catalogue import DML201, DML202, DML203
from dmlc.diagnostics.model import Diagnostic, DmlError, Label

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


RESERVE, RESERVE_BYTES = "-reserve", 64 << 10  # a file kept beside the store (see Store.abandon)
SCHEMA_VERSION = 1  # bump when SCHEMA changes; an older store is moved aside, never misread
APPLICATION_ID = 0x646D6C63  # "dmlc": stamped into every store dmlc creates (PRAGMA application_id)
TABLES = frozenset(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))  # what an older dmlc store may hold


C = TypeVar("C", bound=type)


def _guarded(cls: C) -> C:
    """Every public method of `cls` turns a failure of SQLite or of the disk into a coded error."""
    for name, method in list(vars(cls).items()):
        if callable(method) and not name.startswith("_"):
            setattr(cls, name, _guard(method))
    return cls


def _guard(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def guarded(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, OSError) as exc:
            if isinstance(exc, sqlite3.DatabaseError) and not _storage_failure(exc):
                raise  # a constraint or a misuse: a dmlc bug, not the disk
            self._rollback()
            raise _store_error(self.path, exc) from None

    return guarded


@_guarded
class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.current: str | None = None  # the run this executor is writing, until it is finished
        try:
            if path.is_dir():
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
            path.parent.mkdir(parents=True, exist_ok=True)
            _refuse_foreign(path)  # read-only look first: a database dmlc did not create is never touched
            self._open_current(path)
        except (sqlite3.DatabaseError, OSError) as exc:
            raise _store_error(path, exc) from None

    def _open_current(self, path: Path) -> None:
        """Open a store of this layout: created, checked, or (an older dmlc layout) moved aside first."""
        if self._connect(path):
            return
        aside = path.with_name(f"{path.name}.v{int(time.time())}.old")
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        print(f"note: metadata store {path} has an older layout; moved it to {aside}", file=sys.stderr)
        self._connect(path)

    def _connect(self, path: Path) -> bool:
        """Open `path` as self.db and create or check its tables; False (closed) if its layout is older."""
        self.db = sqlite3.connect(str(path), timeout=30, isolation_level=None)
        try:
            self._configure(self.db)
            current = self._create_or_check()
        except BaseException:
            self.db.close()
            raise
        if not current:
            self.db.close()
        return current

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
            self.db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            return True
        finally:
            self.db.execute("COMMIT")

    @staticmethod
    def _configure(db: sqlite3.Connection) -> None:
        db.row_factory = sqlite3.Row
        _retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
        db.execute("PRAGMA synchronous=NORMAL")

    def close(self) -> None:
        if hasattr(self, "db"):
            self.db.close()

    def _rollback(self) -> None:
        """Leave no transaction open after a failed write (a later write would meet it), quietly."""
        try:
            if getattr(self, "db", None) is not None and self.db.in_transaction:
                self.db.rollback()
        except sqlite3.Error:
            pass

    def _put(self, table: str, row: dict[str, Any], replace: bool = False) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self.db.execute(f"{verb} INTO {table} ({cols}) VALUES ({marks})", list(row.values()))

    # --- writes ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, pipeline: str, file: str, params: dict[str, Any], run_dir: str) -> None:
        row = {"id": run_id, "pipeline": pipeline, "file": file, "params": json.dumps(params, sort_keys=True)}
        row |= {"run_dir": run_dir, "status": "running", "exit_code": None, "started": time.time(), "ended": None}
        self.current = run_id
        self._reserve()
        self._put("runs", row | _me(), replace=True)

    def resume_run(self, run_id: str, params: dict[str, Any]) -> None:
        """Mark a run running again, with the params this session runs it with (a `--param` given to
        `--resume` changes them: later resumes and `runs show` must see the new values)."""
        me = _me()
        sql = "UPDATE runs SET status='running', exit_code=NULL, ended=NULL, pid=?, pid_start=?, params=? WHERE id=?"
        self.current = run_id
        self._reserve()
        self.db.execute(sql, (me["pid"], me["pid_start"], json.dumps(params, sort_keys=True), run_id))

    def finish_run(self, run_id: str, status: str, exit_code: int) -> None:
        sql = "UPDATE runs SET status=?, exit_code=?, ended=? WHERE id=?"
        self.db.execute(sql, (status, exit_code, time.time(), run_id))
        self.current = None

    def abandon(self, status: str = "failed", exit_code: int = 1) -> bool:
        """Mark the run being written as ended (its executor stops on an error), if the store still
        takes a write; False when it does not (a full disk): its dead executor's pid then tells."""
        if self.current is None:
            return True
        try:
            Path(f"{self.path}{RESERVE}").unlink(missing_ok=True)  # room for this last write on a full disk
            self.finish_run(self.current, status, exit_code)
        except (DmlError, OSError):
            note = f"note: run {self.current} could not be marked {status} in {self.path}"
            print(f"{note}; `dmlc runs list` shows it lost", file=sys.stderr)
            return False
        return True

    def _reserve(self) -> None:
        """Keep RESERVE_BYTES next to the store, freed by `abandon` so that a full disk still lets it
        record the end of the run; best effort (no room for it: no reserve)."""
        reserve = Path(f"{self.path}{RESERVE}")
        try:
            if not reserve.exists() or reserve.stat().st_size < RESERVE_BYTES:
                reserve.write_bytes(b"\0" * RESERVE_BYTES)
        except OSError:
            reserve.unlink(missing_ok=True)

    def put_step(self, row: dict[str, Any]) -> None:
        self._put("steps", row, replace=True)

    def put_attempt(self, row: dict[str, Any]) -> None:
        self._put("attempts", row, replace=True)

    def begin(self) -> None:
        """Open a write transaction (the executor's writes of one scheduling round go in one commit:
        ~9 writes per step, each its own commit, were a third of the executor's own time)."""
        if not self.db.in_transaction:
            self.db.execute("BEGIN")

    def commit(self) -> None:
        if self.db.in_transaction:
            self.db.execute("COMMIT")

    def put_outputs(self, run_id: str, step: str, instance: str, rows: list[dict[str, Any]]) -> None:
        own = not self.db.in_transaction  # inside the round's transaction: one with it
        if own:
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
        if own:
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
        if row is None and run_id:  # a unique literal prefix is enough (not LIKE: `%` and `_` are no wildcards)
            rows = self.db.execute("SELECT * FROM runs WHERE substr(id, 1, ?) = ?", (len(run_id), run_id)).fetchall()
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
        sql = "SELECT * FROM artifacts WHERE substr(digest, 1, ?) = ? OR path=? ORDER BY created DESC"
        return self.db.execute(sql, (len(prefix), prefix, what)).fetchall()

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


def _refuse_foreign(path: Path) -> None:
    """DML202 unless `path` is missing, empty, or a dmlc store: stamped, or an older one holding only
    dmlc's tables. Only reads: the file, its -wal and its -shm are never changed."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            why = f"`{path}` is not a SQLite database, so not a dmlc metadata store; dmlc leaves it as it is"
            raise DmlError([Diagnostic(DML202, why, Label(None), help=STORE_HELP)])
    app_id, version, names = _probe(path)
    pristine = not names and version == 0  # a new store another run is creating right now
    if app_id != APPLICATION_ID and not (app_id == 0 and (pristine or (names and names <= TABLES))):
        raise _foreign(path)


def _probe(path: Path) -> tuple[int, int, set[str]]:
    """application_id, user_version and table names, read without writing: `immutable` (no lock, no
    side files) when there is no -wal to read, else read-only (which may add a -shm, never edits)."""
    wal = Path(f"{path}-wal").exists()
    db = sqlite3.connect(f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}", uri=True, timeout=30)
    try:
        app_id = db.execute("PRAGMA application_id").fetchone()[0]
        version = db.execute("PRAGMA user_version").fetchone()[0]
        rows = db.execute("SELECT DISTINCT tbl_name FROM sqlite_master").fetchall()
    finally:
        db.close()
    return app_id, version, {r[0] for r in rows if not r[0].startswith("sqlite_")}


def _foreign(path: Path) -> DmlError:
    why = f"`{path}` is not a dmlc metadata store; dmlc never modifies a database it did not create"
    return DmlError([Diagnostic(DML202, why, Label(None), help=STORE_HELP)])


STORE_HELP = (
    "point `metadata { store = ... }` at a new file (dmlc creates it), or move this file away "
    "if it is the default `.dmlc/metadata.db`"
)


def _storage_failure(exc: sqlite3.DatabaseError) -> bool:
    """SQLite failed on the file (damaged, full, read-only, locked, I/O), not on dmlc's use of it."""
    return type(exc) in (sqlite3.DatabaseError, sqlite3.OperationalError)


def _store_error(path: Path, exc: sqlite3.DatabaseError | OSError) -> DmlError:
    """A store SQLite or the disk refuses: DML202 (not a database, damaged), DML203 (disk full), else
    DML201 (read-only, a folder, locked, an I/O error), each naming the store."""
    reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
    if "not a database" in reason or "malformed" in reason:
        why = f"the metadata store `{path}` is damaged or not dmlc's ({reason}); dmlc leaves it as it is"
        return DmlError([Diagnostic(DML202, why, Label(None), help=STORE_HELP)])
    if "disk is full" in reason or getattr(exc, "errno", None) in NO_SPACE or _no_space(path):
        help_ = "free some space on that device (`df -h`), or point `metadata { store }` at another one"
        diag = Diagnostic(DML203, f"cannot write the metadata store `{path}`: {reason}", Label(None), help=help_)
        return DmlError([diag])
    diag = Diagnostic(DML201, f"cannot use the metadata store `{path}`: {reason}", Label(None), help=_help(path))
    return DmlError([diag])


def _no_space(path: Path) -> bool:
    try:
        return os.statvfs(path.parent).f_bavail == 0
    except OSError:
        return False


def _help(path: Path) -> str:
    """What to do about a store dmlc cannot use, by what is at its path."""
    if path.is_dir():
        return f"`{path}` is a folder: move it away, or point `metadata {{ store }}` at a file"
    folder = path.parent
    try:
        read_only = bool(os.statvfs(folder).f_flag & os.ST_RDONLY) or not os.access(folder, os.W_OK)
    except OSError:
        return f"the folder `{folder}` is missing or unreadable: create it, or point `metadata {{ store }}` elsewhere"
    if read_only or (path.exists() and not os.access(path, os.W_OK)):
        return "the store or its folder is read-only: make it writable, or point `metadata { store }` elsewhere"
    return "check that you can write the store and its folder (and its -wal and -shm files)"


def _me() -> dict[str, Any]:
    """This executor's pid and process start time: tells a live run from one whose executor died."""
    from dmlc_targets.local.proc import start_token

    return {"pid": os.getpid(), "pid_start": start_token(os.getpid())}
