"""The book's models (input `image_bytes`), user models, and the mirrored strategy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.runtime.conftest import check, run_step

pytestmark = pytest.mark.tf


@pytest.mark.parametrize(
    ("name", "layers"),
    [
        ("cnn", ["Conv2D", "MaxPooling2D", "Flatten", "Dense", "Dense"]),
        ("dropout", ["Conv2D", "MaxPooling2D", "Dropout", "Flatten", "Dense", "Dense"]),
        ("batch_norm", ["Conv2D", "BatchNormalization", "Activation", "MaxPooling2D", "Flatten", "Dense", "Dense"]),
        ("mlp", ["Flatten", "Dense", "Dense"]),
    ],
)
def test_builtin_models(name: str, layers: list[str]) -> None:
    from dmlc.runtime.models import build_model

    model = build_model(name, [28, 28, 1], 10)
    assert model.input_names == ["image_bytes"]
    assert [type(layer).__name__ for layer in model.layers] == layers
    assert model.output_shape == (None, 10)


USER_MODEL = """
import tf_keras as keras

def build(input_shape, num_classes):
    inputs = keras.Input(shape=input_shape, name="image_bytes")
    x = keras.layers.Flatten()(inputs)
    return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))
"""


def test_user_model_with_mirrored(digits_dir: Path, tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "mymodels.py").write_text(USER_MODEL)
    attrs = {"data": str(digits_dir), "model": "mymodels:build", "strategy": "mirrored", "epochs": 2}
    attrs |= {"optimizer": "sgd", "learning_rate": 0.5}
    check(run_step("train", attrs, tmp_path))
    metrics = json.loads((tmp_path / "outputs" / "metrics").read_text())
    assert metrics["model"] == "mymodels:build" and metrics["accuracy"] > 0.5
