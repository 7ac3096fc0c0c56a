"""The metrics a step shows in the engines' UIs (issue 16 item 5): which ones, their values, their files.

`train`, `evaluate` and `select` write a `metrics` param (a JSON object). Besides it, each number worth a
UI gets a file of its own, `$DMLC_OUTPUTS/metric-<name>`, holding the number as text: Argo reads it as an
output parameter (and a Prometheus gauge, which parses it with Go's strconv.ParseFloat), the KFP shim as
a scalar of the step's `Metrics` artifact, the local executor's records from the `metrics` param itself.
`names(step)` is the one list every target uses; `write` (called by the runtime) the one writer. A
name written as a reference (`metric = "${params.m}"`) is known at run time, from the resolved step:
the KFP shim reads it so; Argo, which names its output parameters in the workflow, refuses it (DML106).

- train: `accuracy` and `loss` on the test split (the others in `metrics` are bookkeeping);
- evaluate: the metrics it was asked for, in order (`n`, the number of test examples, is not one);
- select: the chosen model's value of the metric it compared, under that metric's name.

`evaluate` also writes its confusion matrix (`confusion-matrix`, JSON), which the KFP shim logs into a
`ClassificationMetrics` artifact (the run's UI draws it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from dmlc.atomic import write_text
from dmlc.ir import metric_names
from dmlc.ir.model import Evaluate, Select, Step, Train

PREFIX = "metric-"
CONFUSION = "confusion-matrix"  # evaluate's confusion matrix: {"categories": [...], "matrix": [[...]]}
TRAIN = ("accuracy", "loss")
EVALUATE = metric_names.EVALUATE  # what the evaluate runtime computes (the IR refuses other names)


def reports(step: Step) -> bool:
    """Does `step` report metrics? (A name written as a reference is known only once it is resolved.)"""
    return isinstance(step, (Train, Evaluate, Select))


def classifies(step: Step) -> bool:
    """Does `step` also write a confusion matrix (for KFP's `ClassificationMetrics`)? `evaluate` does: it
    has every test example's label and prediction."""
    return isinstance(step, Evaluate)


def names(step: Step) -> list[str]:
    """The metrics `step` reports, in order (none for other step kinds). An evaluate metric the runtime
    does not compute is left out: the step fails on it before it reports anything."""
    if isinstance(step, Train):
        return list(TRAIN)
    if isinstance(step, Evaluate):
        return [m for m in dict.fromkeys(step.metrics) if m in EVALUATE]
    if isinstance(step, Select):
        return [step.metric]
    return []


def param_name(metric: str) -> str:
    """The output (Argo parameter, file under `$DMLC_OUTPUTS`) that carries `metric`."""
    return PREFIX + metric


def values(step: Step, metrics: dict[str, Any]) -> dict[str, float]:
    """Each of `names(step)` with its number, from the step's `metrics` param (select: the chosen value)."""
    if isinstance(step, Select):
        return {step.metric: float(metrics["value"])}
    return {name: float(metrics[name]) for name in names(step)}


def text(value: float) -> str:
    """A number as Go's strconv.ParseFloat and Python's float() read it back exactly (repr round-trips;
    NaN and infinities as `NaN`, `+Inf`, `-Inf`)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def write(outputs_dir: Path, step: Step, metrics: dict[str, Any]) -> dict[str, float]:
    """Write one `metric-<name>` file per metric of `step`; gives the numbers written."""
    found = values(step, metrics)
    for name, value in found.items():
        write_text(Path(outputs_dir) / param_name(name), text(value))
    return found


def read(outputs_dir: Path, step: Step) -> dict[str, float]:
    """The numbers `write` left in `outputs_dir`; a missing one is an error (a UI would silently lack it)."""
    found = {}
    for name in names(step):
        path = Path(outputs_dir) / param_name(name)
        if not path.is_file():
            raise FileNotFoundError(f"the step did not write its metric `{name}` ({path.name})")
        found[name] = float(path.read_text())
    return found


def write_confusion(outputs_dir: Path, categories: list[str], matrix: list[list[int]]) -> None:
    """The confusion matrix file: row = true class, column = predicted class, counts of test examples."""
    write_text(Path(outputs_dir) / CONFUSION, json.dumps({"categories": categories, "matrix": matrix}))


def read_confusion(outputs_dir: Path) -> tuple[list[str], list[list[int]]]:
    """What `write_confusion` left; FileNotFoundError when it is missing."""
    data = json.loads((Path(outputs_dir) / CONFUSION).read_text())
    return [str(c) for c in data["categories"]], [[int(n) for n in row] for row in data["matrix"]]
