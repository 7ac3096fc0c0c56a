"""The entry point: exit codes, one-line errors, and no TensorFlow on import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import REPO, spec_data, step_env


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, dmlc.runtime, dmlc.runtime.__main__, dmlc.runtime.select_step; print('tensorflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], env=step_env(), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_bad_spec_is_one_line_exit_1(tmp_path: Path) -> None:
    spec = tmp_path / "spec.json"
    spec.write_text("{not json")
    argv = [sys.executable, "-m", "dmlc.runtime", "select", "--spec", str(spec)]
    proc = subprocess.run(argv, env=step_env(), capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1 and "not valid JSON" in proc.stderr


def test_spec_json_and_outputs_flag(tmp_path: Path) -> None:
    model = tmp_path / "m"
    model.mkdir()
    (model / "dmlc_metrics.json").write_text('{"accuracy": 0.5}')
    data = spec_data("select", {"models": [str(model)]}, tmp_path, step="best")
    del data["outputs_dir"]
    spec = json.dumps(data)
    argv = [sys.executable, "-m", "dmlc.runtime", "select", "--spec-json", spec, "--outputs", str(tmp_path / "o")]
    proc = subprocess.run(argv, env=step_env(), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "o" / "model" / "dmlc_metrics.json").exists()


def test_min_success_gate_filters_missing_and_enforces_the_minimum() -> None:
    from dmlc.semantics.values import ResolveError, apply_min_success

    attrs = {"models": ["/a", None, "/c"], "metric": "accuracy", "inputs": {"xs": [1, "", 3, "null"]}}
    assert apply_min_success(attrs, {"models": 2})["models"] == ["/a", "/c"]
    assert apply_min_success(attrs, {"inputs.xs": 2})["inputs"] == {"xs": [1, 3]}
    assert attrs["inputs"]["xs"] == [1, "", 3, "null"]  # the caller's value is not changed
    with pytest.raises(ResolveError, match="min_success = 3"):
        apply_min_success(attrs, {"models": 3})


def test_a_spec_of_another_version_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    data = spec_data("select", {"models": ["/m"]}, tmp_path) | {"spec_version": 0, "dmlc": "0.0.1"}
    argv = [sys.executable, "-m", "dmlc.runtime", "select", "--spec-json", json.dumps(data)]
    proc = subprocess.run(argv, env=step_env(), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1
    assert "format version 0 (written by dmlc 0.0.1)" in proc.stderr and "reads version 1" in proc.stderr


def test_attributes_are_typed_when_the_spec_is_read(tmp_path: Path) -> None:
    """A value of the wrong type (e.g. a param given as text) fails before the step runs, naming it."""
    data = spec_data("select", {"models": ["/m"]}, tmp_path)
    data["attrs"]["top"] = "two"
    argv = [sys.executable, "-m", "dmlc.runtime", "select", "--spec-json", json.dumps(data)]
    proc = subprocess.run(argv, env=step_env(), capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 1 and "attrs.select.top" in proc.stderr
