"""The `dmlc` command: exit codes, output formats, fmt round trips, graph, explain, schema sync."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dmlc.cli import main
from dmlc.driver import load
from dmlc.schema import schema_text

ROOT = Path(__file__).resolve().parents[1]
BOOK = str(ROOT / "examples" / "fashion_mnist.dml")


def test_check_ok(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", BOOK]) == 0
    assert "no errors" in capsys.readouterr().out


def test_check_error_formats(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.dml"
    bad.write_text('pipeline b {\n  task t {\n    command = ["x"]\n    after = [trian]\n  }\n}\n')
    assert main(["check", str(bad)]) == 1
    human = capsys.readouterr().err
    assert "error[DML012]: unknown step `trian`" in human and "--> " in human and "^^^^^" in human
    assert main(["check", "--format", "short", str(bad)]) == 1
    assert capsys.readouterr().err.startswith(f"{bad}:4:14: error: unknown step `trian` [DML012]")
    assert main(["check", "--format", "json", str(bad)]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data[0]["code"] == "DML012" and data[0]["location"]["line"] == 4


def test_usage_error_exit_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["compile"])
    assert info.value.code == 2


def test_unknown_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compile", BOOK, "--target", "airflow"]) == 1
    assert "DML103" in capsys.readouterr().err


def test_explain(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "DML012"]) == 0
    assert "DML012" in capsys.readouterr().out
    assert main(["explain", "DML999"]) == 2


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.dml")), ids=lambda p: p.stem)
def test_fmt_round_trip(example: Path, tmp_path: Path) -> None:
    out_dml, out_yaml = tmp_path / "a.dml", tmp_path / "a.yaml"
    assert main(["fmt", str(example), "-o", str(out_dml)]) == 0
    assert main(["fmt", str(example), "--to", "yaml", "-o", str(out_yaml)]) == 0
    original = load(str(example)).pipeline
    assert load(str(out_dml)).pipeline == original
    assert load(str(out_yaml)).pipeline == original
    assert out_dml.read_text() == example.read_text()  # every example is canonical
    assert main(["fmt", str(example), "--check"]) == 0
    assert main(["fmt", str(example.with_suffix(".yaml")), "--check"]) == 0
    assert main(["fmt", str(out_yaml), "--to", "dml", "-o", str(tmp_path / "b.dml")]) == 0
    assert load(str(tmp_path / "b.dml")).pipeline == original


def test_graph_formats(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", BOOK]) == 0
    assert "model --> best" in capsys.readouterr().out
    assert main(["graph", BOOK, "--format", "dot"]) == 0
    assert '"data" -> "model";' in capsys.readouterr().out


def test_schema_in_sync() -> None:
    committed = (ROOT / "schema" / "dmlc.schema.json").read_text(encoding="utf-8")
    assert committed == schema_text(), "run `dmlc schema -o schema/dmlc.schema.json`"


def test_schema_validates_yaml_examples() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    schema = json.loads(schema_text())
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        first = example.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), example.name
        jsonschema.validate(yaml.safe_load(example.read_text(encoding="utf-8")), schema)
    bad = {"pipeline": "x", "steps": {"a": {"kind": "train", "data": "${d.x}", "bogus": 1}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)


def test_check_never_imports_heavy_modules() -> None:
    code = (
        f"import sys; from dmlc.cli import main; main(['check', {BOOK!r}]); main(['fmt', {BOOK!r}]);"
        "heavy = [m for m in ('tensorflow', 'keras', 'tf_keras', 'kfp', 'hera', 'networkx') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_internal_error_is_dml900(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import dmlc.driver

    def boom(path: str) -> list[object]:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(dmlc.driver, "check_file", boom)
    assert main(["check", BOOK]) == 1
    err = capsys.readouterr().err
    assert "DML900" in err and "dmlc bug" in err and "Traceback" not in err
