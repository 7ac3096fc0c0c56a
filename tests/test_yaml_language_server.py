"""The YAML form in the real yaml-language-server (npm): the schema gives the errors `dmlc check` gives.

The server (pinned by tests/yaml_language_server/package-lock.json, installed with `npm ci` into a
cache folder outside the repository) runs over stdio as an editor runs it. The workspace is set up by
`dmlc schema --install`, so files are matched by name (`*.dml.yaml`, `*.dml.yml`) with no modeline.
Each file under tests/yaml_language_server/broken/ (unknown keys, wrong types, bad units, bad step
names, check's own field rules, bad target options) must get a diagnostic on exactly the lines where
check reports one, as many per line; target options are compared with what `dmlc compile` reports
(check does not read them). Every example gets none, by file name and by its modeline.

Without node, npm or the npm registry the server tests are skipped, saying why.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from dmlc import targets
from dmlc.cli import main
from dmlc.diagnostics.model import Diagnostic, DmlError
from dmlc.driver import Loaded, check_file, target_context
from dmlc.ir.lower import lower
from dmlc.parse import parse_file
from dmlc.schema import FILE_PATTERNS
from dmlc.schema_install import INSTALL_KEY

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "tests" / "yaml_language_server"
BROKEN = sorted((HERE / "broken").glob("*.dml.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


# ---------------------------------------------------------------------------------------------------
# `dmlc schema --install` (no node needed)


def test_install_writes_the_schema_and_the_association(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vscode = tmp_path / ".vscode"
    vscode.mkdir()
    (vscode / "settings.json").write_text('{"editor.tabSize": 2, "yaml.schemas": {"k8s.json": "*.k8s.yaml"}}')
    assert main(["schema", "--install", str(tmp_path)]) == 0
    assert "*.dml.yaml" in capsys.readouterr().out
    settings = json.loads((vscode / "settings.json").read_text())
    assert settings["editor.tabSize"] == 2
    assert settings["yaml.schemas"] == {"k8s.json": "*.k8s.yaml", INSTALL_KEY: list(FILE_PATTERNS)}
    assert (vscode / "dmlc.schema.json").read_text() == (ROOT / "schema" / "dmlc.schema.json").read_text()
    assert main(["schema", "--install", str(tmp_path)]) == 0  # again: the same result
    assert json.loads((vscode / "settings.json").read_text()) == settings


def test_install_leaves_settings_with_comments_alone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    vscode = tmp_path / ".vscode"
    vscode.mkdir()
    text = '{\n  // mine\n  "editor.tabSize": 2,\n}\n'
    (vscode / "settings.json").write_text(text)
    assert main(["schema", "--install", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "DML200" in err and INSTALL_KEY in err
    assert (vscode / "settings.json").read_text() == text


# ---------------------------------------------------------------------------------------------------
# the server


@pytest.fixture(scope="module")
def server() -> Path:
    """yaml-language-server's start script, installed by `npm ci` from the committed lock file."""
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are not installed: the yaml-language-server test needs them")
    files = [HERE / "package.json", HERE / "package-lock.json"]
    digest = hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]
    cache = Path(os.environ.get("DMLC_NODE_CACHE") or Path.home() / ".cache" / "dmlc-tests")
    folder = cache / f"yaml-language-server-{digest}"
    start = folder / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
    if not start.is_file():
        work = cache / f".install-{digest}-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for f in files:
            shutil.copy(f, work / f.name)
        try:
            run = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=600,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("`npm ci` for yaml-language-server took more than 10 minutes (is the registry reachable?)")
        if run.returncode != 0:
            shutil.rmtree(work, ignore_errors=True)
            pytest.skip(f"`npm ci` for yaml-language-server failed (no npm registry?): {run.stderr.strip()[-300:]}")
        shutil.rmtree(folder, ignore_errors=True)
        work.rename(folder)
    return start


