"""Diagnostics: one fixture per code (tests/fixtures/diagnostics/DMLxxx.*), explain pages, renderings.

Each fixture's first line is `# expect: DMLxxx at LINE:COL`; checking the file must give that code
with its primary caret at that place. The renderings of DML012 (human, short, json) are golden.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from dmlc.cli import main
from dmlc.diagnostics.catalogue import CATALOGUE, explain_page
from dmlc.diagnostics.model import Diagnostic
from dmlc.diagnostics.render import render
from dmlc.driver import check_file
from dmlc.parse import decode

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "diagnostics"
PAGES = ROOT / "dmlc" / "diagnostics" / "pages"
EXPECT = re.compile(r"^# expect: (DML\d{3}) at (\d+):(\d+)$")
# Codes in the front-end range that nothing emits yet, so they cannot have a fixture.
NOT_EMITTED: dict[str, str] = {}
FRONT_END_CODES = sorted(c for c in CATALOGUE if c < "DML100")


def fixtures() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if p.suffix in (".dml", ".yaml"))


def expectation(path: Path) -> tuple[str, int, int]:
    first = path.read_bytes().split(b"\n", 1)[0].decode("utf-8")
    match = EXPECT.match(first)
    assert match, f"{path.name}: first line must be `# expect: DMLxxx at LINE:COL`"
    return match.group(1), int(match.group(2)), int(match.group(3))


def where(diag: Diagnostic) -> str:
    span = diag.span
    return f"{diag.code} at {span.line}:{span.col}" if span else f"{diag.code} (no location)"


@pytest.mark.parametrize("fixture", fixtures(), ids=lambda p: p.name)
def test_fixture_gives_its_code_at_its_place(fixture: Path) -> None:
    code, line, col = expectation(fixture)
    assert fixture.stem == code, "a fixture is named after the code it shows"
    diags = check_file(str(fixture))
    assert diags, f"{fixture.name} checked clean"
    assert all(d.code in CATALOGUE for d in diags)
    found = [where(d) for d in diags]
    assert f"{code} at {line}:{col}" in found, f"got {found}"


def test_every_front_end_code_has_a_fixture() -> None:
    have = {p.stem for p in fixtures()}
    expected = set(FRONT_END_CODES) - set(NOT_EMITTED)
    assert sorted(expected - have) == [], "codes without a fixture"
    assert sorted(have - expected) == [], "fixtures for codes not in the catalogue (or marked not emitted)"


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_code_has_an_explain_page(code: str) -> None:
    page = PAGES / f"{code}.md"
    assert page.is_file(), f"missing {page.relative_to(ROOT)}"
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# {code}: {CATALOGUE[code]}\n")
    for heading in ("## What it means", "## Example", "## How to fix it"):
        assert heading in text, f"{code}.md has no `{heading}` section"
    assert explain_page(code.lower()) == text


def test_explain_command_prints_the_page(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "DML012"]) == 0
    assert capsys.readouterr().out == (PAGES / "DML012.md").read_text(encoding="utf-8")
    assert main(["explain", "DML999"]) == 2


# --- golden renderings of one diagnostic (DML012, with a did-you-mean help line) ---

DML012 = "tests/fixtures/diagnostics/DML012.dml"

HUMAN = """\
error[DML012]: unknown step `dta`
 --> tests/fixtures/diagnostics/DML012.dml:6:14
  |
6 |     data   = dta.dataset
  |              ^^^^^^^^^^^ no step named `dta` in pipeline `p`
  |
  = help: a step with a similar name exists: `data`

error: found 1 error
"""

SHORT = "tests/fixtures/diagnostics/DML012.dml:6:14: error[DML012]: unknown step `dta`\n"

JSON = [
    {
        "code": "DML012",
        "severity": "error",
        "message": "unknown step `dta`",
        "location": {
            "file": "tests/fixtures/diagnostics/DML012.dml",
            "line": 6,
            "column": 14,
            "note": "no step named `dta` in pipeline `p`",
        },
        "related": [],
        "help": "a step with a similar name exists: `data`",
    }
]


@pytest.fixture
def dml012(monkeypatch: pytest.MonkeyPatch) -> tuple[list[Diagnostic], dict[str, object]]:
    monkeypatch.chdir(ROOT)  # relative paths keep the goldens independent of the checkout
    diags = check_file(DML012)
    return diags, {DML012: decode(DML012, Path(DML012).read_bytes())}


def test_golden_human(dml012: tuple[list[Diagnostic], dict[str, object]]) -> None:
    diags, sources = dml012
    assert render(diags, sources, "human") == HUMAN  # type: ignore[arg-type]


def test_golden_short(dml012: tuple[list[Diagnostic], dict[str, object]]) -> None:
    diags, sources = dml012
    assert render(diags, sources, "short") == SHORT  # type: ignore[arg-type]


def test_golden_json(dml012: tuple[list[Diagnostic], dict[str, object]]) -> None:
    diags, sources = dml012
    assert json.loads(render(diags, sources, "json")) == JSON  # type: ignore[arg-type]


def test_cli_prints_the_same_renderings(dml012: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", DML012]) == 1
    assert capsys.readouterr().err == HUMAN
    assert main(["check", "--format", "short", DML012]) == 1
    assert capsys.readouterr().err == SHORT
    assert main(["check", "--format", "json", DML012]) == 1
    assert json.loads(capsys.readouterr().err) == JSON


def test_duplicate_shows_both_places() -> None:
    diags = check_file(str(FIXTURES / "DML013.dml"))
    [dup] = [d for d in diags if d.code == "DML013"]
    assert [(lab.span.line, lab.span.col) for lab in dup.secondary if lab.span] == [(4, 10)]
