"""`when` as Argo evaluates it: `shouldExecute` of argo-workflows v4.1.2 `workflow/controller/steps.go`.

The substituted `when` text is parsed by github.com/Knetic/govaluate (v3.0.1-0.20250325060307,
`parsing.go`, `evaluationStage.go`, `OperatorSymbol.go`) and every bare VARIABLE token becomes a
string, so `foo == foo` is true without quotes. The subset here: numbers (float64), 'single' or
"double" quoted strings (backslash escapes anything), true/false, bare words (strings), `(...)`,
`a, b` lists (for `in`), prefix `! -`, `** * / % + -`, `== != > >= < <= =~ !~ in`, `&& ||`, `?:` and
`??`, with govaluate's precedences and type checks ("Value 'x' cannot be used with the comparator
'>', it is not a number"). A word holding a dot is an ACCESSOR, which Argo does not turn into a
string: it fails to evaluate without parameters. Strings that parse as dates are not turned into times.
"""

from __future__ import annotations

import math
import re
from typing import Any


class WhenError(Exception):
    """A `when` that Argo rejects (the task node becomes an Error)."""


_TOKEN = re.compile(
    r"\s*(?:(?P<num>0x[0-9a-fA-F]+|[\d.]+)|(?P<str>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")"
    r"|(?P<word>[^\W\d_][\w.]*)|(?P<br>\[[^\]]*\])|(?P<paren>[()])|(?P<comma>,)|(?P<sym>[^\w\s()\[\]'\",]+))"
)
_LEVELS = [
    ("??",),
    ("?", ":"),
    ("||",),
    ("&&",),
    ("==", "!=", ">", ">=", "<", "<=", "=~", "!~", "in"),
    ("&", "|", "^"),
    ("<<", ">>"),
    ("+", "-"),
    ("*", "/", "%"),
    ("**",),
]
_KNOWN = {op for level in _LEVELS for op in level} | {"!", "~"}


def _tokens(when: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(when):
        m = _TOKEN.match(when, pos)
        if not m or m.end() == pos:
            if when[pos:].strip() == "":
                break
            raise WhenError(f"Invalid 'when' expression '{when}': Invalid token: '{when[pos:].strip()}'")
        pos, kind, text = m.end(), m.lastgroup, m.group(m.lastgroup)
        if kind == "num":
            try:
                out.append(("val", float(int(text, 16)) if text.startswith("0x") else float(text)))
            except ValueError:
                raise WhenError(
                    f"Invalid 'when' expression '{when}': Unable to parse numeric value '{text}' to float64"
                ) from None
        elif kind == "str":
            out.append(("val", re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.S)))
        elif kind == "word":
            if text in ("true", "false"):
                out.append(("val", text == "true"))
            elif text.lower() == "in":
                out.append(("op", "in"))
            elif "." in text:
                out.append(("accessor", text))
            else:
                out.append(("val", text))  # VARIABLE -> STRING (steps.go)
        elif kind == "br":
            out.append(("val", text[1:-1]))
        elif kind in ("paren", "comma"):
            out.append((kind, text))
        else:
            if text not in _KNOWN:
                hint = ' (hint: try wrapping the affected expression in quotes ("))'
                raise WhenError(f"Invalid 'when' expression '{when}': Invalid token: '{text}'{hint}")
            out.append(("op", text))
    return out


