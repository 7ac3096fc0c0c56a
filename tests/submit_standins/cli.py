"""Helpers of the `dmlc submit | status | logs` tests: a folder of its own, the CLI in-process, what was sent.

`isolate` puts a test in its own folder (its .dmlc/ records, a HOME for kfp's context file) with no
server settings from the environment; `dmlc` runs the CLI and fails the test on any traceback or
DML900; `submitted` lists the requests that created something; `no_token_on_disk` looks through .dmlc/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlc.cli import main
from tests.submit_standins.server import Call, Standin

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = str(ROOT / "examples" / "quickstart.dml")
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))
ENV = ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_SECURE", "ARGO_BASE_HREF", "KF_PIPELINES_ENDPOINT")
ENV += ("KF_PIPELINES_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME")


def isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def dmlc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "DML900" not in err, err
    return code, out, err


def submitted(srv: Standin) -> list[Call]:
    return [c for c in srv.calls if c.method == "POST"]


def no_token_on_disk(token: str) -> None:
    for path in Path(".dmlc").rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path
