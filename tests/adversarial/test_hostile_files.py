"""Hostile pipeline files, one family per table (issue 12): numbers out of every engine's range, text a
process cannot receive, names Kubernetes refuses. Each case runs through `check` and `compile` for
every target; the oracle is a coded error at its line (exit 1), never DML900 or a traceback.
Add a case by adding a row: (name, file text, expected code).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlc.cli import main

TARGETS = ("argo", "kfp", "local")
DIGITS = "9" * 5000


def _task(extra: str) -> str:
    return f'pipeline p {{\n  task a {{\n    command = ["echo", "x"]\n    {extra}\n  }}\n}}\n'


NUMBERS = [
    ("infinite cpu", _task("resources { cpu = 1e999 }"), "DML022"),
    ("5000-digit memory", _task(f"resources {{ memory = {DIGITS} }}"), "DML022"),
    ("5000-digit memory as text", _task(f'resources {{ memory = "{DIGITS}Gi" }}'), "DML021"),
    ("a timeout of 270 million years", _task("timeout = 99999999999d"), "DML022"),
    ("backoff 1e300", _task("retry { limit = 2  backoff = 1e300 }"), "DML022"),
    ("a retry limit beyond 64 bits", _task("retry { limit = 99999999999999999999 }"), "DML022"),
    ("a negative infinite seed", 'pipeline p {\n  train m {\n    data = "x"\n    seed = -1e999\n  }\n}\n', "DML022"),
]
PROCESS_TEXT = [
    ("NUL in an argument", 'pipeline p {\n  task a {\n    command = ["echo", "a\\u0000b"]\n  }\n}\n', "DML020"),
    ("NUL in an env value", _task('env { A = "x\\u0000" }'), "DML020"),
    ("= in an env name", _task('env { "A=B" = "x" }'), "DML019"),
    ("an empty env name", _task('env { "" = "x" }'), "DML019"),
    ("an empty secret_env name", _task('secret_env { "" = "s/k" }'), "DML019"),
    ("an empty command", "pipeline p {\n  task a {\n    command = []\n  }\n}\n", "DML022"),
    (
        "two volumes on one path",
        'pipeline p {\n  volume a { size = 1Gi  mount = "/d" }\n  volume b { size = 1Gi  mount = "/d/" }\n'
        '  task t { command = ["true"] }\n}\n',
        "DML026",
    ),
]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "DML900" not in err and "Traceback" not in err, err
    return code, err


@pytest.mark.parametrize(("name", "text", "code"), NUMBERS + PROCESS_TEXT, ids=[c[0] for c in NUMBERS + PROCESS_TEXT])
def test_hostile_file_is_a_coded_error_everywhere(
    name: str, text: str, code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(text)
    for argv in [("check", str(path)), *(("compile", str(path), "-t", t, "-o", str(tmp_path / "o")) for t in TARGETS)]:
        status, err = _run(capsys, *argv)
        assert status == 1 and f"error[{code}]" in err, (argv, err)


def test_a_huge_integer_in_yaml_is_a_coded_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        f'pipeline: p\nsteps:\n  a:\n    kind: task\n    command: ["true"]\n    resources: {{memory: {DIGITS}}}\n'
    )
    status, err = _run(capsys, "check", str(path))
    assert status == 1 and "error[DML" in err
