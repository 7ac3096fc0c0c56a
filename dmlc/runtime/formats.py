"""Readers and writers for the data formats `ingest` accepts: idx (gz or plain), npz, csv, tfrecord.

Each reader returns `Splits` (raw arrays as stored: images N x H x W [x C], integer labels; the test
split is None when the source has none). Writers produce the layout the readers expect, so every
format round-trips. Layouts under `path`:
  idx       a folder with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] and optionally
            t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz] (the MNIST/Fashion-MNIST files)
  npz       a file with x_train/y_train[/x_test/y_test] (the Keras mnist.npz layout) or x/y, or a
            folder with train.npz [test.npz] holding x/y
  csv       a file, or a folder with train.csv [test.csv]; rows `label,pixel...`, optional header;
            images are square with one channel unless the header names `shape=HxWxC`
  tfrecord  a file, or a folder with train*.tfrecord [test*.tfrecord]; tf.train.Example records with
            `image` (float list), `shape` (int64 list) and `label` (int64)
"""

from __future__ import annotations

import gzip
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dmlc.runtime.step_io import UserError

FORMATS = ("idx", "npz", "csv", "tfrecord")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# IDX type codes (http://yann.lecun.com/exdb/mnist/) -> numpy big-endian dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_CODES = {np.dtype(v).newbyteorder("="): k for k, v in _IDX_DTYPES.items()}


@dataclass
class Splits:
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None


