"""Lowering (stage 2): a parsed `Document` -> the validated `Pipeline` IR, or DML01x/02x diagnostics.

pydantic does the type work; this module only translates its errors into coded diagnostics at the
exact key or value, with did-you-mean help drawn from the model that rejected the input.
"""

from __future__ import annotations

import math
import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from dmlc.diagnostics.catalogue import DML010, DML011, DML019, DML020, DML021, DML022, DML023, DML024, DML025, DML029
from dmlc.diagnostics.model import Diagnostic, DmlError, Label, did_you_mean
from dmlc.ir import when
from dmlc.ir.metric_names import CHOICES
from dmlc.ir.model import STEP_KINDS, Pipeline
from dmlc.ir.types import NAME_RE
from dmlc.params import INT_LIMIT, typed
from dmlc.parse.document import Document, Path

MAX_ERRORS = 50
TYPE_WORDS = {
    "int": "an integer",
    "float": "a number",
    "string": "a string",
    "bool": "true or false",
    "list": "a list",
    "dict": "a block { ... }",
    "model": "a block { ... }",
}


def lower(doc: Document, params: dict[str, Any] | None = None) -> Pipeline:
    out_of_range = list(_numbers_out_of_range(doc.data, (), doc))
    if out_of_range:
        raise DmlError(out_of_range[:MAX_ERRORS])
    data = dict(doc.data)
    if params:
        declared = data.get("params") if isinstance(data.get("params"), dict) else {}
        data["params"] = {**declared, **typed(params, declared)}
    try:
        pipeline = Pipeline.model_validate(data)
    except ValidationError as exc:
        diags = [_diagnostic(err, doc) for err in _one_branch(exc.errors(include_url=False))]
        raise DmlError(_dedupe(diags)[:MAX_ERRORS]) from None
    return normalize_when(pipeline)


def _numbers_out_of_range(value: Any, path: Path, doc: Document) -> Any:
    """Every number in the file is finite and within 64 bits, whatever field it is in (`1e999`, a
    5000-digit count): the engines could not hold it, and Python's own arithmetic would overflow."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers_out_of_range(item, (*path, key), doc)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers_out_of_range(item, (*path, i), doc)
    elif isinstance(value, float) and not math.isfinite(value):
        yield Diagnostic(DML022, f"`{path[-1]}` must be a finite number", Label(doc.span(path), f"found {value}"))
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= INT_LIMIT:
        message = f"`{path[-1]}` must be within ±{INT_LIMIT - 1}"
        yield Diagnostic(DML022, message, Label(doc.span(path), "found a number too large"))


def normalize_when(pipeline: Pipeline) -> Pipeline:
    """Rewrite `best.accuracy` in every `when` to `best.metrics.accuracy`, once for every target."""

    def outputs_of(name: str) -> dict[str, str] | None:
        step = pipeline.steps.get(name)
        return step.outputs() if step is not None else None

    for name, step in pipeline.steps.items():
        if step.when is not None:
            normal = when.normalize(step.when, outputs_of)
            if normal is not step.when:
                pipeline.steps[name] = step.model_copy(update={"when": normal})
    return pipeline


def _dedupe(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple[Any, ...]] = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        key = (d.code, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


_BRANCH = re.compile(r"^(literal|list|function-after)\[")


def _one_branch(errors: list[Any]) -> list[Any]:
    """A field that takes a choice or a list (`retry.on`): pydantic reports what each branch of the union
    found wrong, under the branch's label. Keep the list branch's errors when the value is a list (the
    branch found more than `list_type` wrong), else the choice's; and drop the label from the loc."""
    split = [(err, _label_at(err["loc"])) for err in errors]
    lists = {
        tuple(err["loc"][:at])
        for err, at in split
        if at is not None and not err["loc"][at].startswith("literal[") and err["type"] != "list_type"
    }
    out = []
    for err, at in split:
        if at is None:
            out.append(err)
            continue
        loc = tuple(err["loc"])
        if (not loc[at].startswith("literal[")) == (loc[:at] in lists):
            out.append({**err, "loc": loc[:at] + loc[at + 1 :], "or_list": True})
    return out


def _label_at(loc: Any) -> int | None:
    return next((i for i, part in enumerate(loc) if isinstance(part, str) and _BRANCH.match(part)), None)


