"""Metric names a step can be asked for (stage 2, IR types): what the runtime computes, as IR patterns.

`evaluate { metrics }` takes the names `dmlc.runtime.evaluate` computes (or a reference, resolved at run
time, which the runtime checks); anything else would fail only when the step runs, after the steps before
it. `select { metric }` reads any number a candidate's `dmlc_metrics.json` holds, but never one named ""
(it would be the Argo gauge `dmlc_` and the parameter `metric-`). The pattern lives in the IR so the JSON
Schema refuses what check refuses; `CHOICES` lets check say "did you mean".
"""

from __future__ import annotations

from typing import Annotated

from annotated_types import MinLen
from pydantic import StringConstraints

EVALUATE = ("accuracy", "loss", "error", "precision", "recall", "f1")  # what the evaluate runtime computes
EVAL_PATTERN = rf"^(?:{'|'.join(EVALUATE)})$|\$\{{"  # a known name, or text holding a reference
EvalMetric = Annotated[str, StringConstraints(pattern=EVAL_PATTERN)]
SelectMetric = Annotated[str, MinLen(1)]
CHOICES = {EVAL_PATTERN: EVALUATE}  # patterns that are a list of names: check suggests the nearest
WORDS = {EVAL_PATTERN: f"a metric the evaluate step computes ({', '.join(EVALUATE)}) or a reference"}
