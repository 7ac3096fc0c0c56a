"""`dmlc fmt` never changes what a pipeline means (issue 12), found by the CLI fuzz: a string holding a
backspace or a form feed came out as JSON's `\\b` / `\\f`, which .dml does not read back (DML001 on the
formatted file); a control character in a kept leading comment made `--to yaml` write YAML that does
not load (DML007). Numbers out of range are refused with DML022 (see test_hostile_files).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlc.driver import load
from tests.adversarial.cli_support import run_cli

CASES = [
    ("backspace and form feed", 'pipeline p {\n  task a {\n    command = ["a\\u0008\\\\b\\u000c", "\\\\f"]\n  }\n}\n'),
    ("escaped names", 'pipeline p {\n  task a {\n    command = ["x"]\n    labels { "k\\u000c" = "\\u0008" }\n  }\n}\n'),
    ("controls in comments", '# a\u0008b\u007fc\u0001\n# \u200fd\npipeline p {\n  task a { command = ["x"] }\n}\n'),
]


@pytest.mark.parametrize("to", ["dml", "yaml"])
@pytest.mark.parametrize(("name", "text"), CASES, ids=[c[0] for c in CASES])
def test_formatted_output_reads_back_as_the_same_pipeline(
    name: str, text: str, to: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, formatted = tmp_path / "p.dml", tmp_path / f"out.{to}"
    source.write_text(text, encoding="utf-8")
    status, err = run_cli(capsys, "fmt", str(source), "--to", to, "-o", str(formatted))
    assert status == 0, err
    assert load(str(formatted)).pipeline == load(str(source)).pipeline
    again = tmp_path / f"again.{to}"
    assert run_cli(capsys, "fmt", str(formatted), "-o", str(again))[0] == 0
    assert again.read_text(encoding="utf-8") == formatted.read_text(encoding="utf-8")


def test_a_pipeline_without_steps_is_dml024_before_any_target_sees_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """KFP's compiler raised on an empty pipeline (DML900); Argo refuses a DAG without tasks."""
    path = tmp_path / "p.yaml"
    path.write_text("pipeline: p\nparams: {items: [p]}\n")
    for target in ("argo", "kfp", "local"):
        status, err = run_cli(capsys, "compile", str(path), "-t", target)
        assert status == 1 and "error[DML024]: pipeline `p` has no steps" in err, err