def read(path: str | Path, fmt: str) -> Splits:
    """Read `path` in format `fmt`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"ingest path {path} does not exist")
    readers = {"idx": read_idx_dir, "npz": read_npz, "csv": read_csv, "tfrecord": read_tfrecord}
    if fmt not in readers:
        raise UserError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return readers[fmt](path)


# ---- idx ---------------------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (gzip-compressed or not) as a numpy array."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise UserError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    count = math.prod(dims)
    data = np.frombuffer(raw, dtype=dtype, count=count, offset=4 + 4 * ndim)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def write_idx(path: Path, array: np.ndarray) -> None:
    """One IDX file; gzip-compressed when the name ends in .gz."""
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype)
    if code is None:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = header + array.astype(np.dtype(_IDX_DTYPES[code])).tobytes()
    path.write_bytes(gzip.compress(body) if path.name.endswith(".gz") else body)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_idx_dir(folder: Path) -> Splits:
    if not folder.is_dir():
        raise UserError(f"format idx expects a folder with the IDX files, got {folder}")
    arrays: dict[str, np.ndarray | None] = {}
    for split, (images, labels) in IDX_FILES.items():
        found = _find_idx(folder, images), _find_idx(folder, labels)
        if split == "train" and None in found:
            raise UserError(f"{folder} has no {images}[.gz] / {labels}[.gz]")
        arrays[f"x_{split}"] = read_idx(found[0]) if found[0] else None
        arrays[f"y_{split}"] = read_idx(found[1]) if found[1] else None
    return Splits(**arrays)


def write_idx_dir(folder: Path, splits: Splits, gz: bool = True) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, (images, labels) in IDX_FILES.items():
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if x is not None:
            write_idx(folder / (images + suffix), x)
            write_idx(folder / (labels + suffix), y)


# ---- npz ---------------------------------------------------------------------------------------


def read_npz(path: Path) -> Splits:
    if path.is_dir():
        train = _load_npz(path / "train.npz")
        test = _load_npz(path / "test.npz") if (path / "test.npz").exists() else None
        return Splits(train["x"], train["y"], *(test["x"], test["y"]) if test else (None, None))
    data = _load_npz(path)
    if "x_train" in data:
        return Splits(data["x_train"], data["y_train"], data.get("x_test"), data.get("y_test"))
    if "x" in data:
        return Splits(data["x"], data["y"])
    raise UserError(f"{path} holds neither x_train/y_train nor x/y arrays")


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} as npz: {exc}") from exc


def write_npz(path: Path, splits: Splits) -> None:
    arrays = {"x_train": splits.x_train, "y_train": splits.y_train}
    if splits.x_test is not None:
        arrays |= {"x_test": splits.x_test, "y_test": splits.y_test}
    np.savez_compressed(path, **arrays)


# ---- csv ---------------------------------------------------------------------------------------


def read_csv(path: Path) -> Splits:
    if path.is_dir():
        x, y = _read_csv_file(path / "train.csv")
        test = _read_csv_file(path / "test.csv") if (path / "test.csv").exists() else (None, None)
        return Splits(x, y, *test)
    return Splits(*_read_csv_file(path))


def _read_csv_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    lines = path.read_text().splitlines()
    shape = None
    if lines and not lines[0].split(",")[0].strip().lstrip("-").isdigit():
        shape = _csv_shape(lines[0])
        lines = lines[1:]
    try:
        table = np.array([[float(v) for v in line.split(",")] for line in lines if line.strip()])
    except ValueError as exc:
        raise UserError(f"{path}: non-numeric value in csv ({exc})") from exc
    if table.ndim != 2 or table.shape[1] < 2:
        raise UserError(f"{path}: expected rows `label,pixel...`")
    pixels = table[:, 1:]
    if shape is None:
        side = math.isqrt(pixels.shape[1])
        shape = (side, side, 1) if side * side == pixels.shape[1] else (pixels.shape[1],)
    x = pixels.reshape((len(table), *shape))
    x = x.astype(np.uint8) if np.all((x >= 0) & (x <= 255) & (x == np.round(x))) else x.astype(np.float32)
    return x, table[:, 0].astype(np.int64)


def _csv_shape(header: str) -> tuple[int, ...] | None:
    for cell in header.split(","):
        if cell.strip().startswith("shape="):
            return tuple(int(v) for v in cell.strip()[6:].split("x"))
    return None


def write_csv(folder: Path, splits: Splits) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if x is None:
            continue
        flat = x.reshape(len(x), -1)
        header = (
            "label," + ",".join(f"p{i}" for i in range(flat.shape[1])) + ",shape=" + "x".join(map(str, x.shape[1:]))
        )
        fmt = "%d" if np.issubdtype(x.dtype, np.integer) else "%.8g"
        rows = [f"{int(label)}," + ",".join(fmt % v for v in row) for label, row in zip(y, flat, strict=True)]
        (folder / f"{split}.csv").write_text(header + "\n" + "\n".join(rows) + "\n")


# ---- tfrecord ----------------------------------------------------------------------------------


def read_tfrecord(path: Path) -> Splits:
    if path.is_file():
        return Splits(*_read_tfrecord_files([path]))
    train = sorted(path.glob("train*.tfrecord"))
    if not train:
        raise UserError(f"{path} has no train*.tfrecord files")
    test = sorted(path.glob("test*.tfrecord"))
    return Splits(*_read_tfrecord_files(train), *(_read_tfrecord_files(test) if test else (None, None)))


def _read_tfrecord_files(files: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    from dmlc.runtime.tfenv import import_tf

    tf, _ = import_tf()
    spec = {
        "image": tf.io.VarLenFeature(tf.float32),
        "shape": tf.io.VarLenFeature(tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }
    xs, ys = [], []
    for record in tf.data.TFRecordDataset([str(f) for f in files]):
        ex = tf.io.parse_single_example(record, spec)
        shape = tf.sparse.to_dense(ex["shape"]).numpy()
        xs.append(tf.sparse.to_dense(ex["image"]).numpy().reshape(shape))
        ys.append(int(ex["label"]))
    if not xs:
        raise UserError(f"no records in {', '.join(map(str, files))}")
    x = np.stack(xs)
    x = x.astype(np.uint8) if np.all((x >= 0) & (x <= 255) & (x == np.round(x))) else x
    return x, np.array(ys, dtype=np.int64)


def write_tfrecord(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    """One TFRecord file of tf.train.Example records (image, shape, label)."""
    from dmlc.runtime.tfenv import import_tf

    tf, _ = import_tf()
    feature = tf.train.Feature
    with tf.io.TFRecordWriter(str(path)) as writer:
        for image, label in zip(x, y, strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        "image": feature(float_list=tf.train.FloatList(value=image.reshape(-1).astype(float))),
                        "shape": feature(int64_list=tf.train.Int64List(value=list(image.shape))),
                        "label": feature(int64_list=tf.train.Int64List(value=[int(label)])),
                    }
                )
            )
            writer.write(example.SerializeToString())


def write_tfrecord_dir(folder: Path, splits: Splits) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_tfrecord(folder / "train.tfrecord", splits.x_train, splits.y_train)
    if splits.x_test is not None:
        write_tfrecord(folder / "test.tfrecord", splits.x_test, splits.y_test)
