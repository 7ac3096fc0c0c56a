"""A param's value must fit every attribute it feeds (issue 12): `params { epochs = "abc" }` with
`epochs = params.epochs` compiled, although `--param epochs=abc` was refused. Each case is checked and
compiled for every target; the oracle is the coded error naming the param and the attribute."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.adversarial.cli_support import check_and_compile, run_cli


def _train(params: str, attrs: str) -> str:
    return (
        f'pipeline p {{\n  params {{ {params} }}\n  ingest d {{ dataset = "digits" }}\n'
        f"  train m {{\n    data = d.dataset\n    {attrs}\n  }}\n}}\n"
    )


CASES = [
    ("text for epochs", _train('epochs = "abc"', "epochs = params.epochs"), "DML020", "`epochs` of train step `m`"),
    ("zero epochs", _train("epochs = 0", "epochs = params.epochs"), "DML022", "greater than or equal to 1"),
    ("a negative rate", _train("lr = -0.1", "learning_rate = params.lr"), "DML022", "`learning_rate`"),
    ("true for a batch", _train("n = true", "steps_per_epoch = params.n"), "DML020", "param `n` is true"),
    ("a number for a model", _train("m = 5", "model = params.m"), "DML020", "`model` of train step"),
    (
        "text to fan out over",
        'pipeline p {\n  params { xs = "abc" }\n  task t {\n    for_each = params.xs\n    command = ["echo"]\n  }\n}\n',
        "DML020",
        "`for_each` of task step `t` expects a list",
    ),
]


@pytest.mark.parametrize(("name", "text", "code", "words"), CASES, ids=[c[0] for c in CASES])
def test_a_param_of_the_wrong_type_for_its_attribute_is_a_coded_error(
    name: str, text: str, code: str, words: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(text)
    for argv in check_and_compile(str(path), str(tmp_path / "o")):
        status, err = run_cli(capsys, *argv)
        assert status == 1 and f"error[{code}]: param `" in err and words in err and "declared here" in err, err


def test_a_param_given_on_the_command_line_is_checked_against_the_attribute(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(_train("epochs = 3", "epochs = params.epochs"))
    status, err = run_cli(capsys, "compile", str(path), "-t", "argo", "--param", "epochs=0")
    assert status == 1 and "error[DML022]: param `epochs` is 0 (from --param)" in err, err
    status, err = run_cli(capsys, "compile", str(path), "-t", "argo", "--param", "epochs=5", "-o", str(tmp_path / "o"))
    assert status == 0, err


def test_params_that_fit_and_params_in_text_pass(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    attrs = 'epochs = params.e\n    learning_rate = params.lr\n    labels = { run = "r-${params.name}" }'
    path = tmp_path / "p.dml"
    path.write_text(_train("e = 2  lr = 1  name = 7", attrs))
    assert run_cli(capsys, "check", str(path)) == (0, "")
