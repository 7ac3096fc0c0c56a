"""Model builders: the book's chapter-9 CNNs (cnn, dropout, batch_norm), an mlp, and user models.

Every built-in model takes its input through a layer named `image_bytes` (the name the book's serving
requests use) and ends in a softmax over the classes. A user model is "pkg.module:build" where
`build(input_shape, num_classes)` returns an uncompiled tf_keras model.
"""

from __future__ import annotations

from typing import Any

from dmlc.runtime.loader import load_function
from dmlc.runtime.step_io import UserError
from dmlc.runtime.tfenv import import_tf

BUILTIN = ("cnn", "dropout", "batch_norm", "mlp")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adagrad")


def _cnn(layers: Any, input_shape: list[int], num_classes: int, variant: str) -> list[Any]:
    """Conv2D(32, 3) -> [BatchNorm + sigmoid] -> MaxPool -> [Dropout(0.5)] -> Flatten -> Dense(64) -> softmax."""
    stack = [layers.Conv2D(32, (3, 3), activation="relu")]
    if variant == "batch_norm":
        stack += [layers.BatchNormalization(), layers.Activation("sigmoid")]
    stack.append(layers.MaxPooling2D((2, 2)))
    if variant == "dropout":
        stack.append(layers.Dropout(0.5))
    return [
        *stack,
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ]


def _mlp(layers: Any, input_shape: list[int], num_classes: int) -> list[Any]:
    return [layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(num_classes, activation="softmax")]


def build_model(name: str, input_shape: list[int], num_classes: int) -> Any:
    """An uncompiled tf_keras model for `name`."""
    _, keras = import_tf()
    if name in ("cnn", "dropout", "batch_norm"):
        body = _cnn(keras.layers, input_shape, num_classes, name)
    elif name == "mlp":
        body = _mlp(keras.layers, input_shape, num_classes)
    elif ":" in name:
        return load_function(name)(list(input_shape), num_classes)
    else:
        raise UserError(f"unknown model {name!r}: use one of {', '.join(BUILTIN)} or 'pkg.module:build'")
    model = keras.Sequential(name=name)
    model.add(keras.layers.Input(shape=tuple(input_shape), name="image_bytes"))
    for layer in body:
        model.add(layer)
    return model


def compile_model(model: Any, optimizer: str = "adam", learning_rate: float | None = None) -> Any:
    """adam (or the named optimizer) + sparse categorical crossentropy + accuracy."""
    _, keras = import_tf()
    if optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    kwargs = {} if learning_rate is None else {"learning_rate": float(learning_rate)}
    opt = keras.optimizers.get({"class_name": optimizer, "config": kwargs})
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
