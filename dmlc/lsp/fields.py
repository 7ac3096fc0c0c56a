"""What the IR says about each attribute, read off the pydantic models (dmlc/ir/model.py) for the editor.

`fields_of(model)` describes every attribute of a block: its description (the attribute docstring),
a readable type, the default, enum values, the unit table of unit numbers and the block model of a
sub-block. `model_at(path, kind_of)` finds the model of the block at a document path such as
("steps", "train_it", "resources"). Nothing here is re-declared: new fields appear by themselves.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from dmlc import units
from dmlc.ir.model import STEP_KINDS, Node, Pipeline, Select, Step, Volume
from dmlc.ir.types import NAME_RE, _RefOr, _Unit
from dmlc.ir.when import When

NAMED_GROUPS = {"steps": None, "volumes": "volume", "targets": "target"}  # plural key -> .dml block keyword
UNIT_TABLES = {
    units.parse_duration: ("duration", tuple(units.DURATION_UNITS)),
    units.parse_memory: ("memory", tuple(u for u in units.MEMORY_UNITS if u)),
    units.parse_cpu: ("cpu", ("m", "")),
}


@dataclass(frozen=True)
class Unit:
    what: str  # duration | memory | cpu
    suffixes: tuple[str, ...]
    example: str
    fmt: Any


@dataclass(frozen=True)
class Field:
    """One attribute of a block, as the editor shows it."""

    name: str
    description: str
    type_text: str
    default: str | None  # the default as written in .dml, None when there is none
    required: bool
    enum: tuple[str, ...] = ()
    unit: Unit | None = None
    block: type[Node] | None = None  # a sub-block's model
    is_map: bool = False  # free keys: env, labels, params, inputs, outputs
    is_bool: bool = False
    accepts_ref: bool = False
    is_names: bool = False  # a list of step names (`after`)
    is_when: bool = False


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            return args[0], optional
        return typing.Union[tuple(args)], optional  # a runtime Union of what is left
    return annotation, False


def _unpack(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    """Annotated[X, m...] -> (X, [m...]), flattening nested Annotated and Optional."""
    annotation, _ = _strip_optional(annotation)
    meta = list(metadata)
    while typing.get_origin(annotation) is typing.Annotated:
        meta += list(annotation.__metadata__)
        annotation, _ = _strip_optional(annotation.__origin__)
    return annotation, meta


def _bounds(meta: list[Any]) -> str:
    out = []
    for m in meta:
        for cls, sign, attr in ((Ge, "≥", "ge"), (Gt, ">", "gt"), (Le, "≤", "le"), (Lt, "<", "lt")):
            if isinstance(m, cls):
                out.append(f"{sign} {getattr(m, attr)}")
    return " " + ", ".join(out) if out else ""


def type_text(annotation: Any, metadata: list[Any] = ()) -> str:  # type: ignore[assignment]
    """A readable type: `integer ≥ 1, or a reference`, `one of "max" | "min"`, `duration (10s, 30m, 1h, 7d)`."""
    base, meta = _unpack(annotation, list(metadata))
    unit = next((m for m in meta if isinstance(m, _Unit)), None)
    text = f"{unit.what} ({unit.example})" if unit else _base_text(base) + _bounds(meta)
    if base is str and any(getattr(m, "pattern", None) == NAME_RE for m in meta):
        text = "name"
    if any(isinstance(m, _RefOr) for m in meta):
        text += ", or a reference `step.output`"
    return text


def _base_text(base: Any) -> str:
    origin = typing.get_origin(base)
    if origin is Literal:
        return "one of " + " | ".join(f'"{v}"' for v in typing.get_args(base))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_base_text(a) for a in typing.get_args(base)))
    if origin is list:
        (item,) = typing.get_args(base) or (Any,)
        item_text = type_text(item)
        return "list of names" if item_text == "name" else f"list of {item_text}"
    if origin is dict:
        return f"map of {type_text(typing.get_args(base)[1])}"
    if isinstance(base, type) and issubclass(base, BaseModel):
        return "block"
    names = {bool: "true | false", int: "integer", float: "number", str: "text", When: "expression"}
    return names.get(base, "any value")


def _unit(meta: list[Any]) -> Unit | None:
    found = next((m for m in meta if isinstance(m, _Unit)), None)
    if found is None:
        return None
    what, suffixes = UNIT_TABLES.get(found.parse, (found.what, ()))
    return Unit(what, suffixes, found.example, found.fmt)


def _default(info: Any, unit: Unit | None) -> str | None:
    if info.default_factory is not None:
        value = info.default_factory()
    elif info.default is PydanticUndefined or info.default is None:
        return None
    else:
        value = info.default
    if unit is not None and isinstance(value, (int, float)):
        return unit.fmt(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, dict)):
        return _literal(value)
    return str(value)


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_literal(v)}" for k, v in value.items()) + "}"
    return f'"{value}"' if isinstance(value, str) else str(value)


def _field(name: str, info: Any) -> Field:
    base, meta = _unpack(info.annotation, info.metadata)
    unit = _unit(meta)
    origin = typing.get_origin(base)
    block = base if isinstance(base, type) and issubclass(base, Node) else None
    enum = tuple(str(v) for v in typing.get_args(base)) if origin is Literal else ()
    bool_like = base is bool or (origin in (typing.Union, types.UnionType) and bool in typing.get_args(base))
    return Field(
        name=name,
        description=(info.description or "").strip(),
        type_text=type_text(info.annotation, info.metadata),
        default=_default(info, unit),
        required=info.is_required(),
        enum=enum,
        unit=unit,
        block=block,
        is_map=origin is dict,
        is_bool=bool_like,
        accepts_ref=any(isinstance(m, _RefOr) for m in meta),
        is_names=name == "after",
        is_when=base is When,
    )


@cache
def fields_of(model: type[BaseModel]) -> dict[str, Field]:
    """The attributes of a block model by their written name (an alias such as `outputs` where there is one)."""
    return {info.alias or name: _field(info.alias or name, info) for name, info in model.model_fields.items()}


def model_at(path: tuple[str | int, ...], kind_of: typing.Callable[[str], str | None]) -> type[Node] | None:
    """The model of the block at `path` (keys as in the document), or None for a free map or an unknown place.

    `kind_of(step_name)` gives a step's kind; a step of unknown kind gets the attributes every step has."""
    model: type[Node] = Pipeline
    i = 0
    while i < len(path):
        key = path[i]
        if model is Pipeline and key in NAMED_GROUPS:
            if i + 1 >= len(path) or key == "targets":
                return None
            model = _step_model(kind_of(str(path[i + 1]))) if key == "steps" else Volume
            i += 2
            continue
        found = fields_of(model).get(str(key))
        if found is None or found.block is None:
            return None
        model = found.block
        i += 1
    return model


