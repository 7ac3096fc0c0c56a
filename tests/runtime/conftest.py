"""Shared fixtures of the runtime tests: a tiny digits dataset, a step runner and a trained model.

Steps run as real subprocesses (`python -m dmlc.runtime KIND --spec ...`), as the executor runs them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tf: needs TensorFlow (the ml extra)")


def step_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.pop("DMLC_OUTPUTS", None)
    env.pop("TF_CONFIG", None)
    env.update(extra or {})
    return env


def spec_data(kind: str, attrs: dict[str, Any], root: Path, **spec: Any) -> dict[str, Any]:
    """The JSON spec of one instance, built through the contract's own model (defaults applied)."""
    from dmlc import __version__
    from dmlc.ir.model import STEP_KINDS
    from dmlc.semantics.spec import SPEC_VERSION, StepSpec, dump

    step = STEP_KINDS[kind].model_validate({"kind": kind, **attrs}, context={"resolved": True})
    fields: dict[str, Any] = {
        "spec_version": SPEC_VERSION,
        "dmlc": __version__,
        "pipeline": "test",
        "step": spec.pop("step", kind),
        "attrs": step,
        "outputs": step.outputs(),
        "seed": 0,
        "volumes": {},
        "outputs_dir": root / "outputs",
        "work_dir": root / "work",
    }
    return dump(StepSpec(**(fields | spec)))


def run_step(
    kind: str, attrs: dict[str, Any], root: Path, env: dict[str, str] | None = None, timeout: float = 240, **spec: Any
) -> subprocess.CompletedProcess:
    """Write a SPEC under `root` and run the step; outputs land in root/outputs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "spec.json").write_text(json.dumps(spec_data(kind, attrs, root, **spec)))
    argv = [sys.executable, "-m", "dmlc.runtime", kind, "--spec", str(root / "spec.json")]
    return subprocess.run(argv, env=step_env(env), capture_output=True, text=True, timeout=timeout, cwd=root)


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return proc


@pytest.fixture(scope="session")
def digits_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The quickstart's dataset: scikit-learn digits (offline), batch 32, memory cache."""
    root = tmp_path_factory.mktemp("digits")
    check(run_step("ingest", {"dataset": "digits", "batch": 32, "cache": "memory"}, root))
    return root / "outputs" / "dataset"


@pytest.fixture(scope="session")
def trained_model(digits_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small cnn trained on digits with the default strategy: the model the serving tests serve."""
    root = tmp_path_factory.mktemp("trained")
    attrs = {"data": str(digits_dir), "model": "cnn", "epochs": 2, "strategy": "single"}
    check(run_step("train", attrs, root))
    return root / "outputs" / "model"
