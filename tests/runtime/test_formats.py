"""Ingest: every format round-trips through its writer and reader, and digits ingests offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dmlc.runtime import formats
from dmlc.runtime.formats import Splits
from tests.runtime.conftest import check, run_step


def sample(n: int = 12, dtype: type = np.uint8) -> Splits:
    rng = np.random.default_rng(1)
    x = rng.integers(0, 256, size=(n, 4, 4)).astype(dtype)
    y = rng.integers(0, 10, size=n).astype(np.uint8)
    return Splits(x, y, x[:3].copy(), y[:3].copy())


def assert_same(a: Splits, b: Splits) -> None:
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(np.asarray(getattr(a, field)).squeeze(), np.asarray(getattr(b, field)).squeeze())


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip(tmp_path: Path, gz: bool) -> None:
    data = sample()
    formats.write_idx_dir(tmp_path, data, gz=gz)
    assert (tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))).exists()
    assert_same(formats.read(tmp_path, "idx"), data)


def test_idx_float_array(tmp_path: Path) -> None:
    arr = np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    formats.write_idx(tmp_path / "a.idx", arr)
    np.testing.assert_array_equal(formats.read_idx(tmp_path / "a.idx"), arr)


def test_npz_round_trip(tmp_path: Path) -> None:
    data = sample()
    formats.write_npz(tmp_path / "d.npz", data)
    assert_same(formats.read(tmp_path / "d.npz", "npz"), data)


def test_csv_round_trip(tmp_path: Path) -> None:
    data = sample()
    formats.write_csv(tmp_path, data)
    back = formats.read(tmp_path, "csv")
    assert back.x_train.shape == data.x_train.shape
    assert_same(back, data)


@pytest.mark.tf
def test_tfrecord_round_trip(tmp_path: Path) -> None:
    data = sample(6)
    formats.write_tfrecord_dir(tmp_path, data)
    assert_same(formats.read(tmp_path, "tfrecord"), data)


def test_bad_idx_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"nonsense")
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(b"nonsense")
    proc = run_step("ingest", {"path": str(tmp_path), "format": "idx"}, tmp_path / "run")
    assert proc.returncode == 1
    assert "IDX" in proc.stderr and "Traceback" not in proc.stderr


def test_digits_ingest(digits_dir: Path) -> None:
    info = json.loads((digits_dir / "dataset.json").read_text())
    assert info["name"] == "digits" and info["input_shape"] == [8, 8, 1] and info["num_classes"] == 10
    assert info["batch"] == 32 and info["cache"] == "memory" and info["n_train"] + info["n_test"] == 1797
    with np.load(digits_dir / "train.npz") as train:
        assert train["x"].dtype == np.float32 and train["y"].dtype == np.int64
        assert train["x"].min() >= 0.0 and train["x"].max() <= 1.0


@pytest.mark.parametrize("fmt", ["idx", "npz", "csv"])
def test_ingest_path_formats(tmp_path: Path, fmt: str) -> None:
    full = sample(20)
    data = Splits(full.x_train, full.y_train)  # no test split: ingest splits one off
    src = tmp_path / "src"
    src.mkdir()
    {"idx": formats.write_idx_dir, "csv": formats.write_csv}.get(fmt, lambda p, d: formats.write_npz(p / "d.npz", d))(
        src, data
    )
    path = src / "d.npz" if fmt == "npz" else src
    attrs = {"path": str(path), "format": fmt, "split": 0.25, "batch": 4, "shard": "data"}
    check(run_step("ingest", attrs, tmp_path / "run"))
    out = tmp_path / "run" / "outputs" / "dataset"
    info = json.loads((out / "dataset.json").read_text())
    assert (info["n_train"], info["n_test"], info["input_shape"], info["shard"]) == (15, 5, [4, 4, 1], "data")
    with np.load(out / "train.npz") as train:
        assert np.isclose(train["x"].max(), data.x_train.max() / 255)
