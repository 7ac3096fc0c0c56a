"""Environment and I/O failures (DML2xx) and bad `--param`s (DML027), through the real CLI.

Outputs (`-o`): a device stays a device, a symlink stays a link and its target is written, the
replaced file keeps its permission bits, a full disk is DML203 and any other OSError DML201. Inputs:
a missing file is DML200 for every command that takes one. The local store: a database dmlc did not
create, or a file that is no database, is DML202 and left byte for byte as it was. Ports: a taken
port is DML204 before anything is loaded. None of these is ever DML900 or a traceback.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import socket
import sqlite3
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from dmlc.atomic import write_bytes
from dmlc.cli import main
from tests.executor.executor_support import PYTHONPATH

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "examples" / "quickstart.dml")
STORE_PIPELINE = 'pipeline p {\n  metadata { store = "app.db" }\n  task a { command = ["true"] }\n}\n'


def dmlc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`dmlc ARGV` in this process: the exit code and stderr, which never shows a dmlc bug."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "DML900" not in err and "Traceback" not in err, err
    return code, err


def digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch folder as the current directory (`dmlc run` keeps its state under ./.dmlc)."""
    monkeypatch.chdir(tmp_path)
    if PYTHONPATH:
        monkeypatch.setenv("PYTHONPATH", PYTHONPATH)
    (tmp_path / "p.dml").write_text(STORE_PIPELINE)
    return tmp_path


# --- outputs (-o) --------------------------------------------------------------------------------

DEVICES = {"null": 3, "full": 7}  # minor numbers of the memory devices (major 1)


def device(tmp_path: Path, name: str) -> str:
    """/dev/NAME, or as root a private twin of it under tmp_path: a regression that replaces the node
    must never replace the machine's own /dev/null (only root could)."""
    real = f"/dev/{name}"
    if os.geteuid() == 0:
        twin = tmp_path / name
        try:
            os.mknod(twin, stat.S_IFCHR | 0o666, os.makedev(1, DEVICES[name]))
            with open(twin, "wb"):
                return str(twin)
        except OSError:  # no mknod here, or a nodev mount
            twin.unlink(missing_ok=True)
    if not os.path.exists(real) or not os.access(real, os.W_OK):
        pytest.skip(f"{real} is absent or not writable here")
    return real


def test_output_to_dev_null_leaves_the_device(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    null = device(tmp_path, "null")
    assert dmlc(capsys, "compile", QUICKSTART, "-t", "argo", "-o", null)[0] == 0
    assert stat.S_ISCHR(os.stat(null).st_mode), f"{null} was replaced by a regular file"
    assert dmlc(capsys, "schema", "-o", null)[0] == 0
    assert stat.S_ISCHR(os.stat(null).st_mode)


def test_output_through_a_symlink_writes_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "real" / "workflow.yaml"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "link.yaml"
    link.symlink_to(target)
    assert dmlc(capsys, "compile", QUICKSTART, "-t", "argo", "-o", str(link))[0] == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert "kind: Workflow" in target.read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["workflow.yaml"], "a temp file was left behind"


def test_output_through_a_dangling_symlink_creates_its_target(tmp_path: Path) -> None:
    link = tmp_path / "link.txt"
    link.symlink_to(tmp_path / "new.txt")
    write_bytes(link, b"data")
    assert link.is_symlink() and (tmp_path / "new.txt").read_bytes() == b"data"


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o600])
def test_output_keeps_the_permissions_of_the_file_it_replaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: int
) -> None:
    out = tmp_path / "schema.json"
    out.write_text("{}")
    out.chmod(mode)
    assert dmlc(capsys, "schema", "-o", str(out))[0] == 0
    assert stat.S_IMODE(out.stat().st_mode) == mode
    assert out.read_text().startswith("{\n")


