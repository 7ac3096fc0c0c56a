"""Go's text encodings that Argo's values pass through, so the replay writes the bytes the controller writes.

- `marshal`: `encoding/json` Marshal: compact, map keys sorted, `<` `>` `&` U+2028 U+2029 escaped
  (HTML-safe), float64 as `strconv.FormatFloat(f, 'f' or 'e', -1, 64)` with the `e-07` -> `e-7`
  clean-up (Go 1.2x `encoding/json/encode.go` floatEncoder). A `RawNumber` keeps the JSON text it was
  read from, as `json.RawMessage` does for withParam items (argo-workflows v4.1.2
  `pkg/apis/workflow/v1alpha1/item.go`).
- `quote`: `strconv.Quote` without its quotes, how `util/template/simple_template.go` (v4.1.2)
  escapes a simple tag's value and `expression_template.go` an expression's non-string result.
- `format_g`: `fmt.Sprint(float64)` = `strconv.FormatFloat(f, 'g', -1, 64)`.
- `any_string`: `AnyString` (`pkg/apis/workflow/v1alpha1/anystring.go`): YAML numbers and booleans
  given where Argo wants text.
- `parse_duration`: `time.ParseDuration`; `parse_string_duration`: `wfv1.ParseStringToDuration`
  (`pkg/apis/workflow/v1alpha1/utils.go`: a bare integer is seconds).
- `fnv32a`: node IDs and pod names (`workflow/util/pod_name.go`).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from decimal import Decimal
from typing import Any


class RawNumber(str):
    """A JSON number kept as the text it was written with (Go's json.RawMessage)."""


def loads_raw(text: str) -> Any:
    """json.Unmarshal into json.RawMessage-like items: numbers keep their text."""
    return json.loads(text, parse_int=RawNumber, parse_float=RawNumber)


def _digits(f: float) -> tuple[str, str, int]:
    """Sign, shortest round-trip digits, and the decimal point position (strconv's decimal)."""
    _, digits, exp = Decimal(repr(abs(f))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    point = len(digits) + int(exp)
    return ("-" if f < 0 or math.copysign(1, f) < 0 else ""), text, point


def _fixed(digits: str, point: int) -> str:
    if point <= 0:
        return "0." + "0" * -point + digits
    if point >= len(digits):
        return digits + "0" * (point - len(digits))
    return digits[:point] + "." + digits[point:]


def _exp(digits: str, point: int, min_digits: int = 2) -> str:
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    e = point - 1
    return f"{mant}e{'-' if e < 0 else '+'}{abs(e):0{min_digits}d}"


def format_float(f: float, fmt: str) -> str:
    """strconv.FormatFloat(f, fmt, -1, 64) for fmt in 'f', 'e', 'g'."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign, digits, point = _digits(f)
    if digits == "0":
        point = 1
    if fmt == "g":  # shortest: %e when the exponent is < -4 or >= 6 (strconv/ftoa.go)
        fmt = "e" if digits != "0" and not -4 <= point - 1 < 6 else "f"
    return sign + (_exp(digits, point) if fmt == "e" else _fixed(digits, point))


def format_g(f: float) -> str:
    """fmt.Sprint(float64)."""
    return format_float(f, "g")


def _json_float(f: float) -> str:
    if math.isnan(f) or math.isinf(f):
        raise ValueError(f"json: unsupported value: {format_g(f)}")
    a = abs(f)
    text = format_float(f, "e" if a != 0 and (a < 1e-6 or a >= 1e21) else "f")
    return re.sub(r"e-0(\d)$", r"e-\1", text)


_HTML = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _string(s: str) -> str:
    return json.dumps(s, ensure_ascii=False).translate(_HTML)


def marshal(value: Any) -> str:
    """encoding/json Marshal of a JSON-like value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, RawNumber):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _json_float(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(str(k))}:{marshal(v)}" for k, v in sorted(value.items())) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(marshal(v) for v in value) + "]"
    raise TypeError(f"json: unsupported type: {type(value).__name__}")


def marshal_ordered(value: Any) -> str:
    """Marshal keeping dict order (a Go struct marshals its fields in declaration order)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{_string(str(k))}:{marshal_ordered(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(marshal_ordered(v) for v in value) + "]"
    return marshal(value)


_SHORT = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}


def quote(text: str) -> str:
    """strconv.Quote(text) without the surrounding double quotes."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _SHORT:
            out.append(_SHORT[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x80 or (unicodedata.category(ch)[0] in "LMNPS"):
            out.append(ch)
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out)


def any_string(value: Any) -> str:
    """wfv1.AnyString of a scalar read from YAML/JSON."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, RawNumber):
        return format_float(float(value), "f") if not re.fullmatch(r"-?\d+", value) else str(int(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_float(value, "f")
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    raise TypeError(f"not a scalar: {value!r}")


_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d*(?:\.\d*)?)([^\d.]*)")


def parse_duration(text: str) -> float:
    """time.ParseDuration, in seconds; ValueError with Go's message."""
    s, sign = text, 1.0
    if s and s[0] in "+-":
        sign, s = (-1.0 if s[0] == "-" else 1.0), s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0.0, 0
    while pos < len(s):
        number, unit = _PART.match(s, pos).groups()
        if number in ("", "."):
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _UNITS[unit]
        pos += len(number) + len(unit)
    return sign * total


def parse_string_duration(text: str) -> float:
    """wfv1.ParseStringToDuration: an integer is seconds, else a Go duration."""
    if re.fullmatch(r"[+-]?\d+", text):
        return float(int(text))
    try:
        return parse_duration(text)
    except ValueError as err:
        raise ValueError(f"unable to parse {text} as a duration: {err}") from None


def fnv32a(text: str) -> int:
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h
