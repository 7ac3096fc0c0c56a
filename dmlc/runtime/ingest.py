"""The `ingest` step: read a built-in dataset or files, normalise, and write the dataset artifact.

Artifact `dataset/`: train.npz and test.npz (x float32 NHWC, y int64) + dataset.json with the shape,
class count and the batching/sharding/caching settings, which the consumer's tf.data pipeline applies
(`dmlc.runtime.data.make_dataset`). With shard = "file" the train split is also written as
`num_shards` TFRecord files under train-shards/, so the FILE auto-shard policy has files to split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dmlc.ir.model import Ingest
from dmlc.runtime import formats
from dmlc.runtime.formats import Splits
from dmlc.runtime.step_io import TransientError, UserError, artifact_dir, write_json_file
from dmlc.semantics.spec import StepSpec, instance_seed

DEFAULT_FILE_SHARDS = 4


def run(spec: StepSpec) -> None:
    cfg: Ingest = spec.config(Ingest)
    settings = settings_from(cfg)
    name, splits = load_source(cfg, instance_seed(spec))
    x_train, x_test = prepare_images(splits.x_train, splits.x_test, name, settings["normalize"])
    y_train, y_test = splits.y_train.astype(np.int64), splits.y_test.astype(np.int64)
    info = {
        "name": name,
        "input_shape": list(x_train.shape[1:]),
        "num_classes": int(max(y_train.max(), y_test.max()) + 1),
        "n_train": len(x_train),
        "n_test": len(x_test),
        **settings,
    }
    with artifact_dir(spec.outputs_dir, "dataset") as out:
        write_dataset(out, x_train, y_train, x_test, y_test, info)
    print(f"ingest: {name}: {info['n_train']} train / {info['n_test']} test, shape {info['input_shape']}")


def settings_from(cfg: Ingest) -> dict[str, Any]:
    """The pipeline settings that travel with the data (the consumer's tf.data pipeline applies them)."""
    keys = ("batch", "shard", "num_shards", "cache", "shuffle", "normalize")
    return {key: getattr(cfg, key) for key in keys}


def load_source(cfg: Ingest, seed: int) -> tuple[str, Splits]:
    """(dataset name, splits) from `dataset` or `path` + `format`; splits off a test set when missing."""
    dataset, path, fmt = cfg.dataset, cfg.path, cfg.format
    if path:
        splits = formats.read(path, fmt or ("idx" if dataset in ("fashion_mnist", "mnist") else "npz"))
        name = dataset or Path(path).stem
    elif dataset == "digits":
        splits, name = load_digits(), "digits"
    elif dataset:
        splits, name = load_keras(dataset), dataset
    else:
        raise UserError("ingest needs `dataset` or `path` (+ `format`)")
    if splits.x_test is None:
        splits = split_off_test(splits, cfg.split, seed)
    return name, splits


def load_digits() -> Splits:
    from sklearn.datasets import load_digits as sk_digits

    digits = sk_digits()
    return Splits(digits.images.astype(np.float32), digits.target.astype(np.int64))


def load_keras(name: str) -> Splits:
    """Fashion-MNIST / MNIST through the Keras loader (reads ~/.keras/datasets when present)."""
    from dmlc.runtime.tfenv import import_tf

    _, keras = import_tf()
    loader = getattr(keras.datasets, name)
    try:
        (x_train, y_train), (x_test, y_test) = loader.load_data()
    except Exception as exc:  # the loader raises plain Exception on a failed download
        raise TransientError(
            f"cannot load {name} (no network and not in ~/.keras/datasets?): {exc}; or give `path` to the IDX files"
        ) from exc
    return Splits(x_train, y_train, x_test, y_test)


def split_off_test(splits: Splits, fraction: float, seed: int) -> Splits:
    """A seeded random split: the same seed gives the same split."""
    if not 0 < fraction < 1:
        raise UserError(f"split must be between 0 and 1, got {fraction}")
    order = np.random.default_rng(seed).permutation(len(splits.x_train))
    n_test = max(1, int(round(len(order) * fraction)))
    test, train = order[:n_test], order[n_test:]
    x, y = splits.x_train, splits.y_train
    return Splits(x[train], y[train], x[test], y[test])


def prepare_images(x_train: np.ndarray, x_test: np.ndarray, name: str, normalize: bool) -> tuple[np.ndarray, ...]:
    """float32 NHWC; scaled to [0, 1] when `normalize` (digits count 0..16, images 0..255)."""
    scale = 1.0
    if normalize:
        if name == "digits":
            scale = 16.0
        elif np.issubdtype(x_train.dtype, np.integer) or float(np.max(x_train)) > 1.0:
            scale = 255.0
    out = []
    for x in (x_train, x_test):
        x = np.asarray(x, dtype=np.float32) / np.float32(scale)
        out.append(x[..., None] if x.ndim == 3 else x)
    return tuple(out)


def write_dataset(out: Path, x_train, y_train, x_test, y_test, info: dict[str, Any]) -> None:
    np.savez(out / "train.npz", x=x_train, y=y_train)
    np.savez(out / "test.npz", x=x_test, y=y_test)
    if info["shard"] == "file":
        shards = int(info["num_shards"] or DEFAULT_FILE_SHARDS)
        (out / "train-shards").mkdir()
        for i, part in enumerate(np.array_split(np.arange(len(x_train)), shards)):
            formats.write_tfrecord(out / "train-shards" / f"part-{i:05d}.tfrecord", x_train[part], y_train[part])
        info = {**info, "num_shards": shards}
    write_json_file(out / "dataset.json", info)
