"""JSON Schema keywords from pydantic field metadata, for `dmlc schema` (dmlc/schema.py's builder).

Takes annotated-types / pydantic constraints, unit markers and IR patterns; gives JSON Schema keywords:
bounds (and the bounds a unit number must meet before check converts it), lengths, `uniqueItems`,
messages in words for the IR's patterns, and `anyOf` merged into one multi-type schema where the
branches read disjoint JSON types (yaml-language-server then reports the value's own type's problem).
"""

from __future__ import annotations

import types
from fractions import Fraction
from typing import Annotated, Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from pydantic import StringConstraints
from pydantic.fields import FieldInfo

from dmlc import units
from dmlc.schema_patterns import ANY, END, NUMBER, decimal_between, portable, ws

UNIT_WORDS = {
    units.parse_duration: "none for seconds",
    units.parse_memory: "none for bytes",
    units.parse_cpu: "m for millicores, none for cores",
}


def as_product(mode: str, bound: tuple[Fraction, bool], side: str) -> tuple[Fraction, bool] | None:
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


def json_number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def unit_of(info: FieldInfo) -> Any:
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


def name_re() -> str:
    from dmlc.ir.types import NAME_RE

    return NAME_RE


def pattern_words(pattern: str) -> str:
    """A message for a field pattern of the IR (the ones the models declare)."""
    if pattern == name_re():
        return "a name starts with a letter or _ and holds only letters, digits and _"
    known = {
        "^/": "an absolute path (starting with /)",
        r"^\s*\S+(\s+\S+){4}\s*$": 'a cron expression with five fields, e.g. "0 3 * * *"',
        r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$": 'a Python function as "pkg.module:function"',
        r"^[a-z0-9][a-z0-9.-]*/[A-Za-z0-9._-]+$": 'a secret reference as "secret-name/key"',
        r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$": 'a container image, e.g. "ghcr.io/org/image:1.0"',
    }
    from dmlc.ir.metric_names import WORDS
    from dmlc.ir.placement import PATTERN_WORDS

    return {**known, **PATTERN_WORDS, **WORDS}.get(pattern, f"must match {pattern}")


def constrain(out: dict[str, Any], meta: list[Any]) -> dict[str, Any]:
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
        elif isinstance(m, StringConstraints) and not only_pattern(m):
            raise TypeError(f"dmlc schema: no JSON Schema for {m!r} (only a pattern)")
        elif type(m).__name__ == "_Unique":  # dmlc.ir.types.UNIQUE: a repeat is DML029
            out["uniqueItems"] = True
        elif getattr(m, "pattern", None) is not None or (isinstance(m, FieldInfo) and m.discriminator is not None):
            continue
        else:
            raise TypeError(f"dmlc schema: no JSON Schema for the constraint {m!r}")
    return out


def only_pattern(m: StringConstraints) -> bool:
    return all(getattr(m, f) is None for f in ("strip_whitespace", "to_upper", "to_lower", "min_length", "max_length"))


TYPE_KEYWORDS = {  # keywords that read only values of one JSON type
    "string": {"pattern", "patternErrorMessage", "minLength", "maxLength"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"},
    "array": {"items", "minItems", "maxItems"},
    "null": set(),
    "boolean": set(),
}


def any_of(branches: list[dict[str, Any]]) -> dict[str, Any]:
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


def check_rules() -> dict[str, Any]:
    """Patterns and messages taken from check's rules (dmlc.validate), so that both read alike."""
    from dmlc.ir.model import BUILTIN_MODELS
    from dmlc.ir.types import NAME_RE, REF_BODY
    from dmlc.validate.process import ENV_NAME
    from dmlc.validate.rules import RESERVED

    space = ws("python")  # str.strip() and re's \s: the same set
    seg = "[A-Za-z_][A-Za-z0-9_]*"
    if REF_BODY.pattern != rf"^({seg})((?:\.{seg}|\[(?:\d+|\*)\])*)$":
        raise RuntimeError("dmlc.ir.types.REF_BODY changed: update the reference pattern in dmlc/schema_keywords.py")
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


def unit_body(
    unit: Any,
    mode: str,
    table: dict[str, float],
    low: tuple[Fraction, bool],
    high: tuple[Fraction, bool],
    extra: str,
) -> dict[str, Any]:
    x_low, x_high = as_product(mode, low, "low"), as_product(mode, high, "high")
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
        out["minimum" if x_low[1] else "exclusiveMinimum"] = json_number(x_low[0] / one)
    out["maximum" if x_high[1] else "exclusiveMaximum"] = json_number(x_high[0] / one)
    return out
