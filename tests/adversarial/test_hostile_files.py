"""Hostile pipeline files, one family per table (issue 12): numbers out of every engine's range, text a
process cannot receive, names Kubernetes refuses. Each case runs through `check` and `compile` for
every target; the oracle is a coded error at its line (exit 1), never DML900 or a traceback.
Add a case by adding a row: (name, file text, expected code).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlc.parse import dml, yaml_front
from tests.adversarial.cli_support import check_and_compile, peak_mb, run_cli

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


@pytest.mark.parametrize(("name", "text", "code"), NUMBERS + PROCESS_TEXT, ids=[c[0] for c in NUMBERS + PROCESS_TEXT])
def test_hostile_file_is_a_coded_error_everywhere(
    name: str, text: str, code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "p.dml"
    path.write_text(text)
    for argv in check_and_compile(str(path), str(tmp_path / "o")):
        status, err = run_cli(capsys, *argv)
        assert status == 1 and f"error[{code}]" in err, (argv, err)


def test_a_huge_integer_in_yaml_is_a_coded_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        f'pipeline: p\nsteps:\n  a:\n    kind: task\n    command: ["true"]\n    resources: {{memory: {DIGITS}}}\n'
    )
    status, err = run_cli(capsys, "check", str(path))
    assert status == 1 and "error[DML" in err


def _escapes(count: int) -> str:
    return 'pipeline p {\n  task a {\n    command = ["echo", "' + "\\n" * count + '"]\n  }\n}\n'


def test_a_string_of_four_million_escapes_is_lexed_in_little_memory(tmp_path: Path) -> None:
    """The STRING regex saved state per escape (its loop was a repeated group): 2 MB of `\\n` took 430 MB,
    10 MB 2.1 GB. A first check builds the parser's cache (100 MB more), so one runs before."""
    path, small = tmp_path / "p.dml", tmp_path / "small.dml"
    small.write_text(_escapes(1))
    path.write_text(_escapes(4_000_000))
    assert peak_mb("check", str(small))[0] == 0
    status, err, peak = peak_mb("check", str(path))
    assert status == 0 and peak < 300, (err, peak)


@pytest.mark.parametrize("name", ["10 MB of escapes", "/dev/zero"])
def test_a_file_over_8_mib_is_dml200_before_it_is_read(name: str, tmp_path: Path) -> None:
    path = "/dev/zero" if name == "/dev/zero" else str(tmp_path / "p.dml")
    if name != "/dev/zero":
        Path(path).write_text(_escapes(5_000_000))
    status, err, peak = peak_mb("check", path)
    assert status == 1 and "error[DML200]" in err and "larger than 8 MiB" in err and peak < 200, (err, peak)


@pytest.mark.parametrize(
    ("name", "text", "words", "line"),
    [
        ("dml", "pipeline p {\n  task a {\n    command = [" + '"a" ' * 2000 + "]\n  }\n}\n", "1,000 tokens", 3),
        ("dml commas", 'pipeline p {\n  task a {\n    command = ["a"' + "," * 2000 + "]\n  }\n}\n", "1,000 tokens", 3),
        ("yaml", "pipeline: p\nsteps:\n  a:\n    kind: task\n    command: [" + "a, " * 2000 + "b]\n", "1,000 keys", 5),
    ],
)
def test_a_file_of_too_many_tokens_is_dml200_at_the_first_one_too_many(
    name: str,
    text: str,
    words: str,
    line: int,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tokens, not bytes, make a parse big (8 MB of `1 ` reached 1 GB and 10 s): each front end counts
    them (600,000 in .dml, 400,000 keys and values in YAML; lowered here to keep the test fast)."""
    monkeypatch.setattr(dml, "MAX_TOKENS", 1000)
    monkeypatch.setattr(yaml_front, "MAX_SCALARS", 1000)
    path = tmp_path / ("p.yaml" if name == "yaml" else "p.dml")
    path.write_text(text)
    status, err = run_cli(capsys, "check", str(path))
    assert status == 1 and "error[DML200]" in err and f"more than {words}" in err and f"{path}:{line}:" in err, err


def test_the_token_budget_holds_a_real_parse_under_half_a_gigabyte(tmp_path: Path) -> None:
    path = tmp_path / "p.dml"
    path.write_text("pipeline p {\n  task a {\n    command = [" + "1 " * 700_000 + "]\n  }\n}\n")
    status, err, peak = peak_mb("check", str(path))
    assert status == 1 and "more than 600,000 tokens" in err and peak < 500, (err, peak)


@pytest.mark.parametrize("to", ["yaml", "dml"])
@pytest.mark.parametrize("number", ["-1e999", "1e999", "99999999999999999999"])
def test_fmt_refuses_a_number_it_could_not_keep(
    to: str, number: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fmt --to yaml` wrote `-1e999` as `null`: fmt gives the same DML022 as check and writes nothing."""
    path, out = tmp_path / "p.dml", tmp_path / "out"
    path.write_text(
        f'pipeline p {{\n  params {{ x = {number} }}\n  train m {{\n    data = "x"\n    seed = {number}\n  }}\n}}\n'
    )
    status, err = run_cli(capsys, "fmt", str(path), "--to", to, "-o", str(out))
    assert status == 1 and err.count("error[DML022]") == 2 and not out.exists(), err


@pytest.mark.parametrize(
    ("suffix", "text", "code"),
    [
        (".dml", "pipeline p {\n" + '  task a { command = ["x"] }\n' * 3000 + "}\n", "DML013"),
        (".yaml", "pipeline: p\n" + "steps: {a: {kind: task, command: [x]}}\n" * 3000, "DML008"),
    ],
    ids=["dml", "yaml"],
)
def test_a_file_of_thousands_of_duplicates_reports_the_first_fifty(
    suffix: str, text: str, code: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every duplicate was reported and shown: 50,000 copied steps took 25 s to print."""
    path = tmp_path / f"p{suffix}"
    path.write_text(text)
    status, err = run_cli(capsys, "check", str(path))
    assert status == 1 and err.count(f"error[{code}]") == 50 and "found 50 errors" in err, err[-500:]
