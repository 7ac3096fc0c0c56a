"""Regular expressions for the JSON Schema (`dmlc schema`) that decide exactly as `check` does.

A schema pattern is run by two engines: ECMA-262 with the `u` flag in editors (yaml-language-server)
and Python's `re` in the jsonschema library. `check` itself uses Python's `re` (units, references,
environment names) and pydantic's Rust `regex` (field patterns). Where the three read a construct
differently the pattern is rewritten here into the subset that all of them read alike: `$` (Python
also matches before a final newline), `\\s` (three different sets), `\\d` and `\\w` (Unicode in Python
and Rust, ASCII in ECMA), `.`.

`decimal` builds patterns of decimal numbers by value (`2.5` <= 1048576), so that a unit number out
of range (`4000d`) is an editor error too; the bounds come from the unit tables in dmlc.units.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import cache

END = r"$(?!\n)"  # the end of the text in every engine (Python's `$` also matches before a final "\n")
ANY = r"[\s\S]"  # any character, newlines included, in every engine
NUMBER = r"[0-9]+(?:\.[0-9]+)?"  # the number of a unit value (dmlc.units._NUMBER), ASCII digits


def char_class(points: list[int], negate: bool = False) -> str:
    """`[...]` of these code points, written so that ECMA (u flag) and Python read it alike."""
    ranges: list[tuple[int, int]] = []
    for p in sorted(set(points)):
        if ranges and ranges[-1][1] == p - 1:
            ranges[-1] = (ranges[-1][0], p)
        else:
            ranges.append((p, p))
    body = "".join(_esc(a) if a == b else f"{_esc(a)}-{_esc(b)}" for a, b in ranges)
    return f"[{'^' if negate else ''}{body}]"


def _esc(point: int) -> str:
    char = chr(point)
    if char.isascii() and (char.isalnum() or char == "_"):
        return char
    if point <= 0xFF:
        return f"\\x{point:02x}"
    if point <= 0xFFFF:
        return f"\\u{point:04x}"
    return char  # outside the BMP: the character itself (no escape reads the same in both engines)


@cache
def whitespace(engine: str) -> tuple[int, ...]:
    """The code points `\\s` matches in `python` (re, str patterns) or `rust` (pydantic's patterns)."""
    if engine == "python":
        return tuple(p for p in range(0x3001) if re.match(r"\s", chr(p)))
    from typing import Annotated

    from pydantic import StringConstraints, TypeAdapter, ValidationError

    adapter = TypeAdapter(Annotated[str, StringConstraints(pattern=r"^\s$")])
    found = []
    for p in range(0x3001):
        try:
            adapter.validate_python(chr(p))
        except ValidationError:
            continue
        found.append(p)
    return tuple(found)


def ws(engine: str = "python") -> str:
    return char_class(list(whitespace(engine)))


# `\w` outside ASCII differs between all three engines: the schema takes every non-ASCII character there
# (an editor never flags what check may accept); ASCII is exact.
_WORD_ASCII = "0-9A-Z_a-z"
_NON_ASCII = "[^\\x00-\\x7f]"


def portable(pattern: str, engine: str) -> str:
    """`pattern` as `engine` (`python` re or pydantic's `rust` regex) reads it, in the common subset.

    Handles what dmlc's own patterns use; anything else raises, so that a new construct is translated
    on purpose instead of silently read differently by an editor."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "[":
            i, text = _class(pattern, i, engine)
        elif c == "\\":
            text = _escape(pattern, i, engine, in_class=False)
            i += 2
        else:
            text = {"$": (r"\n?" if engine == "python" else "") + END, ".": r"[^\n]"}.get(c, c)
            i += 1
        out.append(text)
    return "".join(out)


def _escape(pattern: str, i: int, engine: str, in_class: bool) -> str:
    """The escape at `i` (a backslash and one character), portable; `\\w` in a class is "WORD"."""
    nxt = pattern[i + 1]
    if nxt in ".$^*+?()[]{}|/\\-":
        return "\\" + nxt
    space = ws(engine)
    shorthand = {
        "d": "0-9" if in_class else "[0-9]",
        "s": space[1:-1] if in_class else space,
        "S": None if in_class else "[^" + space[1:],
        "w": "WORD" if in_class else f"(?:[{_WORD_ASCII}]|{_NON_ASCII})",
    }
    text = shorthand.get(nxt)
    if text is None:
        raise ValueError(f"portable(): no translation for `\\{nxt}` in {pattern!r}")
    return text


def _class(pattern: str, start: int, engine: str) -> tuple[int, str]:
    """The character class at `start`: (index after it, its portable text)."""
    i = start + 1
    negate = pattern[i] == "^"
    i += negate
    items: list[str] = []
    while pattern[i] != "]" or not items:
        if pattern[i] == "\\":
            items.append(_escape(pattern, i, engine, in_class=True))
            i += 2
        else:
            items.append(pattern[i])
            i += 1
    if "WORD" not in items:
        return i + 1, f"[{'^' if negate else ''}{''.join(items)}]"
    if negate:
        raise ValueError(f"portable(): no translation for [^...\\w...] in {pattern!r}")
    rest = "".join(x for x in items if x != "WORD")
    return i + 1, f"(?:[{_WORD_ASCII}{rest}]|{_NON_ASCII})"


# ---------------------------------------------------------------------------------------------------
# numbers by value


def digits(t: Fraction, places: int = 30) -> tuple[str, str, bool]:
    """(integer digits without leading zeros, fraction digits without trailing zeros, exact?) of t >= 0."""
    whole = t.numerator // t.denominator
    rest, frac = t - whole, ""
    for _ in range(places):
        if rest == 0:
            break
        rest *= 10
        digit = rest.numerator // rest.denominator
        frac += str(digit)
        rest -= digit
    return ("" if whole == 0 else str(whole)), frac.rstrip("0"), rest == 0


def _rng(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"[{lo}-{hi}]"


def _alt(parts: list[str]) -> str | None:
    parts = [p for p in parts if p is not None]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"


FRAC = r"(?:\.[0-9]+)?"


def _int_cmp(a: str) -> dict[str, list[str]]:
    """Integer-part patterns (leading zeros allowed) by their comparison with the integer a."""
    n = len(a)
    less, more = [], []
    if n:
        less.append("0+")
        if n >= 2:
            less.append(f"0*[1-9][0-9]{{0,{n - 2}}}")
        more.append(f"0*[1-9][0-9]{{{n},}}")
        for i, ch in enumerate(a):
            d, low = int(ch), 1 if i == 0 else 0
            rest = f"[0-9]{{{n - 1 - i}}}" if n - 1 - i else ""
            if d > low:
                less.append(f"0*{a[:i]}{_rng(low, d - 1)}{rest}")
            if d < 9:
                more.append(f"0*{a[:i]}{_rng(d + 1, 9)}{rest}")
    else:
        more.append("0*[1-9][0-9]*")
    return {"lt": less, "eq": [f"0*{a}" if n else "0+"], "gt": more}


def _frac_cmp(b: str) -> dict[str, str | None]:
    """Fraction parts (`.123`, or none) by their comparison with 0.b."""
    less, more = [], []
    for i, ch in enumerate(b):
        d = int(ch)
        if d > 0:
            less.append(f"{b[:i]}{_rng(0, d - 1)}[0-9]*")
        if d < 9:
            more.append(f"{b[:i]}{_rng(d + 1, 9)}[0-9]*")
        less.append(f"{b[:i]}0*" if i else "0+")
    more.append(f"{b}0*[1-9][0-9]*")
    lt = _alt([r"\." + p for p in less])
    return {
        "lt": (f"(?:{lt})?" if lt else None) if b else None,
        "eq": rf"\.{b}0*" if b else r"(?:\.0+)?",
        "gt": r"\." + (_alt(more) or ""),
    }


def decimal(op: str, bound: Fraction) -> str:
    """A pattern of the numbers `[0-9]+(\\.[0-9]+)?` whose value is `op` (lt, le, gt, ge) the bound.

    Exact for bounds with a finite decimal expansion; others are cut at 30 places (a number written
    with more places than that may be misjudged)."""
    if bound < 0:
        return NUMBER if op in ("gt", "ge") else "(?!)"
    a, b, exact = digits(bound)
    if not exact:  # between the cut value and the bound lies no number of 30 places or fewer
        op = {"lt": "le", "ge": "gt"}.get(op, op)
    ints, fracs = _int_cmp(a), _frac_cmp(b)
    eq = ints["eq"][0]
    parts: list[str | None] = []
    if op in ("lt", "le"):
        parts += [f"{p}{FRAC}" for p in ints["lt"]]
        parts.append(f"{eq}{fracs['lt']}" if fracs["lt"] is not None else None)
    else:
        parts += [f"{p}{FRAC}" for p in ints["gt"]]
        parts.append(f"{eq}{fracs['gt']}")
    if op in ("le", "ge"):
        parts.append(f"{eq}{fracs['eq']}")
    return _alt([p for p in parts if p is not None]) or "(?!)"


def decimal_between(low: tuple[Fraction, bool] | None, high: tuple[Fraction, bool] | None) -> str:
    """Numbers within (bound, inclusive?) limits; the number must be followed by a non-number character."""
    parts = []
    if high is not None:
        parts.append(f"(?={decimal('le' if high[1] else 'lt', high[0])}(?![.0-9]))")
    if low is not None and not (low[0] <= 0 and (low[1] or low[0] < 0)):
        parts.append(decimal("ge" if low[1] else "gt", low[0]))
    else:
        parts.append(NUMBER)
    return "".join(parts)
