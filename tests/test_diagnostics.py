"""Diagnostics: every code is tested (a fixture file, or a named test), explain pages, renderings.

Each fixture's first line is `# expect: DMLxxx at LINE:COL`; checking the file must give that code
with its primary caret at that place. Codes a `.dml` file cannot show (a bad `--param`, a target's
limits, the environment, internal errors) name the test that covers them in TESTED_BY. The
renderings of DML012 (human, short, json) are golden.
"""

from __future__ import annotations

import ast
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
FRONT_END_CODES = sorted(c for c in CATALOGUE if c < "DML100")
# Codes that a fixture file cannot show (`dmlc check FILE` alone does not give them): the test that does.
TESTED_BY: dict[str, str] = {
    "DML027": "tests/test_environment.py::test_params_are_typed_and_declared",
    "DML100": "tests/targets/test_argo.py::test_dml100_at_each_attribute_argo_cannot_express",
    "DML101": "tests/targets/test_argo.py::test_dml101_bad_target_option",
    "DML102": "tests/targets/test_argo.py::test_dml102_names_invalid_after_sanitising",
    "DML103": "tests/test_cli.py::test_unknown_target",
    "DML104": "tests/test_build.py::test_user_code_not_in_the_image_is_dml104_at_the_reference",
    "DML106": "tests/test_engine_metrics.py::test_dml106_a_metric_name_argo_cannot_show",
    "DML107": "tests/test_object_store.py::test_argo_dml107_where_the_shared_volume_is_needed",
    "DML200": "tests/test_environment.py::test_missing_input_is_dml200",
    "DML201": "tests/test_environment.py::test_output_into_a_missing_folder_is_dml201",
    "DML202": "tests/test_environment.py::test_foreign_sqlite_store_is_refused_untouched",
    "DML203": "tests/test_environment.py::test_output_to_dev_full_is_dml203",
    "DML204": "tests/test_environment.py::test_serve_on_a_taken_port_is_dml204",
    "DML205": "tests/test_environment.py::test_graph_without_graphviz_is_dml205",
    "DML206": "tests/adversarial/test_step_outputs.py::test_a_hostile_param_output_fails_its_step",
    "DML207": "tests/adversarial/test_secrets.py::test_a_missing_secret_is_dml207_before_anything_runs",
    "DML208": "tests/test_submit.py::test_argo_server_errors_are_coded",
    "DML209": "tests/test_submit.py::test_argo_server_errors_are_coded",
    "DML210": "tests/test_submit.py::test_argo_server_errors_are_coded",
    "DML211": "tests/test_submit.py::test_a_rejected_request_is_dml211",
    "DML212": "tests/test_object_store.py::test_store_failures_are_dml212_before_anything_runs",
    "DML213": "tests/test_object_store.py::test_an_upload_that_does_not_verify_is_dml213",
    "DML900": "tests/test_cli.py::test_internal_error_is_dml900",
}


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
    expected = set(FRONT_END_CODES) - set(TESTED_BY)
    assert sorted(expected - have) == [], "codes without a fixture"
    assert sorted(have - expected) == [], "fixtures for codes not in the catalogue (or listed in TESTED_BY)"


def test_every_code_has_a_fixture_or_a_named_test() -> None:
    have = {p.stem for p in fixtures()}
    assert sorted(set(CATALOGUE) - have - set(TESTED_BY)) == [], "codes no test shows"
    assert sorted(have & set(TESTED_BY)) == [], "codes with a fixture need no TESTED_BY entry"
    assert sorted(set(TESTED_BY) - set(CATALOGUE)) == [], "TESTED_BY names codes not in the catalogue"


@pytest.mark.parametrize("code", sorted(TESTED_BY))
def test_tested_by_names_a_test_that_shows_the_code(code: str) -> None:
    file, _, name = TESTED_BY[code].partition("::")
    path = ROOT / file
    assert path.is_file(), f"{code}: no file {file}"
    source = path.read_text(encoding="utf-8")
    found = [
        node
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
    ]
    assert found, f"{code}: no test function `{name}` in {file}"
    assert code in (ast.get_source_segment(source, found[0]) or ""), f"{code}: `{name}` never mentions it"


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_every_code_has_an_explain_page(code: str) -> None:
    page = PAGES / f"{code}.md"
    assert page.is_file(), f"missing {page.relative_to(ROOT)}"
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# {code}: {CATALOGUE[code].title}\n")
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

SHORT = "tests/fixtures/diagnostics/DML012.dml:6:14: error: unknown step `dta` [DML012]\n"

JSON = [
    {
        "code": "DML012",
        "severity": "error",
        "message": "unknown step `dta`",
        "location": {
            "file": "tests/fixtures/diagnostics/DML012.dml",
            "line": 6,
            "column": 14,
            "end_line": 6,
            "end_column": 25,
            "note": "no step named `dta` in pipeline `p`",
        },
        "related": [],
        "help": "a step with a similar name exists: `data`",
        "fixes": [
            {
                "range": {"file": DML012, "line": 6, "column": 14, "end_line": 6, "end_column": 17},
                "replacement": "data",
            }
        ],
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
    assert json.loads(capsys.readouterr().out) == JSON  # the command's output: `| jq` gets it


def test_duplicate_shows_both_places() -> None:
    diags = check_file(str(FIXTURES / "DML013.dml"))
    [dup] = [d for d in diags if d.code == "DML013"]
    assert [(lab.span.line, lab.span.col) for lab in dup.secondary if lab.span] == [(4, 10)]
