"""Diagnostics for tools (issue 13): JSON on stdout with end positions and machine-applicable fixes,
`--format short` in the form editors' gcc problem matchers read."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dmlc.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "diagnostics"
# VS Code's built-in `$gcc` problem matcher (the same shape GitHub's and Vim's errorformat read)
GCC = re.compile(r"^(.*?):(\d+):(\d*):?\s+(?:fatal\s+)?(warning|error):\s+(.*)$")


def _check_json(path: Path, capsys: pytest.CaptureFixture[str]) -> list[dict]:
    main(["check", "--format", "json", str(path)])
    out = capsys.readouterr()
    assert not out.err.strip(), "JSON mode writes nothing for people"
    return json.loads(out.out)


@pytest.mark.parametrize("fixture", sorted(FIXTURES.glob("DML0*.dml")), ids=lambda p: p.stem)
def test_short_lines_match_the_gcc_problem_matcher(fixture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "short", str(fixture)]) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines
    for line in lines:
        match = GCC.match(line)
        assert match, line
        assert match.group(1) == str(fixture) and match.group(4) == "error"
        assert re.search(r"\[DML\d{3}\]$", match.group(5))


def test_every_offered_fix_removes_its_diagnostic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fixed = 0
    for fixture in sorted(FIXTURES.glob("*.dml")):
        copy = tmp_path / fixture.name
        shutil.copy(fixture, copy)
        for diag in _check_json(copy, capsys):
            for fix in diag["fixes"]:
                _apply(copy, fix)
                after = _check_json(copy, capsys)
                where = (diag["location"]["line"], diag["location"]["column"], diag["code"])
                left = [(d["location"].get("line"), d["location"].get("column"), d["code"]) for d in after]
                assert where not in left, f"{fixture.name}: the fix {fix} did not remove {where}"
                fixed += 1
                shutil.copy(fixture, copy)
    assert fixed >= 3, "the fixtures offer did-you-mean fixes for steps, outputs, params and kinds"


def _apply(path: Path, fix: dict) -> None:
    lines = path.read_text().split("\n")
    r = fix["range"]
    assert r["line"] == r["end_line"]
    line = lines[r["line"] - 1]
    lines[r["line"] - 1] = line[: r["column"] - 1] + fix["replacement"] + line[r["end_column"] - 1 :]
    path.write_text("\n".join(lines))


def test_json_ranges_cover_the_span(capsys: pytest.CaptureFixture[str]) -> None:
    [diag] = _check_json(FIXTURES / "DML012.dml", capsys)
    loc = diag["location"]
    text = (FIXTURES / "DML012.dml").read_text().split("\n")[loc["line"] - 1]
    assert text[loc["column"] - 1 : loc["end_column"] - 1] == "dta.dataset"


def test_json_ok_is_an_empty_list_on_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--format", "json", str(ROOT / "examples" / "quickstart.dml")]) == 0
    assert json.loads(capsys.readouterr().out) == []


def _stdin(data: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "dmlc.cli", "check", "-", *args], input=data, capture_output=True)


def test_check_reads_stdin_as_the_file_it_is_named() -> None:
    bad = b'pipeline b {\n  task t {\n    command = ["x"]\n    after = [trian]\n  }\n}\n'
    done = _stdin(bad)
    assert done.returncode == 1 and b"--> <stdin>.dml:4:14" in done.stderr and b"^^^^^" in done.stderr
    done = _stdin(
        b"pipeline: y\nsteps:\n  t: {kind: task, command: [x], after: [trian]}\n",
        "--stdin-filename",
        "p.yaml",
        "--format",
        "short",
    )
    assert done.returncode == 1 and done.stderr.startswith(b"p.yaml:3:") and b"[DML012]" in done.stderr
    done = _stdin((ROOT / "examples" / "quickstart.dml").read_bytes(), "--format", "json")
    assert done.returncode == 0 and json.loads(done.stdout) == []


@pytest.mark.parametrize(("data", "code"), [(b"\xff\xfe pipeline", b"DML004"), (b"#" * (9 << 20), b"DML200")])
def test_hostile_stdin_is_a_coded_error(data: bytes, code: bytes) -> None:
    done = _stdin(data)
    assert done.returncode == 1 and code in done.stderr and b"Traceback" not in done.stderr
