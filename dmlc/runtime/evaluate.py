"""The `evaluate` step: score a SavedModel on the test split of a dataset artifact -> param `metrics`
(and, for the engines' UIs, a file per metric and the confusion matrix: `dmlc.semantics.metrics`)."""

from __future__ import annotations

import numpy as np

from dmlc.ir.model import Evaluate
from dmlc.runtime.data import load_arrays
from dmlc.runtime.step_io import UserError, write_metrics
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics.metrics import EVALUATE
from dmlc.semantics.spec import StepSpec

SUPPORTED = EVALUATE


def run(spec: StepSpec) -> None:
    from dmlc.runtime.predictor import Predictor

    cfg: Evaluate = spec.config(Evaluate)
    model, data = str(cfg.model), str(cfg.data)
    wanted = list(cfg.metrics)
    unknown = [m for m in wanted if m not in SUPPORTED]
    if unknown:
        raise UserError(f"unknown metric(s) {', '.join(unknown)}: use {', '.join(SUPPORTED)}")
    x, y = load_arrays(data, "test")
    probs = Predictor(model).predict_batched(x)
    scores = score(probs, y)
    metrics = {m: scores[m] for m in wanted} | {"n": len(y)}
    write_metrics(spec, metrics)
    ui_metrics.write_confusion(spec.outputs_dir, *confusion(probs, y))
    print("evaluate: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "n"))


def confusion(probs: np.ndarray, y: np.ndarray) -> tuple[list[str], list[list[int]]]:
    """The class names ("0", "1", ...: every class the model predicts) and the confusion matrix, a row per
    true class and a column per predicted class."""
    from sklearn.metrics import confusion_matrix

    classes = list(range(probs.shape[1]))
    matrix = confusion_matrix(y, probs.argmax(axis=1), labels=classes)
    return [str(c) for c in classes], [[int(n) for n in row] for row in matrix]


def score(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Every supported metric from class probabilities (macro averages for precision/recall/f1)."""
    from sklearn.metrics import f1_score, precision_score, recall_score

    pred = probs.argmax(axis=1)
    picked = np.clip(probs[np.arange(len(y)), y], 1e-7, 1.0)
    accuracy = float(np.mean(pred == y))
    return {
        "accuracy": accuracy,
        "error": 1.0 - accuracy,
        "loss": float(-np.mean(np.log(picked))),
        "precision": float(precision_score(y, pred, average="macro", zero_division=0)),
        "recall": float(recall_score(y, pred, average="macro", zero_division=0)),
        "f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
