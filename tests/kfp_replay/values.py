"""Parameter values as the KFP v2 backend (kubeflow/pipelines 2.17.0) holds them: `structpb.Value`.

Takes and gives plain Python values standing for `google.protobuf.Value` (None = NullValue, every
number a float, as in a protobuf Value):

- `text_to_value(text, type)`: `backend/src/v2/metadata/converter.go` TextToPbValue, how the launcher
  reads an output parameter's file by its declared type (`component/launcher_v2.go`
  collectOutputParameters).
- `value_to_text(value)`: converter.go PbValueToText (numbers `FormatFloat(f, 'f', -1, 64)`, lists and
  structs through Go's `encoding/json`), used when a STRING input receives another kind.
- `check_and_convert(...)`: `driver/resolve.go` resolveInputs' handleParamTypeValidationAndConversion.
- `to_json(value)`: protojson's rendering of a Value inside the executor input (`{{$}}`): a float that
  is a whole number prints as an integer.
- `condition_holds(expr, params)`: the driver's `triggerPolicy.condition` (CEL,
  `backend/src/v2/expression/expression.go`) for the forms kfp's SDK writes
  (`inputs.parameter_values['x'] == true`, `int(...) > 1`, `&&`, `||`, `!`).
"""

from __future__ import annotations

import ast
import json
import math
import re
from decimal import Decimal
from typing import Any

from tests.argo_replay import gojson

STRING, INT, DOUBLE, BOOL, LIST, STRUCT = (
    "STRING",
    "NUMBER_INTEGER",
    "NUMBER_DOUBLE",
    "BOOLEAN",
    "LIST",
    "STRUCT",
)


class ValueError_(Exception):
    """A conversion the backend refuses (the driver or launcher fails the task)."""


def numbers_as_floats(value: Any) -> Any:
    """A JSON value as a protobuf Value holds it (every number a float64)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, list):
        return [numbers_as_floats(v) for v in value]
    return {k: numbers_as_floats(v) for k, v in value.items()}


def _go_bool(text: str) -> bool:
    """strconv.ParseBool."""
    if text in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if text in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError_(f"strconv.ParseBool: parsing {text!r}: invalid syntax")


def text_to_value(text: str, kind: str) -> Any:
    if kind == STRING:
        return text
    try:
        if kind == INT:
            return float(int(text.strip(), 10))
        if kind == DOUBLE:
            return float(text.strip())
        if kind == BOOL:
            return _go_bool(text.strip())
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError_(f"TextToPbValue(text={text!r}, type={kind!r}) failed: {exc}") from None
    wanted = {LIST: list, STRUCT: dict}.get(kind)
    if wanted is None or not isinstance(value, wanted):
        raise ValueError_(f"TextToPbValue(text={text!r}, type={kind!r}) failed: unexpected type")
    return numbers_as_floats(value)


def _format_f(number: float) -> str:
    if number.is_integer() and abs(number) < 1e21:
        return str(int(number))
    return format(Decimal(repr(number)), "f")


def value_to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _format_f(float(value))
    return gojson.marshal(_whole_numbers(value))


def _whole_numbers(value: Any) -> Any:
    if isinstance(value, float) and not isinstance(value, bool) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    return value


def to_json(value: Any) -> Any:
    """The value as protojson writes it into the executor input."""
    if isinstance(value, float) and math.isfinite(value):
        return _whole_numbers(value)
    return _whole_numbers(value)


_KINDS = {str: STRING, bool: BOOL, float: "number", int: "number", list: LIST, dict: STRUCT}


def check_and_convert(name: str, value: Any, kind: str, set_nil: bool) -> Any:
    """One input's type check; a STRING input takes any kind, as its text."""
    if kind == STRING:
        return value if isinstance(value, str) or (value is None and set_nil) else value_to_text(value)
    if value is None:
        if set_nil:
            return None
        raise ValueError_(f"got null for input parameter {name!r}")
    actual = _KINDS.get(type(value), "unknown")
    ok = {
        STRING: STRING,
        INT: "number",
        DOUBLE: "number",
        BOOL: BOOL,
        LIST: LIST,
        STRUCT: STRUCT,
    }.get(kind, STRUCT if kind in ("TASK_FINAL_STATUS", "TASK_CONFIG") else kind)
    if actual != ok:
        raise ValueError_(f"input parameter {name!r} type mismatch: expect {kind}, got {actual}")
    return value


_REF = re.compile(r"inputs\.parameter_values\[(['\"])(.*?)\1\]")


def condition_holds(expr: str, params: dict[str, Any]) -> bool:
    """Evaluate a trigger condition over the task's resolved input parameters."""
    names: dict[str, Any] = {}

    def ref(match: re.Match[str]) -> str:
        key = f"_p{len(names)}"
        names[key] = params.get(match.group(2))
        return key

    text = _REF.sub(ref, expr).replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", text))
    tree = ast.parse(text, mode="eval")
    allowed = (ast.Expression, ast.BoolOp, ast.UnaryOp, ast.Compare, ast.Name, ast.Constant, ast.Call, ast.Load)
    allowed += (ast.And, ast.Or, ast.Not, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.USub)
    for node in ast.walk(tree):
        if not isinstance(node, allowed):
            raise ValueError_(f"condition {expr!r}: not replayed ({type(node).__name__})")
    scope = {"int": lambda v: int(float(v)), "double": float, "string": value_to_text, **names}
    return bool(eval(compile(tree, "<condition>", "eval"), {"__builtins__": {}}, scope))
