"""Fixtures shared by test modules: the Fashion-MNIST subset of ../shared where Keras looks for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture
def keras_home(tmp_path: Path) -> Path:
    if not (SHARED / "data" / "make_fashion_idx.py").exists():
        pytest.skip("../shared/data is not here")
    pytest.importorskip("tf_keras")
    datasets = tmp_path / ".keras" / "datasets" / "fashion-mnist"
    subprocess.run([sys.executable, str(SHARED / "data" / "make_fashion_idx.py"), str(datasets)], check=True)
    return tmp_path / ".keras"
