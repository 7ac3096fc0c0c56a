"""Metric names a step can be asked for (stage 2, IR types): what the runtime computes, as IR patterns.

`evaluate { metrics }` takes the names `dmlc.runtime.evaluate` computes (or a reference, resolved at run
time, which the runtime checks); anything else would fail only when the step runs, after the steps before
it. `select { metric }` reads any number a candidate's `dmlc_metrics.json` holds, but never one named ""
(it would be the Argo gauge `dmlc_` and the parameter `metric-`). The pattern lives in the IR so the JSON
Schema refuses what check refuses; `CHOICES` lets check say "did you mean".
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from annotated_types import MinLen
from pydantic import GetCoreSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

EVALUATE = ("accuracy", "loss", "error", "precision", "recall", "f1")  # what the evaluate runtime computes
EVAL_PATTERN = rf"^(?:{'|'.join(EVALUATE)})$|\$\{{"  # a known name, or text holding a reference


class _CheckTimePattern:
    """A pattern (`pattern`: the JSON Schema builder reads it) checked when a pipeline is checked, not
    when a step's resolved spec is read at run time: there a reference's value is judged by the runtime
    itself (`dmlc.runtime.evaluate`: "unknown metric", a user error)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.regex = re.compile(pattern)

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any, nxt: Callable[[Any], Any], info: core_schema.ValidationInfo) -> Any:
            value = nxt(value)
            if (info.context or {}).get("resolved") or self.regex.search(value):
                return value
            message = "String should match pattern '{pattern}'"
            raise PydanticCustomError("string_pattern_mismatch", message, {"pattern": self.pattern})

        return core_schema.with_info_wrap_validator_function(validate, handler(source))


EvalMetric = Annotated[str, _CheckTimePattern(EVAL_PATTERN)]
SelectMetric = Annotated[str, MinLen(1)]
CHOICES = {EVAL_PATTERN: EVALUATE}  # patterns that are a list of names: check suggests the nearest
WORDS = {EVAL_PATTERN: f"a metric the evaluate step computes ({', '.join(EVALUATE)}) or a reference"}
