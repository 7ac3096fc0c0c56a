"""select: max/min, ties to the first candidate, threshold, top > 1; no TensorFlow needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.conftest import check, run_step


def candidates(root: Path, values: list[float]) -> list[str]:
    paths = []
    for i, value in enumerate(values):
        folder = root / f"m{i}"
        folder.mkdir(parents=True)
        (folder / "dmlc_metrics.json").write_text(json.dumps({"accuracy": value, "loss": 1 - value}))
        (folder / "saved_model.pb").write_text(f"model {i}")
        paths.append(str(folder))
    return paths


def select(tmp_path: Path, values: list[float], **attrs) -> tuple[dict, Path]:
    attrs = {"models": candidates(tmp_path / "cands", values), "metric": "accuracy", "goal": "max"} | attrs
    check(run_step("select", attrs, tmp_path / "run"))
    out = tmp_path / "run" / "outputs"
    return json.loads((out / "metrics").read_text()), out


@pytest.mark.parametrize(("goal", "chosen"), [("max", 1), ("min", 2)])
def test_goal(tmp_path: Path, goal: str, chosen: int) -> None:
    result, out = select(tmp_path, [0.7, 0.9, 0.5], goal=goal)
    assert result["chosen"] == chosen and result["goal"] == goal
    assert (out / "model" / "saved_model.pb").read_text() == f"model {chosen}"
    assert len(result["candidates"]) == 3 and result["reason"]


def test_ties_go_to_the_first(tmp_path: Path) -> None:
    result, _ = select(tmp_path, [0.5, 0.8, 0.8])
    assert result["chosen"] == 1 and result["value"] == 0.8


def test_threshold(tmp_path: Path) -> None:
    result, _ = select(tmp_path, [0.95, 0.7], metric="loss", goal="min", threshold=0.2)
    assert result["chosen"] == 0 and "threshold" in result["reason"]


def test_nobody_meets_the_threshold(tmp_path: Path) -> None:
    attrs = {"models": candidates(tmp_path / "c", [0.5, 0.6]), "threshold": 0.9}
    proc = run_step("select", attrs, tmp_path / "run")
    assert proc.returncode == 1 and "no candidate meets the threshold" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_top_two(tmp_path: Path) -> None:
    result, out = select(tmp_path, [0.1, 0.9, 0.5], top=2)
    assert result["chosen"] == [1, 2]
    assert (out / "models" / "0" / "saved_model.pb").read_text() == "model 1"
    assert (out / "models" / "1" / "saved_model.pb").read_text() == "model 2"
