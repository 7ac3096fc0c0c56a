"""Bad input (issue 2): every broken file gives exit 1 and a coded error at the right line:column.

Each case is checked twice: through `check_file` (the code and where the caret points) and through
the `dmlc check` command (exit 1, an `error[DMLxxx]` line, never a traceback).
"""

from __future__ import annotations

import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import pytest

from dmlc.cli import main
from dmlc.driver import check_file, load

HEAD = 'pipeline p {\n  ingest data { dataset = "digits" }\n'


@dataclass(frozen=True)
class Case:
    name: str
    text: str | bytes
    code: str
    line: int
    col: int
    suffix: str = ".dml"
    help: str | None = None  # a word the help line must contain


CASES = [
    Case("unterminated_string", 'pipeline p {\n  ingest data {\n    dataset = "digits\n  }\n}\n', "DML002", 3, 15),
    Case("missing_brace", 'pipeline p {\n  ingest data {\n    dataset = "digits"\n  }\n', "DML003", 1, 12),
    Case(
        "unknown_step_kind", HEAD + "  trian model {\n    data = data.dataset\n  }\n}\n", "DML010", 3, 3, help="train"
    ),
    Case(
        "misspelled_attribute",
        HEAD + "  train model {\n    data = data.dataset\n    epohcs = 3\n  }\n}\n",
        "DML011",
        5,
        5,
        help="`epochs`",
    ),
    Case("wrong_type", HEAD + '  train model {\n    data = data.dataset\n    epochs = "3"\n  }\n}\n', "DML020", 5, 14),
    Case(
        "bad_unit_2GB",
        HEAD + "  train model {\n    data = data.dataset\n    resources { memory = 2GB }\n  }\n}\n",
        "DML021",
        5,
        26,
        help="Gi",
    ),
    Case(
        "bad_unit_parsecs",
        HEAD + "  train model {\n    data = data.dataset\n    timeout = 10 parsecs\n  }\n}\n",
        "DML021",
        5,
        18,
    ),
    Case("duplicate_step", HEAD + '  ingest data { dataset = "mnist" }\n}\n', "DML013", 3, 10),
    Case(
        "duplicate_attribute", "pipeline p {\n  ingest data {\n    batch = 1\n    batch = 2\n  }\n}\n", "DML014", 4, 5
    ),
    Case(
        "unknown_reference",
        HEAD + "  train model {\n    data = dat.dataset\n  }\n}\n",
        "DML012",
        4,
        12,
        help="`data`",
    ),
    Case(
        "unknown_output",
        HEAD + "  train model {\n    data = data.datset\n  }\n}\n",
        "DML015",
        4,
        12,
        help="`dataset`",
    ),
    Case(
        "cycle",
        'pipeline p {\n  task a {\n    run = "m:a"\n    after = [b]\n  }\n'
        '  task b {\n    run = "m:b"\n    after = [a]\n  }\n}\n',
        "DML030",
        2,
        8,
    ),
    Case(
        "each_outside_for_each",
        HEAD + "  train model {\n    data = data.dataset\n    model = each\n  }\n}\n",
        "DML017",
        5,
        13,
    ),
    Case(
        "yaml_unknown_key",
        "pipeline: p\nsteps:\n  data:\n    kind: ingest\n    dataset: digits\n    bacth: 3\n",
        "DML011",
        6,
        5,
        ".yaml",
        "`batch`",
    ),
    Case("yaml_tab", "pipeline: p\nsteps:\n\tdata:\n\t\tkind: ingest\n", "DML007", 3, 1, ".yaml", "spaces"),
    Case("yaml_duplicate_key", "pipeline: p\npipeline: q\nsteps: {}\n", "DML008", 2, 1, ".yaml"),
    Case("empty_dml", "", "DML006", 1, 1),
    Case("blank_dml", "  \n\n# only a comment\n", "DML006", 1, 1),
    Case("empty_yaml", "", "DML006", 1, 1, ".yaml"),
    Case("non_utf8", b'pipeline p {\n  description = "caf\xe9"\n}\n', "DML004", 2, 21),
    Case("non_utf8_yaml", b"pipeline: p\ndescription: caf\xe9\n", "DML004", 2, 17, ".yaml"),
    Case("deep_dml", "pipeline p {\n  params { x = " + "[" * 20000 + "]" * 20000 + " }\n}\n", "DML005", 2, 78),
    Case("deep_dml_maps", "pipeline p {\n  params " + "{ a = " * 20000 + "1" + " }" * 20000 + "\n}\n", "DML005", 2, 0),
    # found by tests/test_properties.py; each escaped as a Python exception before
    Case("bad_unicode_escape", 'pipeline p {\n  description = "\\u12zz"\n}\n', "DML001", 2, 17),
    Case("yaml_control_character", "pipeline: p\n\x00steps: {}\n", "DML007", 2, 1, ".yaml"),
    Case("yaml_python_tag", "pipeline: p\ndescription: !!python/object:os.system x\n", "DML007", 2, 14, ".yaml"),
    Case("yaml_bad_int_tag", "pipeline: p\nsteps: {data: {kind: ingest, batch: !!int x}}\n", "DML007", 2, 37, ".yaml"),
    Case(
        "block_repeats_attribute",
        HEAD + "  train model {\n    data = data.dataset\n    data { limit = 2 }\n  }\n}\n",
        "DML014",
        5,
        5,
    ),
    Case("deep_yaml", "pipeline: p\nparams: {x: " + "[" * 20000 + "]" * 20000 + "}\n", "DML005", 2, 76, ".yaml"),
]