def _step_model(kind: str | None) -> type[Node]:
    return STEP_KINDS.get(kind or "", Step)


def field_at(path: tuple[str | int, ...], kind_of: typing.Callable[[str], str | None]) -> Field | None:
    """The attribute at `path` (its block's path plus its own name)."""
    if not path:
        return None
    model = model_at(path[:-1], kind_of)
    return fields_of(model).get(str(path[-1])) if model is not None else None


def outputs_of(kind: str | None, step: dict[str, Any] | None = None) -> dict[str, str]:
    """A step's outputs (name -> artifact | param) from its kind and, for `task` and `select`, its attributes."""
    step = step or {}
    if kind in ("task", "finally"):
        declared = step.get("outputs")
        return {str(k): str(v) for k, v in declared.items()} if isinstance(declared, dict) else {}
    if kind == "select":
        top = step.get("top", 1)
        return Select.model_construct(top=top if isinstance(top, int) else 1).outputs()
    model = STEP_KINDS.get(kind or "")
    return dict(model.OUTPUTS) if model is not None else {}


def field_markdown(f: Field) -> str:
    """Hover text of an attribute: description, type, default and units."""
    lines = [f"**{f.name}**" + (f" — {f.description}" if f.description else "")]
    lines.append(f"*type*: {f.type_text}" + (" (required)" if f.required else ""))
    if f.default is not None:
        lines.append(f"*default*: `{f.default}`")
    if f.unit is not None:
        shown = ", ".join(f"`{s}`" if s else "(none)" for s in f.unit.suffixes)
        lines.append(f"*units*: {shown}")
    return "\n\n".join(lines)


def kind_markdown(kind: str, name: str | None = None, step: dict[str, Any] | None = None) -> str:
    """Hover text of a step kind (and of a step, when `name` is given): what it is and its outputs."""
    model = STEP_KINDS.get(kind)
    if model is None:
        return f"unknown step kind `{kind}`; kinds: {', '.join(STEP_KINDS)}"
    head = f"**{kind}** step" + (f" `{name}`" if name else "")
    outs = ", ".join(f"`{o}` ({k})" for o, k in outputs_of(kind, step).items()) or "the declared `outputs { }`"
    own = [n for n in fields_of(model) if n not in fields_of(Step)]
    return "\n\n".join([head, f"*outputs*: {outs}", f"*attributes*: {', '.join(f'`{n}`' for n in own)}"])
