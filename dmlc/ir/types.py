"""IR value types (stage 2, lower): references, unit numbers and names, as pydantic-aware types.

A reference is written `${step.output}` in YAML and `step.output` in .dml; both reach the IR as
the `${...}` string and become a `Ref`. Unit fields accept `"30m"`-style strings or plain numbers
and serialise back to the canonical unit string, so a dump of the IR is the YAML form again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from dmlc import units

NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*"
REF_BODY = re.compile(rf"^({_SEGMENT})((?:\.{_SEGMENT}|\[(?:\d+|\*)\])*)$")
REF_FULL = re.compile(r"^\$\{([^{}]*)\}$")
INTERP = re.compile(r"(?<!\$)\$\{([^{}]*)\}")
REF_PATTERN = r"^\$\{[A-Za-z_][A-Za-z0-9_.\[\]*]*\}$"


@dataclass(frozen=True)
class Ref:
    """`root[index].field.more`: root is a step name, `params`, `each` or `pipeline` (the run's status)."""

    root: str
    index: int | str | None = None
    fields: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        index = f"[{self.index}]" if self.index is not None else ""
        return self.root + index + "".join(f".{f}" for f in self.fields)

    def __str__(self) -> str:
        return "${" + self.text + "}"

    @property
    def output(self) -> str | None:
        return self.fields[0] if self.fields else None

    @property
    def is_step(self) -> bool:
        return self.root not in ("params", "each", "pipeline")


def parse_ref(body: str) -> Ref:
    """`model[*].model` -> Ref("model", "*", ("model",)); raises ValueError on bad syntax."""
    match = REF_BODY.match(body.strip())
    if not match:
        raise ValueError(f"`${{{body}}}` is not a reference")
    root, rest = match.groups()
    index: int | str | None = None
    fields: list[str] = []
    for part in re.findall(rf"\.{_SEGMENT}|\[(?:\d+|\*)\]", rest):
        if part.startswith("["):
            if index is not None or fields:
                raise ValueError(f"`${{{body}}}`: an index goes right after the step name")
            index = part[1:-1] if part == "[*]" else int(part[1:-1])
        else:
            fields.append(part[1:])
    return Ref(root, index, tuple(fields))


def as_ref(value: Any) -> Ref | None:
    """The Ref a whole-string `${...}` value stands for, else None."""
    if isinstance(value, str):
        match = REF_FULL.match(value)
        if match:
            return parse_ref(match.group(1))
    return None


def interpolated(text: str) -> list[Ref]:
    """The references inside a string like `"gs://b/${params.run}/x"` (`$${` escapes)."""
    return [parse_ref(body) for body in INTERP.findall(text)]


class _RefOr:
    """Marks a field that takes a value of its type or a `${...}` reference (kept as `Ref`)."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        inner = handler(source)

        def validate(value: Any, nxt: Callable[[Any], Any], info: core_schema.ValidationInfo) -> Any:
            if isinstance(value, Ref):
                return value
            if info.context and info.context.get("resolved"):
                return nxt(value)  # a value at run time: `${...}` in it is literal text, never a reference
            try:
                ref = as_ref(value)
            except ValueError as exc:
                raise PydanticCustomError("dml_ref", str(exc)) from None
            return ref if ref is not None else nxt(value)

        def serialize(value: Any, nxt: Callable[[Any], Any]) -> Any:
            return str(value) if isinstance(value, Ref) else nxt(value)

        return core_schema.with_info_wrap_validator_function(
            validate,
            inner,
            serialization=core_schema.wrap_serializer_function_ser_schema(serialize, schema=inner),
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        inner = handler(schema["schema"])  # type: ignore[typeddict-item]
        ref = {"type": "string", "pattern": REF_PATTERN, "description": "a reference, e.g. ${step.output}"}
        return {"anyOf": [inner, ref]}


REF_OR = _RefOr()


class _Unit:
    """A unit number field: parsed with `parse`, stored as a number, dumped with `fmt`."""

    def __init__(
        self, what: str, parse: Callable[[Any], Any], fmt: Callable[[Any], str], example: str, limit: tuple[float, str]
    ) -> None:
        self.what, self.parse, self.fmt, self.example = what, parse, fmt, example
        self.limit, self.limit_text = limit

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any) -> Any:
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise PydanticCustomError("dml_type", f"expected a {self.what} like {self.example}")
            if isinstance(value, float) and not math.isfinite(value):
                raise PydanticCustomError("dml_range", f"a {self.what} must be a finite number")
            try:
                number = self.parse(value)
            except units.UnitError as exc:
                raise PydanticCustomError("dml_unit", "{msg}", {"msg": str(exc), "hint": exc.hint}) from None
            if number < 0:
                raise PydanticCustomError("dml_range", f"a {self.what} cannot be negative")
            if number > self.limit:
                raise PydanticCustomError("dml_range", f"a {self.what} can be at most {self.limit_text}")
            return number

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(self.fmt)
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        return {
            "anyOf": [{"type": "string", "pattern": r"^\d+(\.\d+)?[A-Za-z]*$"}, {"type": "number", "minimum": 0}],
            "description": f"a {self.what}, e.g. {self.example}",
        }


class _Unique:
    """Marks a list whose items differ (the schema's `uniqueItems`): a repeat is DML029 at the second one."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(items: list[Any]) -> list[Any]:
            for i, item in enumerate(items):
                if item in items[:i]:
                    raise PydanticCustomError("dml_repeat", "`{item}` is listed twice", {"item": item, "index": i})
            return items

        return core_schema.no_info_after_validator_function(validate, handler(source))


UNIQUE = _Unique()


# ranges every engine can hold and no pipeline needs to exceed: 10 years, 1 EiB, a million cores
Duration = Annotated[
    float, _Unit("duration", units.parse_duration, units.format_duration, "10s, 30m, 1h, 7d", (3650 * 86400, "3650d"))
]
Memory = Annotated[int, _Unit("memory size", units.parse_memory, units.format_memory, "512Mi, 2Gi", (2**60, "1Ei"))]
Cpu = Annotated[int, _Unit("cpu amount", units.parse_cpu, units.format_cpu, "500m, 2", (10**9, "1000000"))]
