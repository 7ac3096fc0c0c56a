"""Load a SavedModel's `serving_default` signature as a numpy function (used by evaluate and serve).

The signature is what TF Serving / KServe would call, so serving through it keeps our REST server
and theirs answering the same numbers. A request's instances are checked against that signature
(`instances_array`: rank, shape, numbers only, finite, a size cap) before TensorFlow sees them: some
kernels do not check their inputs (oneDNN's convolution aborts the whole process on a 2-D input).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dmlc.runtime.step_io import UserError, read_json_file
from dmlc.runtime.tfenv import import_tf

MAX_VALUES = 4_000_000  # numbers in one request (16 MB as float32); the JSON body cap bounds memory first


class BadInstances(ValueError):
    """Instances that do not fit the serving signature: the server answers HTTP 400 with this message."""


class Predictor:
    """`predict(x)` on a batch; `input_name`/`input_shape` describe what a request instance is."""

    def __init__(self, model_dir: str | Path) -> None:
        path = Path(model_dir)
        if not (path / "saved_model.pb").is_file():
            raise UserError(f"{model_dir} is not a SavedModel folder (no saved_model.pb)")
        tf, _ = import_tf()
        threads = int(os.environ.get("DMLC_SERVE_THREADS") or 0)
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        try:
            self._model = tf.saved_model.load(str(path))
        except Exception as exc:  # a damaged or foreign saved_model.pb: TF's own exception types vary
            raise UserError(f"cannot load the SavedModel in {model_dir}: {str(exc).splitlines()[0][:300]}") from None
        if "serving_default" not in getattr(self._model, "signatures", {}):
            raise UserError(f"{model_dir} has no serving_default signature")
        self._fn: Callable[..., dict[str, Any]] = self._model.signatures["serving_default"]
        _, kwargs = self._fn.structured_input_signature
        if len(kwargs) != 1:
            raise UserError(f"{model_dir}: the serving signature takes {len(kwargs)} inputs; dmlc serves one")
        self.input_name, spec = next(iter(kwargs.items()))
        self.input_dtype = spec.dtype
        self.input_shape: list[int | None] = list(spec.shape.as_list()[1:])
        self.output_name = next(iter(self._fn.structured_outputs))
        meta = path / "dmlc_metrics.json"
        self.meta: dict[str, Any] = read_json_file(meta) if meta.exists() else {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        tf, _ = import_tf()
        tensor = tf.convert_to_tensor(np.asarray(x), dtype=self.input_dtype)
        return self._fn(**{self.input_name: tensor})[self.output_name].numpy()

    def predict_batched(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        return np.concatenate([self.predict(x[i : i + batch]) for i in range(0, len(x), batch)])

    def instances_to_array(self, instances: Any) -> np.ndarray:
        """TF-Serving row format, checked against the signature (BadInstances when it does not fit)."""
        return instances_array(instances, self.input_name, self.input_shape, self.input_dtype.as_numpy_dtype)


def instances_array(
    instances: Any, input_name: str, shape: list[int | None], dtype: Any, max_values: int = MAX_VALUES
) -> np.ndarray:
    """The batch for `instances` (each the tensor, or {input_name: tensor}) as `dtype`, or BadInstances.

    Every instance must have the signature's rank and sizes (None: any size but 0) and hold finite
    numbers that `dtype` can represent; the whole batch at most `max_values` numbers."""
    want = "x".join("?" if d is None else str(d) for d in shape) or "a scalar"
    if not isinstance(instances, list):
        raise BadInstances(f"instances must be a list of instances, not {_kind(instances)}")
    rows = []
    for i, inst in enumerate(instances):
        if isinstance(inst, dict):
            if input_name not in inst:
                raise BadInstances(f"instance {i} is an object without the input {input_name!r}")
            inst = inst[input_name]
        rank = _rank(inst, len(shape) + 1)
        if rank != len(shape):
            got = str(rank) if rank <= len(shape) else f"over {len(shape)}"
            raise BadInstances(f"instance {i} has rank {got}: the model takes instances of shape {want}")
        rows.append(inst)
    np_dtype = np.dtype(dtype)
    if not rows:
        return np.zeros((0, *(d or 1 for d in shape)), dtype=np_dtype)
    try:
        x = np.asarray(rows)  # no dtype yet: strings, null, objects and ragged rows show as what they are
    except (ValueError, TypeError, OverflowError):
        raise BadInstances(f"instances are ragged: every instance must have shape {want}") from None
    if x.dtype.kind not in "biuf":
        raise BadInstances("instances must hold numbers only (no strings, null, objects or out-of-range integers)")
    if x.ndim != len(shape) + 1:
        raise BadInstances(f"instances are ragged: every instance must have shape {want}")
    for axis, (got, expected) in enumerate(zip(x.shape[1:], shape, strict=True)):
        if got == 0 or (expected is not None and got != expected):
            size = "x".join(map(str, x.shape[1:]))
            raise BadInstances(f"instances have shape {size}, the model takes {want} (axis {axis + 1} differs)")
    if x.size > max_values:
        raise BadInstances(f"the request holds {x.size} numbers; a request may hold at most {max_values}")
    return _cast(x, np_dtype)


def _cast(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            out = x.astype(dtype)
        if not np.isfinite(out).all():
            raise BadInstances(f"instances must hold finite numbers within the range of {dtype.name}")
        return out
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if x.dtype.kind == "f" and not (np.isfinite(x).all() and (x == np.floor(x)).all()):
            raise BadInstances(f"instances must hold whole numbers: the model's input is {dtype.name}")
        if x.size and (x.min() < info.min or x.max() > info.max):
            raise BadInstances(f"instances must hold numbers from {info.min} to {info.max} ({dtype.name})")
        return x.astype(dtype)
    if dtype.kind == "b":
        return x.astype(dtype)
    raise BadInstances(f"this server cannot feed the model's input type {dtype.name} from JSON numbers")


def _rank(value: Any, limit: int) -> int:
    """Nesting depth along first elements, at most limit + 1: deep JSON is refused before numpy walks it."""
    rank = 0
    while isinstance(value, list) and rank <= limit:
        rank += 1
        if not value:
            break
        value = value[0]
    return rank


def _kind(value: Any) -> str:
    return {dict: "an object", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
