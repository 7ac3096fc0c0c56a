"""`dmlc schema`: the JSON Schema of the YAML form, which accepts exactly what `dmlc check` accepts.

Generated from the IR models (dmlc.ir.model), the unit tables (dmlc.units), check's own field rules
(step names, environment names, references inside text, resource minimums) and each installed
target's options model (asked from the target registry, never imported by name). Written for the
yaml-language-server as well as for JSON Schema libraries:

- every map (steps, volumes, params, targets) and every block rejects unknown keys;
- a step is checked by its `kind` with `if`/`then` (the server ignores `discriminator`);
- unit numbers (`2Gi`, `30m`, `500m`) are checked per field kind and range, with messages in words
  (`patternErrorMessage`) instead of the raw pattern;
- descriptions carry the default and examples.

What no JSON Schema can say stays with `check`: relations between fields (a reference to a step that
exists, `min_success` against the list, cycles), `when` expressions, and the difference between
`3` and `3.0` (one number in JSON). tests/test_schema_parity.py holds the schema to this.
Committed as schema/dmlc.schema.json; editors find it by file name (`*.dml.yaml`, `*.dml.yml`).
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from dmlc import units
from dmlc.schema_keywords import any_of, check_rules, constrain, name_re, pattern_words, unit_body, unit_of
from dmlc.schema_patterns import portable

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "urn:dmlc:schema:pipeline:1"  # a name, not a place: nothing is fetched (see README, Editors)
FILE_PATTERNS = ("*.dml.yaml", "*.dml.yml")
INT_MAX = 2**63 - 1  # dmlc.params.INT_LIMIT - 1: every number within 64 bits (DML022)

# What one unit field kind means: how check turns `number * factor` into the stored value.
# float: the value itself (seconds); trunc: int() (bytes); round: round() (millicores, half to even).
CONVERSION: dict[Callable[..., Any], tuple[str, dict[str, float]]] = {
    units.parse_duration: ("float", {**units.DURATION_UNITS, "": 1}),
    units.parse_memory: ("trunc", units.MEMORY_UNITS),
    units.parse_cpu: ("round", units.CPU_UNITS),
}


@dataclass(frozen=True)
class Place:
    """Where a value sits: under a step (its text gets check's reference and NUL rules)."""

    in_step: bool = False


TOP, STEP = Place(False), Place(True)


def schema() -> dict[str, Any]:
    return _Builder().document()


def schema_text() -> str:
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.rules = check_rules()
        self.defs: dict[str, Any] = {}
        self.models: dict[tuple[type, Place], str] = {}

    # -- the document

    def document(self) -> dict[str, Any]:
        from dmlc import __version__
        from dmlc.ir.model import Pipeline

        root = self.model_body(Pipeline, TOP)
        head = {
            "$schema": DRAFT,
            "$id": SCHEMA_ID,
            "title": "dmlc pipeline",
            "description": (
                f"A dmlc {__version__} pipeline in its YAML form (the twin of the .dml syntax). "
                f"Editors take it for files named {' or '.join(FILE_PATTERNS)}."
            ),
        }
        return self._named({**head, **root, "$defs": self.defs})

    def _named(self, document: dict[str, Any]) -> dict[str, Any]:
        """Model defs named by their class, in a stable order; a model's variant under steps keeps the
        plain name unless it differs."""
        names: dict[str, str] = {}
        for (cls, place), key in self.models.items():
            other = self.models.get((cls, Place(not place.in_step)))
            differs = other is not None and self.defs[other] != self.defs[key]
            names[key] = cls.__name__ + ("InStep" if place.in_step and differs else "")
        for key, name in names.items():
            clash = [k for k, n in names.items() if n == name and self.defs[k] != self.defs[key]]
            if clash or name in self.defs:
                raise RuntimeError(f"dmlc schema: two definitions named {name}")
        text = json.dumps(document)
        for key, name in names.items():
            text = text.replace(f'"#/$defs/{key}"', f'"#/$defs/{name}"')
        document = json.loads(text)
        defs = document["$defs"]
        document["$defs"] = {names.get(k, k): defs[k] for k in sorted(defs, key=lambda k: names.get(k, k))}
        return document

    def ref(self, name: str, make: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if name not in self.defs:
            self.defs[name] = {}  # a placeholder: recursive definitions refer to themselves
            self.defs[name] = make()
        return {"$ref": f"#/$defs/{name}"}

    # -- models

    def model(self, cls: type[BaseModel], place: Place) -> dict[str, Any]:
        key = (cls, place)
        if key not in self.models:
            self.models[key] = f"{cls.__module__}.{cls.__qualname__}@{int(place.in_step)}"
            self.defs[self.models[key]] = self.model_body(cls, place)
        return {"$ref": f"#/$defs/{self.models[key]}"}

    def model_body(self, cls: type[BaseModel], place: Place) -> dict[str, Any]:
        from dmlc.ir.model import Pipeline, Step

        props, required = {}, []
        for name, info in cls.model_fields.items():
            key = info.alias or name
            special = self.pipeline_field(key) if cls is Pipeline else None
            props[key] = special or self.field(cls, name, info, place)
            if info.is_required():
                required.append(key)
        body: dict[str, Any] = {"type": "object"}
        doc = (cls.__doc__ or "").strip()
        if doc and cls.__doc__ is not Step.__doc__ and not doc.startswith(("Base of", "A base")):
            body["description"] = " ".join(doc.split())
        body["properties"] = props
        if required:
            body["required"] = required
        body["additionalProperties"] = False
        return body

    def field(self, cls: type[BaseModel], name: str, info: FieldInfo, place: Place) -> dict[str, Any]:
        from dmlc.ir.model import Resources, Step, Task, Train

        if issubclass(cls, Step) and name == "kind":
            out: dict[str, Any] = {"const": get_args(info.annotation)[0]}
        elif issubclass(cls, Step) and name in ("env", "secret_env"):
            out = self.annotation(info.annotation, list(info.metadata), place)
            out["propertyNames"] = self.env_name()
        elif cls is Resources and name in ("memory", "cpu"):
            out = self.annotation(info.annotation, list(info.metadata), place, resources=True)
        elif cls is Train and name == "model":
            out = self.train_model(place)
        elif cls is Task and name == "command":
            out = self.annotation(info.annotation, list(info.metadata), place)
            for branch in out.get("anyOf", [out]):
                if "array" in branch.get("type", []):
                    branch["minItems"] = 1  # DML022: an empty command
        else:
            out = self.annotation(info.annotation, list(info.metadata), place)
        return self.describe(out, info)

    def pipeline_field(self, key: str) -> dict[str, Any] | None:
        from dmlc.ir.model import Pipeline

        info = Pipeline.model_fields[key]
        if key == "steps":
            out = {
                "type": "object",
                "propertyNames": self.ref("StepName", self.step_name),
                "additionalProperties": self.ref("Step", self.step),
            }
        elif key == "targets":
            out = {"type": "object", "properties": self.targets(), "additionalProperties": False}
        else:
            return None
        return self.describe(out, info)

    def describe(self, out: dict[str, Any], info: FieldInfo) -> dict[str, Any]:
        """The attribute's docstring, default and examples (in the text too: editors show the text)."""
        text = " ".join((info.description or "").split())
        default = self.default_of(info)
        if default is not None:
            out["default"] = default
            text += f" Default: {json.dumps(default, ensure_ascii=False)}."
        unit = unit_of(info)
        examples = [e.strip() for e in unit.example.split(",")] if unit is not None else out.pop("examples", None)
        if examples:
            out["examples"] = examples
            text += " Examples: " + ", ".join(json.dumps(e, ensure_ascii=False) for e in examples) + "."
        if text.strip():
            out = {"description": text.strip(), **out}
        return out

    @staticmethod
    def default_of(info: FieldInfo) -> Any:
        if info.is_required():
            return None
        value = info.get_default(call_default_factory=True)
        unit = unit_of(info)
        if unit is not None and value is not None:
            return unit.fmt(value)
        if value in (None, {}, []) or isinstance(value, BaseModel):
            return None
        return value

    # -- types

    def annotation(self, tp: Any, meta: list[Any], place: Place, resources: bool = False) -> dict[str, Any]:
        origin = get_origin(tp)
        if origin is Annotated:
            inner, *more = get_args(tp)
            return self.annotation(inner, [*more, *meta], place, resources)
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(tp) if a is not type(None)]
            branches = [self.annotation(m, meta, place, resources) for m in members]
            if type(None) in get_args(tp):
                branches.append({"type": "null"})
            return any_of(branches)
        refs = [m for m in meta if type(m).__name__ == "_RefOr"]
        if refs:
            rest = [m for m in meta if m not in refs]
            inner = self.annotation(tp, rest, place, resources)
            if inner.get("type") == "string" or inner.get("$ref") == "#/$defs/Text":
                return inner  # a reference is text already, and TextRules check every ${...} in text
            out = any_of([inner, self.reference()])
            kinds = [k for k in out.get("type", []) if k not in ("string", "null")]
            words = {"integer": "a whole number", "number": "a number", "array": "a list"}
            if "patternErrorMessage" in out and kinds:
                what = " or ".join(words.get(k, k) for k in kinds)
                out["patternErrorMessage"] = f"{what}, or a reference such as ${{step.output}} or ${{params.name}}"
            return out
        unit = next((m for m in meta if type(m).__name__ == "_Unit"), None)
        if unit is not None:
            return self.unit(unit, [m for m in meta if m is not unit], resources)
        if any(type(m).__name__ == "_WhenField" for m in meta):
            return self.when(place)
        return self.plain(tp, meta, place)

    def plain(self, tp: Any, meta: list[Any], place: Place) -> dict[str, Any]:
        origin = get_origin(tp)
        if origin is Literal:
            values = list(get_args(tp))
            return {"const": values[0]} if len(values) == 1 else {"enum": values}
        if origin is list:
            (item,) = get_args(tp) or (Any,)
            out = {"type": "array", "items": self.annotation(item, [], place)}
            return constrain(out, meta)
        if origin is dict:
            key, value = get_args(tp)
            out = {"type": "object"}
            names = self.key_schema(key, place)
            if names:
                out["propertyNames"] = names
            out["additionalProperties"] = self.annotation(value, [], place)
            return out
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            return self.model(tp, place)
        if tp is Any:
            return self.ref("StepValue" if place.in_step else "Value", lambda: self.value(place))
        if tp is str:
            return self.string(meta, place)
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return constrain({"type": "integer", "minimum": -INT_MAX, "maximum": INT_MAX}, meta)
        if tp is float:
            return constrain({"type": "number", "minimum": -INT_MAX, "maximum": INT_MAX}, meta)
        raise TypeError(f"dmlc schema: no JSON Schema for {tp!r}; add it to dmlc/schema.py")

    def string(self, meta: list[Any], place: Place) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        for m in meta:
            pattern = getattr(m, "pattern", None)
            if pattern is not None:
                out["pattern"] = portable(pattern, "rust")
                out["patternErrorMessage"] = pattern_words(pattern)
        out = constrain(out, [m for m in meta if not hasattr(m, "pattern")])
        if place.in_step:
            return self.text(out)
        return out

    def text(self, out: dict[str, Any] | None = None) -> dict[str, Any]:
        """A string under a step: what check_strings and check_process_text take."""
        rules = self.ref("TextRules", self.text_rules)
        if out is None or out == {"type": "string"}:
            return self.ref("Text", lambda: {"type": "string", **rules})
        return {**out, "allOf": [rules]}

    def text_rules(self) -> dict[str, Any]:
        return {
            "allOf": [
                {
                    "pattern": self.rules["interpolation"],
                    "patternErrorMessage": (
                        "every ${...} in text must be a reference: step.output, step[*].output, step[0].output, "
                        "params.name, each or each.field (write $${ for a literal ${)"
                    ),
                },
                {"pattern": self.rules["no_nul"], "patternErrorMessage": "a process cannot receive a NUL character"},
            ]
        }

    def key_schema(self, key: Any, place: Place) -> dict[str, Any] | None:
        meta: list[Any] = []
        if get_origin(key) is Annotated:
            key, *meta = get_args(key)
        pattern = next((m.pattern for m in meta if getattr(m, "pattern", None)), None)
        if pattern is not None:
            return self.ref("Name", self.name) if pattern == name_re() else {"pattern": portable(pattern, "rust")}
        if place.in_step:
            return {"pattern": self.rules["no_nul"], "patternErrorMessage": "a process cannot receive a NUL character"}
        return None

    def name(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": self.rules["name"],
            "patternErrorMessage": "a name starts with a letter or _ and holds only letters, digits and _",
        }

    def step_name(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": self.rules["step_name"],
            "patternErrorMessage": (
                "a step name starts with a letter or _ and holds only letters, digits and _; "
                f"it cannot be a reserved word ({self.rules['reserved']})"
            ),
        }

    def env_name(self) -> dict[str, Any]:
        return {
            "pattern": self.rules["env_name"],
            "patternErrorMessage": (
                "an environment variable name holds letters, digits, _, - and . and does not start with a digit"
            ),
        }

    def reference(self) -> dict[str, Any]:
        return {
            "type": "string",
            "pattern": self.rules["ref"],
            "patternErrorMessage": (
                "a reference: ${step.output}, ${step[*].output}, ${step[0].output}, ${params.name}, ${each} "
                "or ${each.field}"
            ),
        }

    def when(self, place: Place) -> dict[str, Any]:
        out = {"type": "string", "examples": ["best.accuracy >= 0.8", "params.deploy == true"]}
        return {**self.text(), "examples": out["examples"]} if place.in_step else out

    def train_model(self, place: Place) -> dict[str, Any]:
        builtin = self.rules["builtin_models"]
        return {
            **self.text({"type": "string"}),
            "pattern": self.rules["model"],
            "patternErrorMessage": f'a built-in model ({builtin}), "pkg.module:build" or a reference such as ${{each}}',
            "examples": ["cnn", "pkg.models:build", "${each}"],
        }

    def value(self, place: Place) -> dict[str, Any]:
        """Any YAML value (params, task inputs and args, for_each items); every number within 64 bits."""
        name = "StepValue" if place.in_step else "Value"
        out: dict[str, Any] = {
            "type": ["string", "number", "boolean", "null", "array", "object"],
            "minimum": -INT_MAX,
            "maximum": INT_MAX,
            "items": {"$ref": f"#/$defs/{name}"},
            "additionalProperties": {"$ref": f"#/$defs/{name}"},
        }
        if place.in_step:
            out["propertyNames"] = {"pattern": self.rules["no_nul"]}
            out["allOf"] = [self.ref("TextRules", self.text_rules)]
        return out

    # -- steps and targets

    def step(self) -> dict[str, Any]:
        from dmlc.ir.model import STEP_KINDS

        kinds = list(STEP_KINDS)
        return {
            "type": "object",
            "description": "A step: its `kind` decides which attributes it takes.",
            "required": ["kind"],
            "properties": {"kind": {"description": "The step kind.", "enum": kinds}},
            "allOf": [
                {
                    "if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]},
                    "then": self.model(cls, STEP),
                }
                for kind, cls in STEP_KINDS.items()
            ],
        }

    def targets(self) -> dict[str, Any]:
        """One block per installed target, with that target's own options model (DML101, DML103)."""
        from dmlc import targets

        out = {}
        for name in targets.names():
            target = targets.get(name)
            if target is None:
                continue
            body = self.model(target.options_model, TOP)
            out[name] = {"description": f"Options of the {name} target: {target.description}.", **body}
        return out

    # -- unit numbers

    def unit(self, unit: Any, meta: list[Any], resources: bool) -> dict[str, Any]:
        mode, table = CONVERSION[unit.parse]
        low: tuple[Fraction, bool] = (Fraction(0), True)  # "cannot be negative"
        extra = ""
        for m in meta:
            if isinstance(m, Gt):
                low, extra = (Fraction(m.gt), False), f"more than {unit.fmt(m.gt)}"
            elif isinstance(m, Ge):
                low, extra = (Fraction(m.ge), True), f"at least {unit.fmt(m.ge)}"
            else:
                raise TypeError(f"dmlc schema: no unit constraint {m!r}")
        if resources:  # DML043 (check_resources): a zero cpu request, memory under 1Mi
            low = (Fraction(1), True) if unit.parse is units.parse_cpu else (Fraction(2**20), True)
            extra = "at least 1m" if unit.parse is units.parse_cpu else "at least 1Mi (a plain number is bytes)"
        high = (Fraction(unit.limit), True)
        kind = {"float": "Duration", "trunc": "Memory", "round": "Cpu"}[mode]
        name = ("Resource" if resources else "Positive" if extra else "") + kind
        body = unit_body(unit, mode, table, low, high, extra)
        if self.defs.setdefault(name, body) != body:
            raise RuntimeError(f"dmlc schema: two unit kinds named {name}")
        return {"$ref": f"#/$defs/{name}"}
