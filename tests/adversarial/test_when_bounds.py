"""Hostile `when` expressions (issue 12): too long or too deep to parse, or building huge values at run
time. The oracle: a DML025 at check, or the step failing with a clear message within a second and a
few MB, never DML900 and never gigabytes."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlc.cli import main
from dmlc.ir import when as when_ir
from dmlc.semantics import when
from dmlc.semantics.values import ResolveError


def _pipeline(condition: str) -> str:
    task = f'  task a {{\n    command = ["true"]\n    when = "{condition}"\n  }}\n'
    return f"pipeline p {{\n  params {{ go = true }}\n{task}}}\n"


@pytest.mark.parametrize(
    "condition",
    [
        "not " * 100_000 + "params.go",
        " or ".join(["params.go"] * 200_000),
        "not " * 2_400 + "params.go",
        "(" * 500 + "params.go" + ")" * 500,
    ],
    ids=["100k nots", "200k terms", "deep nots", "deep parentheses"],
)
def test_an_expression_too_long_or_deep_is_dml025(
    condition: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(_pipeline(condition))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert "error[DML025]" in err and "DML900" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("len('a' * 1500000000) > 0", "more than 100,000 items"),
        ("len(1500000000 * [0]) > 0", "more than 100,000 items"),
        ("len('%9999999999d' % 1) > 0", "`%` in a `when` takes numbers"),
        ("sum([[0] * 3000] * 3000, []) == []", "`sum` in a `when` takes numbers"),
    ],
)
def test_a_huge_value_stops_the_evaluation(text: str, message: str) -> None:
    with pytest.raises(ResolveError, match=message):
        when.holds(when_ir.parse(text), lambda ref: None)


@pytest.mark.parametrize(
    ("text", "result"),
    [("sum([1, 2.5]) == 3.5", True), ("'ab' * 2 == 'abab'", True), ("[1] + [2] == [1, 2]", True), ("7 % 4 == 3", True)],
)
def test_ordinary_arithmetic_still_works(text: str, result: bool) -> None:
    assert when.holds(when_ir.parse(text), lambda ref: None) is result


def test_a_huge_value_fails_the_step_not_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.dml").write_text(_pipeline("len('a' * 1500000000) > 0"))
    assert main(["run", "p.dml", "--local"]) == 3  # the run failed at the step, cleanly
