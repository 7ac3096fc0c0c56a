"""Syntax errors for people and editors (issue 13): several per file, and an unclosed `{` reported where
indentation says its block ends, not only at the pipeline's brace and the end of the file."""

from __future__ import annotations

from pathlib import Path

from dmlc.driver import check_file

SEVERAL = """pipeline p {
  task a {
    command = ["x"]
    timeout = = 2
  }
  task b {
    command = ["y"]
    priority =
  }
  task c { command = ["ok"] }
}
"""
UNCLOSED = """pipeline p {
  task c { command = ["ok"] }
  task a {
    command = ["x"]

  task b {
    command = ["y"]
  }
}
"""


def _codes(tmp_path: Path, text: str) -> list[tuple[str, int, int]]:
    path = tmp_path / "p.dml"
    path.write_text(text)
    return [(d.code, d.span.line, d.span.col) for d in check_file(str(path)) if d.span]


def test_several_syntax_errors_are_reported_in_one_check(tmp_path: Path) -> None:
    assert _codes(tmp_path, SEVERAL) == [("DML001", 4, 15), ("DML001", 9, 3)]


def test_an_unclosed_brace_is_found_by_indentation(tmp_path: Path) -> None:
    path = tmp_path / "p.dml"
    path.write_text(UNCLOSED)
    [diag] = check_file(str(path))
    assert (diag.code, diag.span.line, diag.span.col) == ("DML003", 3, 10)  # `task a {`, not `pipeline p {`
    first = diag.secondary[0]
    assert (first.span.line, first.note) == (
        6,
        "by its indentation, the block ends before this line",
    )


def test_one_error_per_bad_line_and_never_a_phantom(tmp_path: Path) -> None:
    """Blanking a line that opens a block would unbalance the braces: recovery stops there."""
    text = SEVERAL.replace("  task b {\n", "  task b { = \n")
    codes = _codes(tmp_path, text)
    assert codes[0] == ("DML001", 4, 15) and len(codes) == len(set(c[1] for c in codes))
