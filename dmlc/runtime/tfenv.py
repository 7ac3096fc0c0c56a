"""Lazy TensorFlow import with the settings the runtime needs (Keras 2 via tf_keras, quiet logs).

Keras 3 breaks MultiWorkerMirroredStrategy, so TF_USE_LEGACY_KERAS=1 must be set before TensorFlow
is first imported; every step goes through `import_tf()` instead of importing TensorFlow itself.
"""

from __future__ import annotations

import os
from typing import Any


def import_tf() -> tuple[Any, Any]:
    """(tensorflow, tf_keras), imported on first use."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")  # CPU runtime: skip the GPU probe
    try:
        import tensorflow as tf
        import tf_keras
    except ImportError as exc:  # the ml extra is optional
        from dmlc.runtime.step_io import UserError

        raise UserError(f"this step needs the ml extra (pip install 'dmlc[ml]'): {exc}") from exc
    tf.get_logger().setLevel("ERROR")
    return tf, tf_keras


def set_seed(seed: int) -> None:
    """Seed Python, numpy and TensorFlow so a run is repeatable."""
    _, keras = import_tf()
    keras.utils.set_random_seed(int(seed) % (2**31))
