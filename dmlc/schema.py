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
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo

from dmlc import units
from dmlc.schema_patterns import ANY, END, NUMBER, decimal_between, portable, ws

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
UNIT_WORDS = {
    units.parse_duration: "none for seconds",
    units.parse_memory: "none for bytes",
    units.parse_cpu: "m for millicores, none for cores",
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
# check's own field rules, in the schema's words


def _check_rules() -> dict[str, Any]:
    """Patterns and messages taken from check's rules (dmlc.validate), so that both read alike."""
    from dmlc.ir.model import BUILTIN_MODELS
    from dmlc.ir.types import NAME_RE, REF_BODY
    from dmlc.validate.process import ENV_NAME
    from dmlc.validate.rules import RESERVED

    space = ws("python")  # str.strip() and re's \s: the same set
    seg = "[A-Za-z_][A-Za-z0-9_]*"
    if REF_BODY.pattern != rf"^({seg})((?:\.{seg}|\[(?:\d+|\*)\])*)$":
        raise RuntimeError("dmlc.ir.types.REF_BODY changed: update the reference pattern in dmlc/schema.py")
    body = rf"{space}*{seg}(?:\[(?:[0-9]+|\*)\])?(?:\.{seg})*{space}*"  # parse_ref: one index, right after the name
    name = portable(NAME_RE, "rust")
    words = "|".join(RESERVED)
    return {
        "name": name,
        "step_name": f"^(?!(?:{words}){END})" + name.removeprefix("^"),
        "reserved": ", ".join(RESERVED),
        "env_name": portable(ENV_NAME.pattern, "python"),
        "ref": rf"^\$\{{{body}\}}\n?{END}",  # REF_FULL (Python's `$`) around a body parse_ref takes
        "interpolation": rf"^(?!{ANY}*(?<!\$)\$\{{(?!{body}\}})[^{{}}]*\}})",  # INTERP: every ${...} parses
        "no_nul": rf"^(?!{ANY}*\x00)",
        "model": "^(?:" + "|".join(BUILTIN_MODELS) + rf"){END}|:|^\$\{{[^{{}}]*\}}\n?{END}",
        "builtin_models": ", ".join(BUILTIN_MODELS),
    }


# ---------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self) -> None:
        self.rules = _check_rules()
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
        unit = _unit_of(info)
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
        unit = _unit_of(info)
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
            return _any_of(branches)
        refs = [m for m in meta if type(m).__name__ == "_RefOr"]
        if refs:
            rest = [m for m in meta if m not in refs]
            inner = self.annotation(tp, rest, place, resources)
            if inner.get("type") == "string" or inner.get("$ref") == "#/$defs/Text":
                return inner  # a reference is text already, and TextRules check every ${...} in text
            out = _any_of([inner, self.reference()])
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
            return _constrain(out, meta)
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
            return _constrain({"type": "integer", "minimum": -INT_MAX, "maximum": INT_MAX}, meta)
        if tp is float:
            return _constrain({"type": "number", "minimum": -INT_MAX, "maximum": INT_MAX}, meta)
        raise TypeError(f"dmlc schema: no JSON Schema for {tp!r}; add it to dmlc/schema.py")

    def string(self, meta: list[Any], place: Place) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        for m in meta:
            pattern = getattr(m, "pattern", None)
            if pattern is not None:
                out["pattern"] = portable(pattern, "rust")
                out["patternErrorMessage"] = _pattern_words(pattern)
        out = _constrain(out, [m for m in meta if not hasattr(m, "pattern")])
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
            return self.ref("Name", self.name) if pattern == _name_re() else {"pattern": portable(pattern, "rust")}
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
        body = self.unit_body(unit, mode, table, low, high, extra)
        if self.defs.setdefault(name, body) != body:
            raise RuntimeError(f"dmlc schema: two unit kinds named {name}")
        return {"$ref": f"#/$defs/{name}"}

    def unit_body(
        self,
        unit: Any,
        mode: str,
        table: dict[str, float],
        low: tuple[Fraction, bool],
        high: tuple[Fraction, bool],
        extra: str,
    ) -> dict[str, Any]:
        x_low, x_high = _as_product(mode, low, "low"), _as_product(mode, high, "high")
        space = ws("python")
        names = sorted(table, key=lambda u: (-len(u), u))
        form = rf"{space}*{NUMBER}{space}*(?:{'|'.join(names)}){space}*{END}"
        ranges = []
        for u in names:
            factor = Fraction(str(table[u]))
            low_u = None if x_low is None else (x_low[0] / factor, x_low[1])
            high_u = (x_high[0] / factor, x_high[1])
            ranges.append(decimal_between(low_u, high_u) + rf"{space}*{u}")
        in_range = rf"^(?!{form})|^{space}*(?:{'|'.join(ranges)}){space}*{END}"
        listed = ", ".join(u for u in table if u)
        words = UNIT_WORDS[unit.parse]
        limits = (f"{extra} and " if extra else "") + f"at most {unit.limit_text}"
        # one schema with type-specific keywords, not anyOf: pattern reads strings, minimum numbers, so an
        # editor names the problem of the value's own type ("at least 1Mi", not "expected a string")
        out: dict[str, Any] = {
            "description": f"a {unit.what}, e.g. {unit.example}",
            "examples": [e.strip() for e in unit.example.split(",")],
            "type": ["string", "number"],
            "pattern": "^" + form,
            "patternErrorMessage": f"a {unit.what} is a number and a unit: {listed} ({words}), e.g. {unit.example}",
            "allOf": [{"pattern": in_range, "patternErrorMessage": f"a {unit.what} of {limits}"}],
        }
        one = Fraction(str(table[""]))
        if x_low is not None:
            out["minimum" if x_low[1] else "exclusiveMinimum"] = _json_number(x_low[0] / one)
        out["maximum" if x_high[1] else "exclusiveMaximum"] = _json_number(x_high[0] / one)
        return out


def _as_product(mode: str, bound: tuple[Fraction, bool], side: str) -> tuple[Fraction, bool] | None:
    """A bound on the stored value -> the bound on `number * factor` before check converts it."""
    value, inclusive = bound
    if mode == "float":
        return bound
    if mode == "trunc":  # int(): toward zero
        if side == "low":
            whole = value if inclusive else value + 1
            return (whole, True) if whole > 0 else (whole - 1, False)
        whole = value if inclusive else value - 1
        return (whole + 1, False)
    # round(): half to even; the half point belongs to the even neighbour
    if side == "low":
        whole = value if inclusive else value + 1
        return (whole - Fraction(1, 2), whole % 2 == 0)
    whole = value if inclusive else value - 1
    return (whole + Fraction(1, 2), whole % 2 == 0)


def _json_number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def _unit_of(info: FieldInfo) -> Any:
    for m in info.metadata:
        if type(m).__name__ == "_Unit":
            return m

    def find(tp: Any) -> Any:
        if get_origin(tp) is Annotated:
            for m in get_args(tp)[1:]:
                if type(m).__name__ == "_Unit":
                    return m
            return find(get_args(tp)[0])
        if get_origin(tp) in (Union, types.UnionType):
            for a in get_args(tp):
                found = find(a)
                if found is not None:
                    return found
        return None

    return find(info.annotation)


def _name_re() -> str:
    from dmlc.ir.types import NAME_RE

    return NAME_RE


def _pattern_words(pattern: str) -> str:
    """A message for a field pattern of the IR (the ones the models declare)."""
    if pattern == _name_re():
        return "a name starts with a letter or _ and holds only letters, digits and _"
    known = {
        "^/": "an absolute path (starting with /)",
        r"^\s*\S+(\s+\S+){4}\s*$": 'a cron expression with five fields, e.g. "0 3 * * *"',
        r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$": 'a Python function as "pkg.module:function"',
        r"^[a-z0-9][a-z0-9.-]*/[A-Za-z0-9._-]+$": 'a secret reference as "secret-name/key"',
    }
    from dmlc.ir.placement import PATTERN_WORDS

    return {**known, **PATTERN_WORDS}.get(pattern, f"must match {pattern}")


def _constrain(out: dict[str, Any], meta: list[Any]) -> dict[str, Any]:
    for m in meta:
        if isinstance(m, Ge):
            out["minimum"] = max(m.ge, out.get("minimum", m.ge))
        elif isinstance(m, Gt):
            out.pop("minimum", None)
            out["exclusiveMinimum"] = m.gt
        elif isinstance(m, Le):
            out["maximum"] = min(m.le, out.get("maximum", m.le))
        elif isinstance(m, Lt):
            out.pop("maximum", None)
            out["exclusiveMaximum"] = m.lt
        elif isinstance(m, MinLen):
            out["minItems" if out.get("type") == "array" else "minLength"] = m.min_length
        elif isinstance(m, MaxLen):
            out["maxItems" if out.get("type") == "array" else "maxLength"] = m.max_length
        elif isinstance(m, StringConstraints) and not _only_pattern(m):
            raise TypeError(f"dmlc schema: no JSON Schema for {m!r} (only a pattern)")
        elif type(m).__name__ == "_Unique":  # dmlc.ir.types.UNIQUE: a repeat is DML029
            out["uniqueItems"] = True
        elif getattr(m, "pattern", None) is not None or (isinstance(m, FieldInfo) and m.discriminator is not None):
            continue
        else:
            raise TypeError(f"dmlc schema: no JSON Schema for the constraint {m!r}")
    return out


def _only_pattern(m: StringConstraints) -> bool:
    return all(getattr(m, f) is None for f in ("strip_whitespace", "to_upper", "to_lower", "min_length", "max_length"))


TYPE_KEYWORDS = {  # keywords that read only values of one JSON type
    "string": {"pattern", "patternErrorMessage", "minLength", "maxLength"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "array": {"items", "minItems", "maxItems"},
    "null": set(),
    "boolean": set(),
}


def _any_of(branches: list[dict[str, Any]]) -> dict[str, Any]:
    """One of these schemas. Branches of different JSON types whose keywords read only their own type
    become one schema (`type: [integer, string]`): the same values, and yaml-language-server then reports
    the problem of the value's own type instead of a merged "incorrect type" from its first branch."""
    flat: list[dict[str, Any]] = []
    for b in branches:
        flat += b["anyOf"] if set(b) == {"anyOf"} else [b]
    if len(flat) == 1:
        return flat[0]
    merged: dict[str, Any] = {}
    types_seen: list[str] = []
    for b in flat:
        kinds = b.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not kinds or any(k not in TYPE_KEYWORDS or k in types_seen for k in kinds):
            break
        allowed = set().union(*(TYPE_KEYWORDS[k] for k in kinds)) | {"type"}
        if set(b) - allowed or set(b) & set(merged) - {"type"}:
            break
        types_seen += kinds
        merged.update({k: v for k, v in b.items() if k != "type"})
    else:
        return {"type": types_seen, **merged}
    if flat[-1] == {"type": "null"}:  # nullable choices: null is one more value
        values = flat[0].get("enum", [flat[0]["const"]] if "const" in flat[0] else None)
        if len(flat) == 2 and values is not None and set(flat[0]) <= {"enum", "const"}:
            return {"enum": [*values, None]}
    return {"anyOf": flat}


# ---------------------------------------------------------------------------------------------------
# editors


def install(folder: str | Path = ".") -> list[Path]:
    """Write the schema to `folder`/.vscode/dmlc.schema.json and associate it with *.dml.yaml and
    *.dml.yml there: `yaml.schemas` in `folder`/.vscode/settings.json, which the YAML extension sends to
    yaml-language-server (other editors take the same setting). Keeps the other settings; a settings
    file that is not plain JSON (VS Code allows comments) is left alone: DML200 with the entry to add."""
    from dmlc.atomic import output_error, write_output
    from dmlc.diagnostics.catalogue import DML200
    from dmlc.diagnostics.model import Diagnostic, DmlError, Label

    vscode = Path(folder) / ".vscode"
    settings_path = vscode / "settings.json"
    settings: Any = {}
    if settings_path.exists():
        try:
            settings = json.loads(settings_path.read_text(encoding="utf-8") or "{}")
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            why = f"{exc.msg} at line {exc.lineno}" if isinstance(exc, json.JSONDecodeError) else str(exc)
            help_ = f"add this entry to it by hand: {install_setting_text()}"
            raise DmlError(
                [Diagnostic(DML200, f"cannot read `{settings_path}` as JSON: {why}", Label(None), help=help_)]
            ) from None
        if not isinstance(settings, dict):
            help_ = f"add this entry to it by hand: {install_setting_text()}"
            raise DmlError(
                [Diagnostic(DML200, f"`{settings_path}` does not hold a JSON object", Label(None), help=help_)]
            )
    schemas = settings.get("yaml.schemas")
    schemas = dict(schemas) if isinstance(schemas, dict) else {}
    schemas[INSTALL_KEY] = list(FILE_PATTERNS)
    settings["yaml.schemas"] = schemas
    try:
        vscode.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(str(vscode), exc) from None
    target = vscode / "dmlc.schema.json"
    write_output(str(target), schema_text())
    write_output(str(settings_path), json.dumps(settings, indent=2, ensure_ascii=False) + "\n")
    return [target, settings_path]


INSTALL_KEY = "./.vscode/dmlc.schema.json"  # relative to the workspace folder, as yaml-language-server reads it


def install_setting_text() -> str:
    return json.dumps({"yaml.schemas": {INSTALL_KEY: list(FILE_PATTERNS)}})
