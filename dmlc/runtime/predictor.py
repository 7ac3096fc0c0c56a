"""Load a SavedModel's `serving_default` signature as a numpy function (used by evaluate and serve).

The signature is what TF Serving / KServe would call, so serving through it keeps our REST server
and theirs answering the same numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from dmlc.runtime.step_io import UserError, read_json_file
from dmlc.runtime.tfenv import import_tf


class Predictor:
    """`predict(x)` on a batch; `input_name`/`input_shape` describe what a request instance is."""

    def __init__(self, model_dir: str | Path) -> None:
        tf, _ = import_tf()
        threads = int(os.environ.get("DMLC_SERVE_THREADS") or 0)
        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        path = Path(model_dir)
        if not (path / "saved_model.pb").exists():
            raise UserError(f"{model_dir} is not a SavedModel folder (no saved_model.pb)")
        self._model = tf.saved_model.load(str(path))
        if "serving_default" not in self._model.signatures:
            raise UserError(f"{model_dir} has no serving_default signature")
        self._fn: Callable[..., dict[str, Any]] = self._model.signatures["serving_default"]
        _, kwargs = self._fn.structured_input_signature
        self.input_name, spec = next(iter(kwargs.items()))
        self.input_dtype = spec.dtype
        self.input_shape = [d for d in spec.shape.as_list()[1:]]
        self.output_name = next(iter(self._fn.structured_outputs))
        meta = path / "dmlc_metrics.json"
        self.meta: dict[str, Any] = read_json_file(meta) if meta.exists() else {}

    def predict(self, x: np.ndarray) -> np.ndarray:
        tf, _ = import_tf()
        tensor = tf.convert_to_tensor(np.asarray(x), dtype=self.input_dtype)
        return self._fn(**{self.input_name: tensor})[self.output_name].numpy()

    def predict_batched(self, x: np.ndarray, batch: int = 256) -> np.ndarray:
        return np.concatenate([self.predict(x[i : i + batch]) for i in range(0, len(x), batch)])

    def instances_to_array(self, instances: list[Any]) -> np.ndarray:
        """TF-Serving row format: each instance is the tensor, or {input_name: tensor}."""
        rows = [inst[self.input_name] if isinstance(inst, dict) else inst for inst in instances]
        return np.asarray(rows, dtype=np.float32)