class Client:
    """Just enough of an LSP client: requests, notifications, the server's configuration requests."""

    def __init__(self, start: Path, root: Path, settings: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            ["node", str(start), "--stdio"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.inbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.settings = settings
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()
        folder = {"uri": root.as_uri(), "name": root.name}
        capabilities = {"workspace": {"configuration": True}, "textDocument": {"publishDiagnostics": {}}}
        init = {"processId": os.getpid(), "rootUri": root.as_uri(), "capabilities": capabilities}
        self.request("initialize", {**init, "workspaceFolders": [folder]})
        self.notify("initialized", {})
        self.notify("workspace/didChangeConfiguration", {"settings": settings})

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = 0
            while True:
                line = out.readline()
                if not line:
                    return
                if not line.strip():
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            self.inbox.put(json.loads(out.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method: str, params: Any) -> Any:
        self.next_id += 1
        ident = self.next_id
        self._send({"id": ident, "method": method, "params": params})
        return self.collect(lambda m: m.get("id") == ident and "method" not in m, 60)[-1]

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def collect(self, done: Any, timeout: float, quiet: float | None = None) -> list[dict[str, Any]]:
        """Messages until `done(message)` (or, with `quiet`, until none came for that long)."""
        got: list[dict[str, Any]] = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                message = self.inbox.get(timeout=quiet if quiet is not None else end - time.monotonic())
            except queue.Empty:
                if quiet is not None:
                    return got
                break
            if "method" in message and "id" in message:  # a request of the server's
                self._answer(message)
                continue
            got.append(message)
            if done(message):
                return got
        if quiet is not None:
            return got
        raise TimeoutError("yaml-language-server did not answer")

    def _answer(self, message: dict[str, Any]) -> None:
        result: Any = None
        if message["method"] == "workspace/configuration":
            result = [self.settings.get(item.get("section", ""), None) for item in message["params"]["items"]]
        self._send({"id": message["id"], "result": result})

    def diagnostics(self, files: list[Path]) -> dict[Path, list[dict[str, Any]]]:
        """Open the files; the last diagnostics published for each once the server has gone quiet."""
        by_uri = {f.resolve().as_uri(): f for f in files}
        for uri, f in by_uri.items():
            doc = {"uri": uri, "languageId": "yaml", "version": 1, "text": f.read_text(encoding="utf-8")}
            self.notify("textDocument/didOpen", {"textDocument": doc})
        found: dict[Path, list[dict[str, Any]]] = {}
        end = time.monotonic() + 120
        while time.monotonic() < end:
            batch = self.collect(lambda m: False, 10, quiet=2.0)
            for m in batch:
                if m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] in by_uri:
                    found[by_uri[m["params"]["uri"]]] = m["params"]["diagnostics"]
            if len(found) == len(files) and not batch:
                break
        assert len(found) == len(files), f"no diagnostics for {set(files) - set(found)}"
        return found

    def close(self) -> None:
        try:
            self.request("shutdown", None)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        except (TimeoutError, OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, server: Path) -> Any:
    """A folder set up by `dmlc schema --install`, the broken files and the examples (as *.dml.yaml, with
    no modeline) in it, and the server started there with the settings the install wrote."""
    root = tmp_path_factory.mktemp("workspace")
    assert main(["schema", "--install", str(root)]) == 0
    settings = json.loads((root / ".vscode" / "settings.json").read_text())
    for f in BROKEN:
        shutil.copy(f, root / f.name)
    (root / "examples").mkdir()
    for f in EXAMPLES:
        lines = f.read_text(encoding="utf-8").splitlines(keepends=True)
        assert lines[0].startswith("# yaml-language-server: $schema=")
        (root / "examples" / f"{f.stem}.dml.yml").write_text("".join(lines[1:]), encoding="utf-8")
    yaml_settings = {
        "validate": True,
        "hover": True,
        "completion": True,
        "schemas": settings["yaml.schemas"],
        "schemaStore": {"enable": False},
    }
    client = Client(server, root, {"yaml": yaml_settings})
    try:
        yield root, client
    finally:
        client.close()


def expected(path: Path) -> Counter[int]:
    """Lines (1-based) of check's diagnostics, plus the options diagnostics of `dmlc compile --target T`
    for each target block (check does not read target options)."""
    found: list[Diagnostic] = list(check_file(str(path)))
    document = parse_file(str(path))
    try:
        pipeline = lower(document)
    except DmlError:
        pipeline = None
    if pipeline is not None:
        for name in pipeline.targets:
            target = targets.get(name)
            if target is None:
                continue
            try:
                target_context(target, Loaded(pipeline, document))
            except DmlError as exc:
                found += exc.diagnostics
    lines = [d.primary.span.line for d in found if d.primary.span is not None]
    assert len(lines) == len(found), [d.message for d in found]
    return Counter(lines)


def test_broken_files_get_checks_errors(workspace: Any) -> None:
    root, client = workspace
    files = [root / f.name for f in BROKEN]
    got = client.diagnostics(files)
    report = []
    for f in files:
        want = expected(f)
        have = Counter(d["range"]["start"]["line"] + 1 for d in got[f])
        assert want, f"{f.name} is meant to hold errors"
        if have != want:
            shown = [f"{d['range']['start']['line'] + 1}: {d['message']}" for d in got[f]]
            report.append(f"{f.name}: check on lines {dict(want)}, the server on {dict(have)}: {shown}")
        for d in got[f]:  # words, not a raw regular expression
            assert "does not match the pattern" not in d["message"], d["message"]
    assert not report, "\n".join(report)


def test_examples_get_no_errors_by_file_name(workspace: Any) -> None:
    root, client = workspace
    files = sorted((root / "examples").glob("*.dml.yml"))
    assert len(files) == len(EXAMPLES)
    got = client.diagnostics(files)
    assert {f.name: d for f, d in got.items() if d} == {}


def test_examples_get_no_errors_by_their_modeline(workspace: Any) -> None:
    _, client = workspace
    got = client.diagnostics(EXAMPLES)
    assert {f.name: d for f, d in got.items() if d} == {}


def test_hover_shows_the_description_default_and_examples(workspace: Any) -> None:
    root, client = workspace
    f = root / "hover.dml.yaml"
    f.write_text("pipeline: p\nsteps:\n  t:\n    kind: serve\n    model: x\n    events: {idle_timeout: 5m}\n")
    client.diagnostics([f])
    hover = client.request(
        "textDocument/hover", {"textDocument": {"uri": f.resolve().as_uri()}, "position": {"line": 5, "character": 16}}
    )
    text = json.dumps(hover["result"]) if hover.get("result") else ""
    assert "Scale to zero" in text and "Default" in text and "1m" in text, text


def test_completion_follows_the_step_kind(workspace: Any) -> None:
    """The server takes each step's attributes from the `if`/`then` branch of its kind."""
    root, client = workspace
    f = root / "completion.dml.yaml"
    f.write_text("pipeline: p\nsteps:\n  t:\n    kind: train\n    data: x\n    \n")
    client.diagnostics([f])
    position = {"line": 5, "character": 4}
    answer = client.request(
        "textDocument/completion", {"textDocument": {"uri": f.resolve().as_uri()}, "position": position}
    )
    result = answer.get("result") or {}
    labels = {item["label"] for item in (result.get("items", []) if isinstance(result, dict) else result)}
    assert {"epochs", "strategy", "retry", "timeout"} <= labels, labels
    assert not labels & {"command", "dataset", "replicas", "kind", "data"}, labels
