"""The consumer side of the data patterns: a tf.data pipeline built from an ingest artifact.

`make_dataset` applies the settings ingest recorded in dataset.json: batch (per replica), the
auto-shard policy across workers (off/auto/data/file -> tf.data AutoShardPolicy), caching (memory ->
`.cache()`, disk -> `.cache(path)`), shuffling and repeat. Order: source -> shard -> decode -> cache ->
shuffle -> batch -> repeat -> prefetch, so the cache holds decoded examples and shuffling stays per epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dmlc.runtime.step_io import UserError, read_json_file


def load_info(dataset_dir: str | Path) -> dict[str, Any]:
    """dataset.json of an ingest artifact."""
    path = Path(dataset_dir) / "dataset.json"
    if not path.exists():
        raise UserError(f"{dataset_dir} is not a dataset artifact (no dataset.json)")
    return read_json_file(path)


def load_arrays(dataset_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of one split as numpy arrays."""
    with np.load(Path(dataset_dir) / f"{split}.npz") as data:
        return data["x"], data["y"]


def shard_policy(name: str) -> Any:
    from dmlc.runtime.tfenv import import_tf

    tf, _ = import_tf()
    policies = tf.data.experimental.AutoShardPolicy
    table = {"off": policies.OFF, "auto": policies.AUTO, "data": policies.DATA, "file": policies.FILE}
    return table[name]


def make_dataset(
    dataset_dir: str | Path,
    split: str = "train",
    *,
    input_context: Any = None,
    replicas: int = 1,
    cache_dir: str | Path | None = None,
    repeat: bool | None = None,
    seed: int = 0,
    overrides: dict[str, Any] | None = None,
) -> Any:
    """A batched tf.data.Dataset of (x, y) for `split`.

    Without `input_context` the batch is `batch * replicas` (the global batch a strategy splits) and
    the auto-shard policy tells `strategy.experimental_distribute_dataset` how to split it. With an
    `input_context` (distribute_datasets_from_function, ParameterServerStrategy) this pipeline shards
    itself and batches per input pipeline. `overrides` replaces dataset.json settings (benchmarks).
    """
    from dmlc.runtime.tfenv import import_tf

    tf, _ = import_tf()
    info = {**load_info(dataset_dir), **(overrides or {})}
    train = split == "train"
    ds = _source(tf, Path(dataset_dir), split, info)
    if input_context is not None and info["shard"] != "off" and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        replicas = max(1, input_context.num_replicas_in_sync // input_context.num_input_pipelines)
    ds = _cache(ds, info["cache"], cache_dir, split)
    if train and info.get("shuffle"):
        buffer = info["shuffle"] if not isinstance(info["shuffle"], bool) else info["n_train"]
        ds = ds.shuffle(int(buffer), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(int(info["batch"]) * replicas)
    if repeat if repeat is not None else train:
        ds = ds.repeat()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = shard_policy(info["shard"])
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def _source(tf: Any, folder: Path, split: str, info: dict[str, Any]) -> Any:
    """Examples of a split: from the TFRecord shards for the FILE policy, else from the npz arrays."""
    shards = sorted((folder / "train-shards").glob("*.tfrecord")) if split == "train" else []
    if info["shard"] == "file" and shards:
        files = tf.data.Dataset.from_tensor_slices([str(p) for p in shards])
        records = files.interleave(tf.data.TFRecordDataset, cycle_length=2)
        return records.map(_parser(tf, info["input_shape"]), num_parallel_calls=tf.data.AUTOTUNE)
    x, y = load_arrays(folder, split)
    return tf.data.Dataset.from_tensor_slices((x, y))


def _parser(tf: Any, input_shape: list[int]) -> Any:
    spec = {
        "image": tf.io.VarLenFeature(tf.float32),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record: Any) -> tuple[Any, Any]:
        ex = tf.io.parse_single_example(record, spec)
        return tf.reshape(tf.sparse.to_dense(ex["image"]), input_shape), ex["label"]

    return parse


def _cache(ds: Any, mode: str, cache_dir: str | Path | None, split: str) -> Any:
    if mode == "memory":
        return ds.cache()
    if mode != "disk":
        return ds
    if cache_dir is None:
        raise UserError("cache = 'disk' needs a cache folder (work_dir or a volume)")
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    # a process killed mid-epoch leaves a lock file that would make the next run fail
    for stale in folder.glob(f"{split}*.lockfile"):
        stale.unlink(missing_ok=True)
    return ds.cache(str(folder / split))