def _doc_path(loc: tuple[Any, ...]) -> Path:
    """pydantic's loc -> the document path: drop the union tag after a step name."""
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "steps" and parts[2] in STEP_KINDS:
        del parts[2]
    return tuple(p for p in parts if p != "[key]")


def _diagnostic(err: Any, doc: Document) -> Diagnostic:
    loc, kind = tuple(err["loc"]), err["type"]
    path = _doc_path(loc)
    handler = HANDLERS.get(kind)
    if handler is not None:
        return handler(err, path, loc, doc)
    if "[key]" in loc:
        return _bad_name(err, path, loc, doc)
    return _type_error(err, path, loc, doc)


def _where(loc: tuple[Any, ...]) -> str:
    if len(loc) >= 3 and loc[0] == "steps":
        return f" of {loc[2]} step `{loc[1]}`" if loc[2] in STEP_KINDS else f" of step `{loc[1]}`"
    if len(loc) >= 2:
        return f" in `{loc[0]}`"
    return ""


def _unknown_attr(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    name = str(path[-1])
    model = _model_at(loc[:-1])
    fields = [f.alias or n for n, f in model.model_fields.items()] if model else []
    help_ = did_you_mean(name, fields, "attribute")
    if help_ is None and fields:
        help_ = f"allowed here: {', '.join(f for f in fields if f != 'kind')}"
    message = f"unknown attribute `{name}`{_where(loc)}"
    return Diagnostic(DML011, message, Label(doc.span(path, key=True), "not allowed here"), help=help_)


def _unknown_kind(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    tag = err.get("ctx", {}).get("tag", "?")
    help_ = did_you_mean(str(tag), list(STEP_KINDS), "step kind") or f"step kinds are: {', '.join(STEP_KINDS)}"
    span = doc.span(path + ("kind",))
    return Diagnostic(DML010, f"unknown step kind `{tag}`", Label(span, "not a step kind"), help=help_)


def _missing(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    name = "kind" if err["type"] == "union_tag_not_found" else str(path[-1])
    parent = path if err["type"] == "union_tag_not_found" else path[:-1]
    where = _where(loc[:-1] if err["type"] == "missing" else loc + ("", ""))
    message = f"missing attribute `{name}`{where}"
    help_ = f"add `{name} = ...`" if name != "kind" else f"add `kind: ...` (one of {', '.join(STEP_KINDS)})"
    return Diagnostic(DML024, message, Label(doc.span(parent, key=True), "needs it"), help=help_)


def _literal(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    choices = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
    value = err.get("input")
    help_ = did_you_mean(str(value), choices, "value") if isinstance(value, str) else None
    help_ = help_ or f"use one of: {', '.join(choices)}" + (", or a list" if err.get("or_list") else "")
    message = f"`{_named(path)}` cannot be {_show(value)}"
    return Diagnostic(DML023, message, Label(doc.span(path), "not an allowed value"), help=help_)


def _unit(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    ctx = err.get("ctx", {})
    return Diagnostic(DML021, ctx.get("msg", err["msg"]), Label(doc.span(path), "bad unit"), help=ctx.get("hint"))


def _named(path: Path) -> str:
    """`retry`, or `on[1]` for an item of a list."""
    if len(path) > 1 and isinstance(path[-1], int):
        return f"{path[-2]}[{path[-1]}]"
    return str(path[-1])


def _range(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    msg = err["msg"].replace("Input should be", "must be")
    message = f"`{_named(path)}` {msg}" if err["type"] != "dml_range" else msg
    return Diagnostic(DML022, message, Label(doc.span(path), f"found {_show(err.get('input'))}"))


def _repeat(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    ctx = err.get("ctx", {})
    message = f"`{path[-1]}` lists {_show(ctx.get('item'))} twice"
    return Diagnostic(DML029, message, Label(doc.span((*path, ctx.get("index", 0))), "again here"), help="remove it")


def _too_short(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    least = err.get("ctx", {}).get("min_length", 1)
    message = f"`{path[-1]}` needs at least {least} item{'s' if least != 1 else ''}"
    return Diagnostic(DML022, message, Label(doc.span(path), "empty"))


def _bad_ref(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    help_ = "a reference is step.output, step[*].output, step[0].output, params.name, each or each.field"
    return Diagnostic(DML020, err["msg"], Label(doc.span(path), "bad reference"), help=help_)


def _bad_when(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    help_ = 'write e.g. "best.accuracy >= 0.8" or "params.deploy == true"'
    message = f"invalid `when` expression: {err.get('ctx', {}).get('msg', err['msg'])}"
    return Diagnostic(DML025, message, Label(doc.span(path), "here"), help=help_)


def _bad_name(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    name = str(path[-1]) if path else "?"
    help_ = "names start with a letter or `_` and hold only letters, digits and `_`"
    if err.get("ctx", {}).get("pattern", NAME_RE) != NAME_RE:  # a node label key (dmlc.ir.placement)
        help_ = "a Kubernetes label key: [DNS-subdomain/]name, the name up to 63 letters, digits, `-`, `_`, `.`"
    span = doc.span(path, key=True)
    return Diagnostic(DML019, f"invalid name `{name}`", Label(span, "not a valid name"), help=help_)


def _type_error(err: Any, path: Path, loc: tuple[Any, ...], doc: Document) -> Diagnostic:
    kind = err["type"].split("_")[0]
    expected = TYPE_WORDS.get(kind)
    if err["type"] == "dml_type" or expected is None:
        expected = err["msg"].replace("Input should be ", "").replace("expected ", "")
    what = f"`{_named(path)}`" if path else "the pipeline"
    message = f"{what} expects {expected}, found {_show(err.get('input'))}"
    if err["type"] == "string_pattern_mismatch":  # the type is right, the format is not: say which
        from dmlc.schema_keywords import pattern_words

        pattern = err.get("ctx", {}).get("pattern", "")
        if pattern in CHOICES:  # a name from a list (evaluate's metrics): as a Literal's error reads
            return _literal({**err, "ctx": {"expected": ", ".join(f"'{c}'" for c in CHOICES[pattern])}}, path, loc, doc)
        words = pattern_words(pattern)
        message = f"{what} has an invalid value {_show(err.get('input'))}"
        label = Label(doc.span(path), "not in the expected format")
        return Diagnostic(DML020, message, label, help=f"expected {words}")
    if err["type"] == "string_too_short":
        return Diagnostic(DML022, f"{what} cannot be empty", Label(doc.span(path), "empty"))
    if err["type"] == "string_too_long":
        longest = err.get("ctx", {}).get("max_length")
        message = f"{what} is longer than {longest} characters"
        return Diagnostic(DML020, message, Label(doc.span(path), f"{len(err.get('input', ''))} characters"))
    return Diagnostic(DML020, message, Label(doc.span(path), "wrong type"))


def _show(value: Any) -> str:
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f'the string "{text}"'
    if isinstance(value, dict):
        return "a block"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at `loc` (walks field annotations)."""
    current: Any = Pipeline
    i = 0
    while i < len(loc):
        part = loc[i]
        if loc[:1] == ("steps",) and i == 2 and part in STEP_KINDS:
            current = STEP_KINDS[part]
        elif isinstance(current, type) and issubclass(current, BaseModel) and part in _fields(current):
            current = _unwrap(_fields(current)[part])
        elif current is dict:
            pass
        else:
            return None
        i += 1
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    return {(f.alias or n): f.annotation for n, f in model.model_fields.items()}


def _unwrap(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _unwrap(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        for arg in get_args(annotation):
            found = _unwrap(arg)
            if (isinstance(found, type) and issubclass(found, BaseModel)) or found is dict:
                return found
        return None
    if origin is dict:
        return dict
    return annotation


HANDLERS = {
    "extra_forbidden": _unknown_attr,
    "union_tag_invalid": _unknown_kind,
    "union_tag_not_found": _missing,
    "missing": _missing,
    "literal_error": _literal,
    "dml_unit": _unit,
    "dml_range": _range,
    "dml_ref": _bad_ref,
    "dml_repeat": _repeat,
    "too_short": _too_short,
    "dml_when": _bad_when,
    "greater_than": _range,
    "greater_than_equal": _range,
    "less_than": _range,
    "less_than_equal": _range,
}

__all__ = ["lower"]