def _write(tmp_path: Path, case: Case) -> Path:
    path = tmp_path / f"{case.name}{case.suffix}"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_coded_error_at_the_right_place(tmp_path: Path, case: Case) -> None:
    path = _write(tmp_path, case)
    diags = check_file(str(path))
    assert diags, "a bad input checked clean"
    first = diags[0]
    assert first.code == case.code, [f"{d.code}: {d.message}" for d in diags]
    assert first.span is not None and first.span.file == str(path)
    assert first.span.line == case.line
    if case.col:  # 0: deep nesting, where the column of the reported level is not pinned down
        assert first.span.col == case.col
    if case.help:
        assert first.help and case.help in first.help, first.help


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_cli_exits_1_without_traceback(tmp_path: Path, case: Case, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, case)
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error[{case.code}]: ")
    assert f"--> {path}:{case.line}:" in err
    assert "Traceback" not in err and "DML900" not in err


def test_cycle_prints_its_path(tmp_path: Path) -> None:
    [case] = [c for c in CASES if c.name == "cycle"]
    [diag] = check_file(str(_write(tmp_path, case)))
    assert diag.message in ("dependency cycle: a -> b -> a", "dependency cycle: b -> a -> b")


def test_yaml_alias_bomb_fails_fast_in_small_memory(tmp_path: Path) -> None:
    lines = ["pipeline: p", 'a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    tracemalloc.start()
    started = time.perf_counter()
    try:
        diags = check_file(str(path))
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [d.code for d in diags] == ["DML009"]
    assert (diags[0].span.line, diags[0].span.col) == (2, 5)  # type: ignore[union-attr]
    assert elapsed < 1.0, f"took {elapsed:.2f} s"
    assert peak < 20 * 2**20, f"peak {peak / 2**20:.1f} MiB"


BIG = "x" * (5 * 2**20)
BIG_FILES = {
    "big.dml": f'pipeline p {{\n  description = "{BIG}"\n  ingest data {{ dataset = "digits" }}\n}}\n',
    "big_multiline.dml": f'pipeline p {{\n  description = """\n{BIG}"""\n  ingest data {{ dataset = "digits" }}\n}}\n',
    "big.yaml": f"pipeline: p\ndescription: {BIG}\nsteps:\n  data: {{kind: ingest, dataset: digits}}\n",
}


@pytest.mark.parametrize("name", sorted(BIG_FILES))
def test_five_megabyte_string_is_valid(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(BIG_FILES[name], encoding="utf-8")
    started = time.perf_counter()
    assert check_file(str(path)) == []
    assert time.perf_counter() - started < 3.0, "a big string must not make checking slow"
    assert load(str(path)).pipeline.description == BIG
