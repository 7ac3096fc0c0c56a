"""The book's chapter-9 project end to end: `dmlc run examples/fashion_mnist.dml --local` on real
Fashion-MNIST images (the 900-image subset in ../shared, written as the standard IDX files where the
Keras loader looks for them), through ingestion, three 2-worker allreduce trainings, selection and
a 3-replica server. Skipped where ../shared or TensorFlow is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "examples" / "fashion_mnist.dml"

pytestmark = [pytest.mark.tf, pytest.mark.slow]


def test_book_pipeline_runs_end_to_end(keras_home: Path, tmp_path: Path) -> None:
    env = {**os.environ, "KERAS_HOME": str(keras_home), "HOME": str(keras_home.parent)}
    cmd = [sys.executable, "-m", "dmlc.cli", "run", str(BOOK), "--local", "--param", "steps_per_epoch=10"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "serving" in done.stdout and "/v1/models/classifier" in done.stdout
    metrics = sorted((tmp_path / ".dmlc" / "runs").glob("*/steps/best/*/outputs/metrics"))
    assert metrics, "select wrote no metrics"
    chosen = json.loads(metrics[-1].read_text())
    assert len(chosen["candidates"]) == 3 and 0.0 < chosen["value"] <= 1.0


def test_book_pipeline_on_the_argo_replay_selects_as_locally(
    keras_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10's acceptance: the compiled Workflow through the Argo replay (ingest, three 2-worker
    TFJobs through the local launcher, select, InferenceService) ends with the same selected model and
    metrics as `dmlc run --local` on the same images."""
    from tests.differential import outcome_argo, outcome_local
    from tests.test_differential import _comparable, _without_tfjob_params

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HOME", str(keras_home.parent))
    params = {"steps_per_epoch": "5"}
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = _comparable(_without_tfjob_params(outcome_local(BOOK, params), BOOK))
    argo = _comparable(outcome_argo(BOOK, tmp_path / "argo", params))
    assert argo == local
    state, best = argo[("best", "-")]
    assert state == "ok" and len(best["metrics"]["candidates"]) == 3
    assert argo[("classifier", "-")][0] == "ok"


def test_book_pipeline_on_the_kfp_replay_selects_as_locally(
    keras_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11's acceptance: the book compiles for KFP without an opt-in (a warning: `namespace` is the
    profile's there) and on the KFP 2.17 replay its TFJobs read Fashion-MNIST and write their models
    through the run's data volume; same selected model and metrics as `dmlc run --local`."""
    from tests.differential import outcome_local
    from tests.kfp_replay.outcome import outcome_kfp_launching
    from tests.test_differential import _comparable, _without_tfjob_params

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HOME", str(keras_home.parent))
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = _comparable(_without_tfjob_params(outcome_local(BOOK, {"steps_per_epoch": "5"}), BOOK))
    outcome, created = outcome_kfp_launching(BOOK, tmp_path / "kfp", {"steps_per_epoch": 5})
    kfp = _comparable(_without_tfjob_params(outcome, BOOK))
    assert kfp == local
    state, best = kfp[("best", "-")]
    assert state == "ok" and len(best["metrics"]["candidates"]) == 3
    assert {o["metadata"]["namespace"] for o in created} == {"default"}  # the launcher pod's, not "kubeflow"
