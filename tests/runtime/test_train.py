"""Training really trains: allreduce (2 workers), parameter_server (chief + 2 workers + 1 ps), a
killed worker restarted from its checkpoint, and the book's cnn on real Fashion-MNIST IDX files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.conftest import SHARED, check, run_step

pytestmark = pytest.mark.tf


def metrics_of(root: Path) -> dict:
    metrics = json.loads((root / "outputs" / "metrics").read_text())
    inside = json.loads((root / "outputs" / "model" / "dmlc_metrics.json").read_text())
    assert inside["accuracy"] == metrics["accuracy"]
    assert (root / "outputs" / "model" / "saved_model.pb").exists()
    return metrics


def test_allreduce_two_workers_trains(digits_dir: Path, tmp_path: Path) -> None:
    attrs = {"data": str(digits_dir), "model": "cnn", "epochs": 3, "strategy": "allreduce", "workers": 2}
    proc = check(run_step("train", attrs, tmp_path))
    assert "[worker 1]" in proc.stdout  # both workers ran, under the launcher
    m = metrics_of(tmp_path)
    assert m["workers"] == 2 and m["restarts_used"] == 0
    assert m["train_loss_last"] < m["train_loss_first"]
    assert m["accuracy"] > 0.5


def test_parameter_server_trains(digits_dir: Path, tmp_path: Path) -> None:
    attrs = {
        "data": str(digits_dir),
        "model": "mlp",
        "epochs": 3,
        "steps_per_epoch": 15,
        "strategy": "parameter_server",
        "workers": 2,
        "ps": 1,
    }
    proc = check(run_step("train", attrs, tmp_path))
    for label in ("[chief 0]", "[worker 0]", "[worker 1]", "[ps 0]"):
        assert label in proc.stdout
    m = metrics_of(tmp_path)
    assert m["strategy"] == "parameter_server" and m["workers"] == 2
    assert m["train_loss_last"] < m["train_loss_first"]


def test_killed_worker_resumes_from_checkpoint(digits_dir: Path, tmp_path: Path) -> None:
    attrs = {
        "data": str(digits_dir),
        "model": "mlp",
        "epochs": 3,
        "strategy": "allreduce",
        "workers": 2,
        "checkpoint": {"every": 1, "keep": 1},
        "restarts": 1,
    }
    proc = check(run_step("train", attrs, tmp_path, env={"DMLC_TEST_KILL_WORKER_AT_EPOCH": "2"}))
    assert "restarting from the last checkpoint" in proc.stdout
    m = metrics_of(tmp_path)
    assert m["restarts_used"] == 1
    assert m["resumed_from_epoch"] == 2  # the restarted job began at epoch 2, not 0
    assert m["epochs_run"] == [[0, 0], [0, 1], [1, 2]]
    assert m["train_loss_last"] < m["train_loss_first"]
    assert len(list((tmp_path / "work" / "checkpoints").glob("ckpt-*.index"))) == 1  # keep = 1


def test_user_error_is_exit_1(digits_dir: Path, tmp_path: Path) -> None:
    proc = run_step("train", {"data": str(digits_dir), "model": "nope"}, tmp_path)
    assert proc.returncode == 1 and "unknown model" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.skipif(not (SHARED / "data" / "make_fashion_idx.py").exists(), reason="../shared is absent")
def test_fashion_mnist_idx_subset(tmp_path: Path) -> None:
    idx = tmp_path / "idx"
    subprocess.run([sys.executable, str(SHARED / "data" / "make_fashion_idx.py"), str(idx)], check=True, timeout=120)
    attrs = {"dataset": "fashion_mnist", "path": str(idx), "format": "idx", "batch": 64}
    check(run_step("ingest", attrs, tmp_path / "ingest"))
    data = tmp_path / "ingest" / "outputs" / "dataset"
    info = json.loads((data / "dataset.json").read_text())
    assert (info["n_train"], info["n_test"], info["input_shape"]) == (720, 180, [28, 28, 1])
    attrs = {"data": str(data), "model": "cnn", "epochs": 2, "steps_per_epoch": 8}
    check(run_step("train", attrs, tmp_path / "train"))
    m = metrics_of(tmp_path / "train")
    assert m["train_loss_last"] < m["train_loss_first"] and m["accuracy"] > 0.2


def test_elastic_restart_with_fewer_workers(digits_dir: Path, tmp_path: Path) -> None:
    attrs = {
        "data": str(digits_dir),
        "model": "mlp",
        "epochs": 2,
        "strategy": "allreduce",
        "workers": 2,
        "restarts": 1,
        "elastic": {"min_workers": 1, "max_workers": 2},
    }
    proc = check(run_step("train", attrs, tmp_path, env={"DMLC_TEST_KILL_WORKER_AT_EPOCH": "1"}))
    assert "attempt 1: allreduce with 1 worker(s)" in proc.stdout  # the lost worker's slot is not refilled
    m = metrics_of(tmp_path)
    assert (m["restarts_used"], m["workers"], m["resumed_from_epoch"]) == (1, 1, 1)