def test_new_output_file_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_bytes(tmp_path / "new.txt", b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o644


def test_output_into_a_fifo_writes_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_bytes(fifo, b"through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"]
    assert stat.S_ISFIFO(fifo.stat().st_mode)


@pytest.mark.parametrize(
    "argv",
    [
        ["compile", QUICKSTART, "-t", "argo"],
        ["fmt", QUICKSTART],
        ["graph", QUICKSTART],
        ["graph", QUICKSTART, "--format", "dot"],
        ["schema"],
    ],
    ids=["compile", "fmt", "graph", "graph-dot", "schema"],
)
def test_output_to_dev_full_is_dml203(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    full = device(tmp_path, "full")
    code, err = dmlc(capsys, *argv, "-o", full)
    assert code == 1
    assert f"error[DML203]: cannot write `{full}`: No space left on device" in err
    assert "help:" in err
    assert stat.S_ISCHR(os.stat(full).st_mode)


def test_output_into_a_missing_folder_is_dml201(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.path.exists("/nonexistent"):
        pytest.skip("/nonexistent exists here")
    try:
        code, err = dmlc(capsys, "compile", QUICKSTART, "-t", "argo", "-o", "/nonexistent/dir/x.yaml")
        assert not os.path.exists("/nonexistent"), "-o must not create folders"
    finally:
        shutil.rmtree("/nonexistent", ignore_errors=True)  # only there after a regression, made by this test
    assert code == 1 and "error[DML201]: cannot write `/nonexistent/dir/x.yaml`" in err
    assert "the folder `/nonexistent/dir` does not exist" in err
    missing = tmp_path / "no" / "out.yaml"
    code, err = dmlc(capsys, "fmt", QUICKSTART, "-o", str(missing))
    assert code == 1 and "DML201" in err and not missing.parent.exists()


def test_output_to_a_folder_is_dml201(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = dmlc(capsys, "schema", "-o", str(tmp_path))
    assert code == 1 and "error[DML201]" in err and "Is a directory" in err and "is a folder" in err
    assert tmp_path.is_dir()


def test_output_into_a_read_only_folder_is_dml201(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "x.yaml").write_text("old\n")
    folder.chmod(0o555)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who may write anywhere (root)")
        code, err = dmlc(capsys, "compile", QUICKSTART, "-t", "argo", "-o", str(folder / "x.yaml"))
    finally:
        folder.chmod(0o755)
    assert code == 1 and "error[DML201]" in err and "Permission denied" in err
    assert (folder / "x.yaml").read_text() == "old\n"


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out.yaml"
    out.write_text("old\n")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError):
        write_bytes(out, b"new\n")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.yaml"]


# --- inputs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "missing.dml"],
        ["compile", "missing.dml", "-t", "argo"],
        ["graph", "missing.dml"],
        ["fmt", "missing.dml"],
        ["run", "missing.dml"],
        ["run", "missing.dml", "--local"],
        ["cache", "explain", "missing.dml", "a"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_missing_input_is_dml200(project: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, err = dmlc(capsys, *argv)
    assert code == 1
    assert "error[DML200]: cannot read `missing.dml`: No such file or directory" in err


def test_folder_as_input_is_dml200(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = dmlc(capsys, "check", str(project))
    assert code == 1 and "DML200" in err and "Is a directory" in err


# --- the local metadata store -------------------------------------------------------------------


def foreign_database(path: Path, wal: bool) -> sqlite3.Connection:
    """Another application's SQLite database, left open (so a WAL database keeps its -wal file)."""
    db = sqlite3.connect(str(path))
    if wal:
        db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO users (name) VALUES ('ada'), ('grace')")
    db.commit()
    return db


@pytest.mark.parametrize("wal", [True, False], ids=["wal", "rollback-journal"])
def test_foreign_sqlite_store_is_refused_untouched(
    project: Path, capsys: pytest.CaptureFixture[str], wal: bool
) -> None:
    app = project / "app.db"
    db = foreign_database(app, wal)
    try:
        files = {p.name: digest(p) for p in project.glob("app.db*")}
        assert ("app.db-wal" in files) == wal
        for argv in (["run", "p.dml", "--local"], ["cache", "explain", "p.dml", "a"]):
            code, err = dmlc(capsys, *argv)
            assert code == 1
            assert "error[DML202]: `app.db` is not a dmlc metadata store; dmlc never modifies a database" in err
            assert "help: point `metadata { store = ... }`" in err
        assert {p.name: digest(p) for p in project.glob("app.db*") if p.name != "app.db-shm"} == {
            k: v for k, v in files.items() if k != "app.db-shm"
        }
        assert not list(project.glob("*.old")), "a foreign database was moved aside"
    finally:
        db.close()
    check = sqlite3.connect(str(app))
    assert check.execute("SELECT name FROM users ORDER BY id").fetchall() == [("ada",), ("grace",)]
    assert check.execute("PRAGMA application_id").fetchone()[0] == 0
    check.close()


def test_foreign_store_without_side_files_gets_none(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign_database(project / "app.db", wal=True).close()  # checkpointed: no -wal, no -shm left
    before = digest(project / "app.db")
    assert dmlc(capsys, "run", "p.dml")[0] == 1
    assert digest(project / "app.db") == before
    assert sorted(p.name for p in project.glob("app.db*")) == ["app.db"]


@pytest.mark.parametrize(
    "content",
    [os.urandom(4096), b"SQLite format 3\x00" + b"not really" * 400, b"hello\n"],
    ids=["random", "sqlite-header-then-garbage", "text"],
)
def test_a_file_that_is_no_database_is_refused_untouched(
    project: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    (project / "app.db").write_bytes(content)
    code, err = dmlc(capsys, "run", "p.dml")
    assert code == 1 and "error[DML202]" in err and "`app.db`" in err
    assert (project / "app.db").read_bytes() == content
    assert sorted(p.name for p in project.glob("app.db*")) == ["app.db"]


def test_runs_list_against_a_foreign_store_is_dml202(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / ".dmlc").mkdir()
    foreign_database(project / ".dmlc" / "metadata.db", wal=False).close()
    before = digest(project / ".dmlc" / "metadata.db")
    code, err = dmlc(capsys, "runs", "list")
    assert code == 1 and "error[DML202]: `.dmlc/metadata.db` is not a dmlc metadata store" in err
    assert digest(project / ".dmlc" / "metadata.db") == before


def test_dmlc_stamps_its_store_and_opens_it_again(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dmlc_targets.local.store import APPLICATION_ID

    assert dmlc(capsys, "run", "p.dml")[0] == 0
    assert dmlc(capsys, "run", "p.dml")[0] == 0
    db = sqlite3.connect(str(project / "app.db"))
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID == 0x646D6C63
    assert db.execute("SELECT count(*) FROM runs").fetchone()[0] == 2
    db.close()
    assert dmlc(capsys, "runs", "list")[0] == 0


def test_an_unstamped_store_of_the_current_layout_is_kept_and_stamped(tmp_path: Path) -> None:
    from dmlc_targets.local.store import APPLICATION_ID, SCHEMA, SCHEMA_VERSION, Store

    path = tmp_path / "metadata.db"
    old = sqlite3.connect(str(path))
    old.executescript(SCHEMA + f"PRAGMA user_version = {SCHEMA_VERSION};")
    old.execute("INSERT INTO runs (id, pipeline, started) VALUES ('r0', 'p', 1)")
    old.commit()
    old.close()
    store = Store(path)
    assert [row["id"] for row in store.runs()] == ["r0"]
    assert store.db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    store.close()
    assert not list(tmp_path.glob("*.old"))


# --- ports --------------------------------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock.getsockname()[1]
    sock.close()


def test_serve_on_a_taken_port_is_dml204(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], taken_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("uvicorn")
    pytest.importorskip("starlette")
    monkeypatch.delenv("DMLC_SERVE_HOST", raising=False)
    code, err = dmlc(capsys, "serve", str(tmp_path / "no-model"), "--port", str(taken_port))
    assert code == 1
    assert f"error[DML204]: port {taken_port} is already in use" in err
    assert "help: pick another --port, or stop what listens there" in err


def test_port_in_use_sees_a_wildcard_listener_and_nothing_after_it_stops() -> None:
    from dmlc.runtime.serve import port_in_use

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    sock.listen()
    port = sock.getsockname()[1]
    assert port_in_use(port, "127.0.0.1") and port_in_use(port, "0.0.0.0")
    sock.close()
    assert not port_in_use(port, "127.0.0.1")


def test_serve_step_with_a_taken_port_is_a_user_error(tmp_path: Path, taken_port: int) -> None:
    from dmlc.runtime.serve import start_detached
    from dmlc.runtime.step_io import UserError

    (tmp_path / "saved_model.pb").write_bytes(b"")
    spec = SimpleNamespace(step="classifier", work_dir=tmp_path / "work", outputs_dir=tmp_path / "out")
    with pytest.raises(UserError, match=rf"^port {taken_port} is already in use \(DML204\)"):
        start_detached(spec, str(tmp_path), 1, taken_port, {})  # type: ignore[arg-type]
    assert not (tmp_path / "work").exists(), "nothing was started"


# --- --param and missing programs --------------------------------------------------------------


PARAMS = """\
pipeline p {
  params { epochs = 2  lr = 0.1  deploy = false  label = "x"  sizes = [1]  opts = { a = 1 } }
  task t { command = ["echo", "${params.label}"] }
}
"""


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("noequals", "`--param noequals` must be KEY=VALUE"),
        ("=3", "must be KEY=VALUE"),
        ("epoch=3", "names no param of this pipeline (`epoch`)"),
        ("epochs=abc", "does not fit `epochs`: expected a whole number, got 'abc'"),
        ("epochs=1.5", "expected a whole number"),
        ("epochs=true", "expected a whole number"),
        ("epochs=99999999999999999999", "out of range"),
        ("lr=1e999", "is not a finite number"),
        ("lr=nan", "is not a finite number"),
        ("deploy=yes", "expected true or false"),
        ("sizes=[1", "does not fit `sizes`"),
        ("sizes={a: 1}", "expected a list"),
        ("sizes=!!binary aGk=", "tags, anchors and aliases"),
        ("sizes=[&a 1, *a]", "tags, anchors and aliases"),
        ("opts=[1]", "expected a map"),
        ("sizes=[2020-01-01]", None),  # a date is text, as in JSON
        ("label=2020-01-01", None),  # a string param takes the text as given
        ("label=[1", None),
        ("epochs=-3", None),
        ("lr=2", None),
    ],
)
def test_params_are_typed_and_declared(
    pair: str, message: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(PARAMS)
    code, err = dmlc(capsys, "compile", str(path), "-t", "local", "--param", pair, "-o", str(tmp_path / "o.json"))
    if message is None:
        assert code == 0, err
    else:
        assert code == 1 and "error[DML027]" in err and message in err, err
        assert "DML900" not in err


def test_a_string_param_keeps_its_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.dml"
    path.write_text(PARAMS)
    out = tmp_path / "o.json"
    code, err = dmlc(capsys, "compile", str(path), "-t", "local", "--param", "label=007", "-o", str(out))
    assert code == 0, err
    assert '"label": "007"' in out.read_text() or '"label":"007"' in out.read_text()


def test_graph_without_graphviz_is_dml205(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmlc import graphviz

    monkeypatch.setattr(graphviz.shutil, "which", lambda name: None)
    out = tmp_path / "dag.svg"
    code, err = dmlc(capsys, "graph", QUICKSTART, "--format", "svg", "-o", str(out))
    assert code == 1 and "error[DML205]: `--format svg` needs Graphviz's `dot`" in err
    assert not out.exists()


def test_graph_with_a_dot_that_cannot_start_is_dml205(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dmlc import graphviz

    broken = tmp_path / "dot"
    broken.write_text("not a program\n")  # on PATH, but not executable
    monkeypatch.setattr(graphviz.shutil, "which", lambda name: str(broken))
    code, err = dmlc(capsys, "graph", QUICKSTART, "--format", "png")
    assert code == 1 and "error[DML205]: cannot run Graphviz's" in err and "Permission denied" in err
