"""The param type rule (stage 3): a param that feeds an attribute must hold a value that attribute takes.

`epochs = params.epochs` with `params { epochs = "abc" }` (or `--param epochs=0`) is checked as if the
value were written in place: DML020 for a wrong type, DML022 for a value out of the attribute's range,
naming both the param and the attribute, with the param's declaration as the second place.
Only whole-value references are checked; a param interpolated into text (`"run-${params.x}"`) or read
by `when` may be of any type.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any

from pydantic import ConfigDict, TypeAdapter, ValidationError

from dmlc.diagnostics.catalogue import DML020, DML022
from dmlc.diagnostics.model import Diagnostic, Label
from dmlc.ir.model import Step
from dmlc.ir.types import Ref
from dmlc.validate.context import Ctx

RANGE_ERRORS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal", "dml_range")
MISSING = object()


def check_param_types(ctx: Ctx) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, step in ctx.steps():
        for field, value in step:
            if isinstance(value, Ref) and value.root == "params" and value.index is None and value.fields:
                out += _check(ctx, name, step, field, value)
    return out


def _check(ctx: Ctx, name: str, step: Step, field: str, ref: Ref) -> list[Diagnostic]:
    value = _lookup(ctx.pipeline.params, ref.fields)
    if value is MISSING:
        return []  # an unknown param is DML016 (check_references)
    try:
        _adapter(type(step), field).validate_python(value, context={"resolved": True})
    except ValidationError as exc:
        return [_diagnostic(ctx, name, step, field, ref, value, exc.errors(include_url=False)[0])]
    return []


def _lookup(params: dict[str, Any], fields: tuple[str, ...]) -> Any:
    value: Any = params
    for key in fields:
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


@cache
def _adapter(kind: type[Step], field: str) -> TypeAdapter[Any]:
    """The attribute's own type, strict as the IR is (`"3"` is no whole number)."""
    info = kind.model_fields[field]
    annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
    return TypeAdapter(annotation, config=ConfigDict(strict=True, arbitrary_types_allowed=True))


def _diagnostic(ctx: Ctx, name: str, step: Step, field: str, ref: Ref, value: Any, err: Any) -> Diagnostic:
    param = ".".join(ref.fields)
    attr = type(step).model_fields[field].alias or field
    in_range = err["type"] in RANGE_ERRORS
    why = err["msg"].replace("Input should be", "must be") if in_range else _expects(err)
    given = ref.fields[0] in _flags(ctx)
    source = " (from --param)" if given else ""
    message = f"param `{param}` is {_show(value)}{source}, but `{attr}` of {step.kind} step `{name}` {why}"
    declared = None if given else ctx.document.span(("params", *ref.fields))
    also = (Label(declared, "declared here"),) if declared is not None else ()
    help_ = f"give `{param}` a value `{attr}` takes, or set `{attr}` directly"
    return ctx.diag(
        DML022 if in_range else DML020, message, ("steps", name, field), "fed by this param", help_, also=also
    )


def _expects(err: Any) -> str:
    words = {"int_type": "a whole number", "float_type": "a number", "string_type": "text", "list_type": "a list"}
    found = words.get(err["type"])
    return f"expects {found}" if found else err["msg"].replace("Input should be", "must be")


def _flags(ctx: Ctx) -> set[str]:
    """The params whose value came from `--param` (differs from the file's own default)."""
    declared = ctx.document.data.get("params")
    declared = declared if isinstance(declared, dict) else {}
    return {k for k, v in ctx.pipeline.params.items() if k not in declared or declared[k] != v}


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 40 else f'"{value[:37]}..."'
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, (list, dict)):
        return "a list" if isinstance(value, list) else "a map"
    return str(value)
