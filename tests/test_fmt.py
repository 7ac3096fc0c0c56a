"""`dmlc fmt` (issue 13): layout only, every comment kept, idempotent, examples canonical, twins keep comments."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmlc.cli import main
from dmlc.fmt import formatted
from dmlc.fmt_comments import raw_comments, to_hash
from dmlc.parse import parse_text

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.dml")) + sorted((ROOT / "examples").glob("*.yaml"))


def comment_texts(text: str, path: str) -> list[str]:
    return sorted(to_hash(c[2]) for c in raw_comments(text, path.endswith(".yaml")))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_canonical_and_keeps_its_comments(example: Path) -> None:
    text = example.read_text(encoding="utf-8")
    assert formatted(text, str(example)) == text, f"run `dmlc fmt {example.relative_to(ROOT)}`"
    for to, suffix in (("yaml", ".yaml"), ("dml", ".dml")):
        out = formatted(text, str(example), to)
        assert parse_text(out, "x" + suffix).data == parse_text(text, example.name).data
        assert formatted(out, "x" + suffix) == out  # the twin is canonical too
        kept = comment_texts(out, "x" + suffix)
        lost = [c for c in comment_texts(text, example.name) if c not in kept and "yaml-language-server" not in c]
        assert not lost


WORDS = st.text(st.sampled_from("abc xyz#/=-{}\"'"), max_size=12).map(lambda s: s.replace("\n", ""))


@st.composite
def commented(draw: st.DrawFn) -> str:
    """A small valid pipeline with comments (`#` and `//`) and blank lines in every place they can go."""

    def com() -> str:
        return draw(st.sampled_from(["#", "//", "# "])) + draw(WORDS)

    def gap() -> str:
        return draw(st.sampled_from(["\n", "\n\n", "\n\n\n", f"  {com()}\n", f"\n{com()}\n", f"\n  {com()}\n\n"]))

    lines = [f"{com()}\n" if draw(st.booleans()) else "", "pipeline p {", gap()]
    for i in range(draw(st.integers(1, 3))):
        lines += [f"task s{i} {{", gap(), ' command = ["x"', gap(), ', "y"]', gap()]
        if draw(st.booleans()):
            lines += ["labels {", gap(), 'k = "v"', gap(), "}", gap()]
        if draw(st.booleans()):
            lines += ["retry { limit = 2 }", gap()]
        lines += ["}", gap()]
    lines += ["}", gap()]
    return "".join(lines)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=commented())
def test_generated_commented_files_keep_every_comment(text: str) -> None:
    out = formatted(text, "p.dml")
    assert parse_text(out, "p.dml").data == parse_text(text, "p.dml").data
    assert comment_texts(out, "p.dml") == comment_texts(text, "p.dml")
    assert formatted(out, "p.dml") == out
    yaml_out = formatted(text, "p.dml", "yaml")
    assert parse_text(yaml_out, "p.yaml").data == parse_text(text, "p.dml").data
    kept = comment_texts(yaml_out, "p.yaml")
    assert all(to_hash(c) in kept for c in comment_texts(text, "p.dml"))
    back = formatted(yaml_out, "p.yaml", "dml")
    assert parse_text(back, "p.dml").data == parse_text(text, "p.dml").data
    assert formatted(yaml_out, "p.yaml") == yaml_out


MESSY = 'pipeline p {   # top\n task a {command=["x"]   // why\n\n\n\n  retry{limit=2}}\n}\n'


def test_in_place_check_and_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.dml"
    path.write_text(MESSY)
    assert main(["fmt", str(path), "--check"]) == 1
    assert main(["fmt", str(path), "--diff"]) == 1
    assert '+    command = ["x"]  // why' in capsys.readouterr().out
    assert path.read_text() == MESSY  # --check and --diff write nothing
    assert main(["fmt", str(path)]) == 0
    assert (
        path.read_text()
        == 'pipeline p {  # top\n  task a {\n    command = ["x"]  // why\n\n    retry { limit = 2 }\n  }\n}\n'
    )
    assert main(["fmt", str(path), "--check"]) == 0


@pytest.mark.parametrize(
    ("text", "code"),
    [("pipeline p {\n  task a {\n", "DML003"), ("pipeline p { task a { x = 'y' } }", "DML001"), ("", "DML006")],
)
def test_bad_input_is_a_coded_error_and_the_file_is_untouched(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, code: str
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(text)
    assert main(["fmt", str(path)]) == 1
    err = capsys.readouterr().err
    assert code in err and "Traceback" not in err
    assert path.read_text() == text


def test_several_files_each_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.dml", tmp_path / "bad.dml"
    good.write_text(MESSY)
    bad.write_text("pipeline p {")
    assert main(["fmt", str(bad), str(good)]) == 1
    assert "DML003" in capsys.readouterr().err
    assert main(["fmt", str(good), "--check"]) == 0
