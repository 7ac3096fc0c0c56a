"""make_dataset applies the settings ingest recorded: batch per replica, shard policy, cache, shuffle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.runtime.conftest import check, run_step

pytestmark = pytest.mark.tf


def graph_of(ds) -> bytes:
    return ds._as_serialized_graph().numpy()


def test_batch_is_per_replica(digits_dir: Path) -> None:
    from dmlc.runtime.data import make_dataset

    ds = make_dataset(digits_dir, "train", replicas=2)
    x, y = next(iter(ds))
    assert x.shape == (64, 8, 8, 1) and y.shape == (64,)
    test = make_dataset(digits_dir, "test", repeat=False)
    assert sum(int(b[1].shape[0]) for b in test) == np.load(digits_dir / "test.npz")["y"].shape[0]


@pytest.mark.parametrize("shard", ["off", "auto", "data", "file"])
def test_shard_policy_option(digits_dir: Path, shard: str) -> None:
    import tensorflow as tf

    from dmlc.runtime.data import make_dataset

    ds = make_dataset(digits_dir, "test", repeat=False, overrides={"shard": shard})
    names = {"off": "OFF", "auto": "AUTO", "data": "DATA", "file": "FILE"}
    expected = getattr(tf.data.experimental.AutoShardPolicy, names[shard])
    assert ds.options().experimental_distribute.auto_shard_policy == expected


def test_input_context_shards(digits_dir: Path) -> None:
    import tensorflow as tf

    from dmlc.runtime.data import make_dataset

    ctx = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=1, num_replicas_in_sync=2)
    ds = make_dataset(digits_dir, "test", input_context=ctx, repeat=False)
    n_test = np.load(digits_dir / "test.npz")["y"].shape[0]
    assert sum(int(b[1].shape[0]) for b in ds) == n_test // 2


def test_cache_modes(digits_dir: Path, tmp_path: Path) -> None:
    from dmlc.runtime.data import make_dataset

    assert b"CacheDataset" in graph_of(make_dataset(digits_dir, "test", repeat=False))  # cache = memory
    assert b"CacheDataset" not in graph_of(make_dataset(digits_dir, "test", repeat=False, overrides={"cache": "none"}))
    disk = make_dataset(digits_dir, "test", repeat=False, cache_dir=tmp_path, overrides={"cache": "disk"})
    first = [b[1].numpy() for b in disk]
    assert list(tmp_path.glob("test*.index")), "disk cache files written after one pass"
    second = [b[1].numpy() for b in disk]
    np.testing.assert_array_equal(np.concatenate(first), np.concatenate(second))


def test_shuffle_and_file_shards(tmp_path: Path) -> None:
    from dmlc.runtime.data import make_dataset

    attrs = {"dataset": "digits", "batch": 50, "shard": "file", "num_shards": 3, "shuffle": 100}
    check(run_step("ingest", attrs, tmp_path))
    out = tmp_path / "outputs" / "dataset"
    assert len(list((out / "train-shards").glob("*.tfrecord"))) == 3
    ds = make_dataset(out, "train", repeat=False)
    labels = np.concatenate([b[1].numpy() for b in ds])
    original = np.load(out / "train.npz")["y"]
    assert sorted(labels) == sorted(original) and not np.array_equal(labels, original)
