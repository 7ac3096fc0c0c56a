"""Faults of the local executor's store and disk (issue 12): never DML900, never a run left `running`.

The metadata store (`.dmlc/metadata.db`) garbage, truncated, damaged inside, a folder, read-only or on
a full disk; the run folder and the cache unwritable; cache entries of the wrong shape. A storage
failure is a coded error naming the path (DML201 unusable or read-only, DML202 damaged, DML203 full),
the run is marked failed where the store still takes that write, and a cache that cannot be written
only costs the cache: the step's success stands, with a warning. Each fault is simulated everywhere
(SQLite or the file system made to fail by monkeypatching), and for real where this machine lets
the test mount a small or read-only tmpfs (root in a mount namespace; skipped with the reason
otherwise). Add a case by adding a row.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dmlc.cli import main
from tests.executor.executor_support import Project
from tests.executor.test_memo_resume import memo_pipeline, states

STORE = Path(".dmlc/metadata.db")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    monkeypatch.chdir(tmp_path)
    project = Project(tmp_path)
    memo_pipeline(project)
    return project


def dmlc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`dmlc ARGV` in this process: exit code and stdout + stderr, which never show a dmlc bug."""
    code = main(list(argv))
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "DML900" not in text and "Traceback" not in text, text
    return code, text


def run(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    return dmlc(capsys, "run", "p.dml", "--local")


def statuses(path: Path = STORE) -> list[str] | None:
    """The status of every run in the store, read without writing; None when it cannot be read."""
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return [r[0] for r in db.execute("SELECT status FROM runs ORDER BY started")]
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return None


def checkpointed(capsys: pytest.CaptureFixture[str]) -> bytes:
    """Run once, fold the WAL into the store and remove it: the store is one file; its bytes."""
    assert run(capsys)[0] == 0
    db = sqlite3.connect(str(STORE))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    for side in ("-wal", "-shm"):
        Path(f"{STORE}{side}").unlink(missing_ok=True)
    return STORE.read_bytes()


# --- a store that is not one -----------------------------------------------------------------------


def _garbage(data: bytes) -> bytes:
    return os.urandom(5000)


def _header_then_garbage(data: bytes) -> bytes:
    return data[:16] + random.Random(1).randbytes(5000)


def _truncated(size: int) -> Callable[[bytes], bytes]:
    return lambda data: data[:size]


DAMAGED = {  # the store's bytes after one run -> what is left on disk; all DML202, left as they are
    "garbage": _garbage,
    "SQLite header, then garbage": _header_then_garbage,
    "truncated to 10 bytes": _truncated(10),
    "truncated to 100 bytes": _truncated(100),
    "truncated to one page": _truncated(4096),
    "truncated mid-file": _truncated(20000),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_store_is_dml202_and_left_as_it_is(
    case: str, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    STORE.write_bytes(DAMAGED[case](checkpointed(capsys)))
    before = STORE.read_bytes()
    for argv in (["run", "p.dml", "--local"], ["runs", "list"]):
        code, text = dmlc(capsys, *argv)
        assert code == 1 and "error[DML202]" in text and f"`{STORE}`" in text, text
    assert STORE.read_bytes() == before


@pytest.mark.parametrize("page", [2, 3, 5, 8, 11])
def test_a_store_damaged_inside_stops_the_run_with_dml202(
    page: int, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """Page 1 intact: the store opens, and a later read or write meets the damage (was DML900, and
    the run left `running`)."""
    data = bytearray(checkpointed(capsys))
    data[(page - 1) * 4096 : page * 4096] = random.Random(page).randbytes(4096)
    STORE.write_bytes(bytes(data))
    code, text = run(capsys)
    assert code in (0, 1), text  # a page no query needed is no fault
    assert code == 0 or ("error[DML202]" in text and f"`{STORE}`" in text), text
    assert "running" not in (statuses() or [])


@pytest.mark.parametrize(
    ("case", "make", "help_"),
    [
        ("a folder", lambda: STORE.mkdir(parents=True), "is a folder"),
        (".dmlc a file", lambda: Path(".dmlc").write_text("x"), "check that"),
    ],
)
def test_a_store_path_that_is_no_file_is_dml201(
    case: str, make: Callable[[], None], help_: str, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    make()
    code, text = run(capsys)
    assert code == 1 and "error[DML201]" in text and f"`{STORE}`" in text and help_ in text, text


# --- failures in the middle of a run (simulated: everywhere) --------------------------------------

SQLITE_FAULTS = [  # SQLite's message -> the code, on the write of one table
    ("database or disk is full", "DML203", "steps"),
    ("database or disk is full", "DML203", "artifacts"),  # inside put_outputs' transaction
    ("disk I/O error", "DML201", "attempts"),
    ("database disk image is malformed", "DML202", "steps"),
    ("attempt to write a readonly database", "DML201", "inputs"),
]


@pytest.mark.parametrize(("message", "code", "table"), SQLITE_FAULTS, ids=[f"{f[0]} on {f[2]}" for f in SQLITE_FAULTS])
def test_a_store_failing_mid_run_is_coded_and_the_run_is_marked_failed(
    message: str,
    code: str,
    table: str,
    project: Project,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dmlc_targets.local.store import Store

    real = Store._put

    def failing(self: Store, name: str, row: dict, replace: bool = False) -> None:
        if name == table:
            raise sqlite3.OperationalError(message)
        real(self, name, row, replace)

    monkeypatch.setattr(Store, "_put", failing)
    exit_code, text = run(capsys)
    assert exit_code == 1 and f"error[{code}]" in text and f"`{STORE}`" in text, text
    assert statuses() == ["failed"]


@pytest.mark.parametrize(
    ("number", "code"), [(errno.ENOSPC, "DML203"), (errno.EROFS, "DML201"), (errno.EACCES, "DML201")]
)
def test_a_run_folder_that_cannot_be_written_is_coded(
    number: int, code: str, project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmlc_targets.local.rundir import RunDir

    def commit(self: RunDir, step: str, key: str, result: dict) -> None:
        where = self.instance(step, key) / "result.json"
        raise OSError(number, os.strerror(number), str(where))

    monkeypatch.setattr(RunDir, "commit", commit)
    exit_code, text = run(capsys)
    assert exit_code == 1 and f"error[{code}]" in text and "result.json`" in text, text
    assert statuses() == ["failed"]


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(args[-1]))


def test_a_full_disk_while_caching_keeps_the_step_succeeded(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr("dmlc_targets.local.cache.shutil.copytree", _enospc)
        code, text = run(capsys)
    assert code == 0, text
    assert "warning: step `make`'s result was not cached" in text and "No space left on device" in text
    assert states(project) == {"make": "succeeded", "use": "succeeded"} and statuses() == ["succeeded"]
    assert not list(Path(".dmlc/cache").glob("tmp/*")), "a half-built entry was left behind"
    assert run(capsys)[0] == 0 and states(project) == {"make": "succeeded", "use": "succeeded"}


def test_a_full_disk_while_restoring_is_a_miss_that_keeps_the_entry(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Was: the entry judged damaged ("outputs unreadable") and deleted, though only this disk was full."""
    assert run(capsys)[0] == 0
    created = _producers()
    real = shutil.copytree

    def copytree(src: Path, dst: Path, **kwargs: object) -> object:
        if "entries" in str(src):  # restoring, not storing
            _enospc(src, dst)
        return real(src, dst, **kwargs)

    monkeypatch.setattr("dmlc_targets.local.cache.shutil.copytree", copytree)
    code, text = run(capsys)
    assert code == 0 and "cannot restore the cached result" in text, text
    assert states(project)["make"] == "succeeded"
    assert _producers() == created


def _producers() -> dict[str, str]:
    """The run that stored each cache entry, by key."""
    return {p.name: json.loads((p / "entry.json").read_text())["run"] for p in Path(".dmlc/cache").glob("entries/*/*")}


def test_a_run_whose_executor_died_is_not_listed_as_running(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk can refuse even the write that ends a run: its row then names a dead executor."""
    assert run(capsys)[0] == 0
    child = subprocess.Popen(["true"])
    child.wait()
    db = sqlite3.connect(str(STORE))
    db.execute("UPDATE runs SET status='running', pid=?", (child.pid,))
    db.commit()
    db.close()
    code, text = dmlc(capsys, "runs", "list")
    assert code == 0 and "lost (executor died)" in text and " running " not in text, text


# --- cache entries of the wrong shape ---------------------------------------------------------------


def _write(text: bytes) -> Callable[[Path], None]:
    return lambda entry: (entry / "entry.json").write_bytes(text)


def _json_edit(change: Callable[[dict], dict]) -> Callable[[Path], None]:
    def apply(entry: Path) -> None:
        data = json.loads((entry / "entry.json").read_text())
        (entry / "entry.json").write_text(json.dumps(change(data)))

    return apply


def _replace_with_file(entry: Path) -> None:
    shutil.rmtree(entry)
    entry.write_text("not a folder")


def _entry_json_a_folder(entry: Path) -> None:
    (entry / "entry.json").unlink()
    (entry / "entry.json").mkdir()


SHAPES = {  # was: served, DML900, or a miss never replaced (every later run a miss)
    "entry.json garbage": _write(b"\xff\xfe garbage"),
    "entry.json 100k deep": _write(b"[" * 100000 + b"]" * 100000),
    "entry.json a folder": _entry_json_a_folder,
    "the entry a file": _replace_with_file,
    "no outputs recorded": _json_edit(lambda d: d | {"kinds": {}, "values": {}, "digests": {}}),
    "created NaN": _json_edit(lambda d: d | {"created": float("nan")}),
    "created infinite": _json_edit(lambda d: d | {"created": float("inf")}),
}


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_a_cache_entry_of_the_wrong_shape_is_a_miss_then_replaced(
    case: str, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys)[0] == 0
    (entry,) = [
        p
        for p in Path(".dmlc/cache").glob("entries/*/*")
        if json.loads((p / "entry.json").read_text())["step"] == "make"
    ]
    SHAPES[case](entry)
    code, text = run(capsys)
    assert code == 0, text
    assert states(project)["make"] == "succeeded" and project.count("make") == 2, text
    code, text = run(capsys)
    assert code == 0 and states(project) == {"make": "cached", "use": "cached"}, text


# --- the real thing, where this machine lets us mount ------------------------------------------------


@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` at `where`, or a skip saying why there cannot be one here."""
    where.mkdir(parents=True, exist_ok=True)
    options = f"size={size}" + (",ro" if read_only else "")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the simulated tests above cover the same faults)")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def remount_read_only(where: Path, bind: bool = False) -> None:
    if bind:
        subprocess.run(["mount", "--bind", str(where), str(where)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], check=True)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)


def test_a_read_only_dmlc_folder_is_dml201_and_untouched(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(Path(".dmlc"), "4m"):
        assert run(capsys)[0] == 0
        before = {p: p.read_bytes() for p in Path(".dmlc").rglob("*") if p.is_file()}
        remount_read_only(Path(".dmlc"))
        code, text = run(capsys)
        assert code == 1 and "error[DML201]" in text and f"`{STORE}`" in text and "read-only" in text, text
        assert {p: p.read_bytes() for p in Path(".dmlc").rglob("*") if p.is_file()} == before


def test_a_read_only_store_file_is_dml201(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    with tmpfs(Path(".dmlc"), "4m"):
        checkpointed(capsys)
        remount_read_only(STORE, bind=True)
        try:
            code, text = run(capsys)
            assert code == 1 and "error[DML201]" in text and f"`{STORE}`" in text and "read-only" in text, text
        finally:
            subprocess.run(["umount", str(STORE)], check=False)
        assert statuses() == ["succeeded"]


def _big_artifact(project: Project, size: int) -> None:
    """`make` writes an artifact of `size` bytes (`use` still reads one character of it)."""
    helper = project.path / "h.py"
    text = helper.read_text().replace("f.write(rest[0])", f"f.write(rest[0] * {size})")
    helper.write_text(text.replace('"part-0")).read())', '"part-0")).read(1))'))


FULL_DISKS = [  # a tmpfs under .dmlc, a 300 kB artifact: (size, exit code, what stderr says, run status)
    ("512k", 1, "error[DML203]: cannot write the metadata store `.dmlc/metadata.db`", "failed"),  # the reserve
    ("700k", 0, "result was not cached in .dmlc/cache: No space left on device", "succeeded"),  # cache only
]


@pytest.mark.parametrize(("size", "code", "says", "status"), FULL_DISKS, ids=["store", "cache"])
def test_a_full_disk_for_real(
    size: str, code: int, says: str, status: str, project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    """On the store: DML203 naming it, and the run still marked failed (the write that ends it finds
    the room the store keeps in reserve). On the cache alone: a warning, and the run succeeds."""
    _big_artifact(project, 300_000)
    with tmpfs(Path(".dmlc"), size):
        exit_code, text = run(capsys)
        assert exit_code == code and says in text, text
        assert statuses() == [status]
        assert not list(Path(".dmlc/cache").glob("tmp/*")), "a half-built cache entry was left behind"
