"""evaluate: test-split metrics of a SavedModel agree with what training measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.conftest import check, run_step


@pytest.mark.tf
def test_evaluate_matches_training(trained_model: Path, digits_dir: Path, tmp_path: Path) -> None:
    attrs = {"model": str(trained_model), "data": str(digits_dir), "metrics": ["accuracy", "loss", "f1"]}
    check(run_step("evaluate", attrs, tmp_path))
    metrics = json.loads((tmp_path / "outputs" / "metrics").read_text())
    trained = json.loads((trained_model / "dmlc_metrics.json").read_text())
    assert metrics["accuracy"] == pytest.approx(trained["accuracy"], abs=1e-6)
    assert metrics["loss"] == pytest.approx(trained["loss"], rel=1e-3)
    assert 0 < metrics["f1"] <= 1


def test_unknown_metric_is_a_user_error(tmp_path: Path) -> None:
    proc = run_step("evaluate", {"model": str(tmp_path), "data": str(tmp_path), "metrics": ["auc"]}, tmp_path)
    assert proc.returncode == 1 and "unknown metric" in proc.stderr