class _Parser:
    def __init__(self, when: str) -> None:
        self.when, self.toks, self.i = when, _tokens(when), 0

    def peek(self) -> tuple[str, Any] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def fail(self, message: str) -> WhenError:
        return WhenError(f"Failed to evaluate 'when' expresion '{self.when}': {message}")

    def parse(self, level: int = 0) -> Any:
        if level == len(_LEVELS):
            return self.prefix()
        left = self.parse(level + 1)
        while (tok := self.peek()) and tok[0] == "op" and tok[1] in _LEVELS[level]:
            self.i += 1
            right = self.parse(level + 1)
            if tok[1] == "?":  # TERNARY_TRUE then TERNARY_FALSE stages (evaluationStage.go)
                left = right if self._bool(left, "?") else None
            elif tok[1] == ":":
                left = left if left is not None else right
            else:
                left = self.apply(tok[1], left, right)
        return left

    def prefix(self) -> Any:
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("!", "-"):
            self.i += 1
            value = self.prefix()
            if tok[1] == "!":
                if not isinstance(value, bool):
                    raise self.fail(f"Value '{value}' cannot be used with the prefix '!'")
                return not value
            if not _num(value):
                raise self.fail(f"Value '{value}' cannot be used with the prefix '-'")
            return -value
        return self.value()

    def value(self) -> Any:
        tok = self.peek()
        if tok is None:
            raise WhenError(f"Invalid 'when' expression '{self.when}': Unexpected end of expression")
        self.i += 1
        if tok[0] == "val":
            return tok[1]
        if tok[0] == "accessor":
            raise self.fail(f"No parameter '{tok[1].split('.')[0]}' found.")
        if tok == ("paren", "("):
            items = [self.parse()]
            while self.peek() == ("comma", ","):
                self.i += 1
                items.append(self.parse())
            if self.peek() != ("paren", ")"):
                raise WhenError(f"Invalid 'when' expression '{self.when}': Unbalanced parenthesis")
            self.i += 1
            return items if len(items) > 1 else items[0]
        raise WhenError(f"Invalid 'when' expression '{self.when}': Unexpected token '{tok[1]}'")

    def _bool(self, value: Any, op: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(
                f"Value '{value}' cannot be used with the {'ternary operator' if op in '?:' else 'logical operator'} "
                f"'{op}', it is not a bool"
            )
        return value

    def apply(self, op: str, a: Any, b: Any) -> Any:
        if op in ("&&", "||"):
            self._bool(a, op), self._bool(b, op)
            return (a and b) if op == "&&" else (a or b)
        if op == "??":
            return b if a is None else a
        if op in ("==", "!="):
            return (type(a) is type(b) and a == b) == (op == "==")
        if op == "in":
            if not isinstance(b, list):
                b = [b]
            return any(type(a) is type(x) and a == x for x in b)
        if op in ("=~", "!~"):
            return (re.search(str(b), str(a)) is not None) == (op == "=~")
        if op in (">", ">=", "<", "<="):
            if not ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))):
                bad = a if not _num(a) else b
                raise self.fail(f"Value '{bad}' cannot be used with the comparator '{op}', it is not a number")
            return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]
        if op == "+" and (isinstance(a, str) or isinstance(b, str)):
            return f"{_fmt(a)}{_fmt(b)}"
        if not (_num(a) and _num(b)):
            bad = a if not _num(a) else b
            raise self.fail(f"Value '{bad}' cannot be used with the modifier '{op}', it is not a number")
        if op == "/":
            return a / b if b else math.copysign(math.inf, a) if a else math.nan
        ops = {"+": a + b, "-": a - b, "*": a * b, "**": math.pow(a, b)}
        if op == "%":
            return math.fmod(a, b) if b else math.nan
        if op in ("&", "|", "^", "<<", ">>"):
            x, y = int(a), int(b)
            return float({"&": x & y, "|": x | y, "^": x ^ y, "<<": x << y, ">>": x >> y}[op])
        return ops[op]


def _num(v: Any) -> bool:
    return isinstance(v, float)


def _fmt(v: Any) -> str:
    from tests.argo_replay.gojson import format_g

    return format_g(v) if isinstance(v, float) else ("true" if v is True else "false" if v is False else str(v))


def should_execute(when: str) -> bool:
    """shouldExecute: True for an empty `when`; WhenError when Argo cannot evaluate it."""
    if when == "":
        return True
    parser = _Parser(when)
    if parser.toks.count(("paren", "(")) != parser.toks.count(("paren", ")")):
        raise WhenError(f"Invalid 'when' expression '{when}': Unbalanced parenthesis")
    result = parser.parse()
    if parser.peek() is not None:
        raise WhenError(f"Invalid 'when' expression '{when}': Unexpected token '{parser.peek()[1]}'")
    if not isinstance(result, bool):
        raise WhenError(f"Expected boolean evaluation for '{when}'. Got {_fmt(result)}")
    return result
