"""A small expr-lang (github.com/expr-lang/expr v1.17.8, the version argo-workflows v4.1.2 pins) evaluator.

The subset Argo's `{{= }}` tags, `depends`, `retryStrategy.expression` and dmlc use, as a Pratt parser
with expr's own precedences (`parser/operator/operator.go`) and parse rules (`parser/parser.go`:
unary operators parse their operand at their precedence, `not in`, the `??` mixing rule, `c ? a : b`
at precedence 0): literals (ints, floats, '...' "..." and `raw` strings, true, false, nil),
identifiers, `a.b`, `a?.b`, `a['b']`, `a[0]` (negative from the end), calls, `[..]` and `{k: v}`,
unary `! not - +`, binary `* / % ** ^ + - == != < <= > >= in contains startsWith endsWith matches
&& || and or ??`. Runtime rules follow `vm/runtime/runtime.go`: a missing map key reads nil, fetching
from nil fails, `==` compares numbers across int/float, `/` is always float, `%` needs ints, `&&`
needs booleans. An unknown top-level name is expr's compile error ("unknown name x").
`identifiers` mirrors `getIdentifiers` of argo-workflows v4.1.2 `util/template/expression_template.go`.
Errors raise `ExprError`; `exprrun.py` evaluates the tree.
"""

from __future__ import annotations

import re
from typing import Any

UNARY = {"not": 50, "!": 50, "-": 90, "+": 90}
BINARY = {"or": 10, "||": 10, "and": 15, "&&": 15, "==": 20, "!=": 20, "<": 20, ">": 20, ">=": 20, "<=": 20}
BINARY |= {"in": 20, "matches": 20, "contains": 20, "startsWith": 20, "endsWith": 20, "+": 30, "-": 30}
BINARY |= {"*": 60, "/": 60, "%": 60, "**": 100, "^": 100, "??": 500}
RIGHT = {"**", "^"}
WORDS = {"not", "in", "and", "or", "matches", "contains", "startsWith", "endsWith"}
NEGATABLE = {"contains", "matches", "startsWith", "endsWith", "in"}
BUILTIN_NAMES = {"len", "type", "string", "int", "float", "lower", "upper", "trim", "split", "join", "keys", "values"}

_TOKEN = re.compile(
    r"""(?P<space>\s+)
    |(?P<num>0[xX][0-9a-fA-F_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)
    |(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`)
    |(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)
    |(?P<op>\?\?|\?\.|\*\*|==|!=|<=|>=|&&|\|\||\.\.|[-+*/%^<>!?:()\[\]{}.,|])""",
    re.X | re.S,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


class ExprError(Exception):
    """An expr-lang parse or evaluation error."""


def _unescape(body: str) -> str:
    def one(m: re.Match[str]) -> str:
        esc = m.group(1)
        if esc[0] in "xuU":
            return chr(int(esc[1:], 16))
        if esc[0] in "01234567":
            return chr(int(esc, 8))
        if esc in _ESCAPES:
            return _ESCAPES[esc]
        raise ExprError(f"invalid char escape \\{esc}")

    return re.sub(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)", one, body, flags=re.S)


def tokenize(text: str) -> list[tuple[str, Any]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExprError(f"unexpected token {text[pos]!r} (1:{pos + 1})")
        pos, kind, value = m.end(), m.lastgroup, m.group()
        if kind == "num":
            clean = value.replace("_", "")
            num = (
                int(clean, 16)
                if clean[:2].lower() == "0x"
                else float(clean)
                if re.search(r"[.eE]", clean)
                else int(clean)
            )
            out.append(("lit", num))
        elif kind == "str":
            out.append(("lit", value[1:-1] if value[0] == "`" else _unescape(value[1:-1])))
        elif kind == "name":
            words = {"true": ("lit", True), "false": ("lit", False), "nil": ("lit", None)}
            out.append(words.get(value, ("op", value) if value in WORDS else ("name", value)))
        elif kind == "op":
            out.append(("op", value))
    out.append(("eof", None))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks, self.i = tokenize(text), 0

    def peek(self, ahead: int = 0) -> tuple[str, Any]:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        tok = self.take()
        if tok != ("op", value):
            raise ExprError(f"unexpected token {tok[1]!r}, expected {value!r}")

    def expression(self, prec: int = 0) -> tuple:
        left, prev = self.primary(), ""
        while self.peek()[0] == "op":
            op, negate = self.peek()[1], False
            if op == "not":
                nxt = self.peek(1)
                if nxt[0] != "op" or nxt[1] not in NEGATABLE:
                    raise ExprError(f"unexpected token {nxt[1]!r}")
                if BINARY[nxt[1]] < prec:
                    break
                self.take()
                op, negate = nxt[1], True
            if op not in BINARY or BINARY[op] < prec:
                break
            self.take()
            if prev == "??" and op != "??":
                raise ExprError(
                    f"Operator ({op}) and coalesce expressions (??) cannot be mixed. Wrap either by parentheses."
                )
            right = self.expression(BINARY[op] if op in RIGHT else BINARY[op] + 1)
            left = ("binary", op, left, right)
            if negate:
                left = ("unary", "not", left)
            prev = op
        if prec == 0:
            while self.peek() == ("op", "?"):
                self.take()
                if self.peek() == ("op", ":"):
                    self.take()
                    left = ("cond", left, left, self.expression(0))
                else:
                    yes = self.expression(0)
                    self.expect(":")
                    left = ("cond", left, yes, self.expression(0))
        return left

    def primary(self) -> tuple:
        kind, value = self.take()
        if kind == "op" and value in UNARY:
            return self.postfix(("unary", value, self.expression(UNARY[value])))
        if (kind, value) == ("op", "("):
            node = self.expression(0)
            self.expect(")")
            return self.postfix(node)
        if kind == "lit":
            return self.postfix(("lit", value))
        if (kind, value) == ("op", "["):
            items = self.items("]")
            return self.postfix(("array", items))
        if (kind, value) == ("op", "{"):
            pairs = []
            while self.peek() != ("op", "}"):
                key = self.take()
                if key[0] not in ("lit", "name"):
                    raise ExprError(f"a map key must be a quoted string or an identifier, got {key[1]!r}")
                self.expect(":")
                pairs.append((("lit", key[1]), self.expression(0)))
                if self.peek() != ("op", "}"):
                    self.expect(",")
            self.take()
            return self.postfix(("map", pairs))
        if kind == "name":
            if self.peek() == ("op", "(") and value in BUILTIN_NAMES:
                self.take()
                return self.postfix(("builtin", value, self.items(")")))
            return self.postfix(("id", value))
        raise ExprError(f"unexpected token {value!r}" if kind != "eof" else "unexpected end of expression")

    def items(self, close: str) -> list[tuple]:
        out = []
        while self.peek() != ("op", close):
            out.append(self.expression(0))
            if self.peek() != ("op", close):
                self.expect(",")
        self.take()
        return out

    def postfix(self, node: tuple) -> tuple:
        while True:
            tok = self.peek()
            if tok in (("op", "."), ("op", "?.")):
                self.take()
                if tok[1] == "?." and self.peek() == ("op", "["):
                    self.take()
                    key = self.expression(0)
                    self.expect("]")
                    node = ("member", node, key, True)
                    continue
                name = self.take()
                if name[0] not in ("name", "op", "lit") or not isinstance(name[1], str) or not name[1]:
                    raise ExprError(f"expected name after '.', got {name[1]!r}")
                node = ("member", node, ("lit", name[1]), tok[1] == "?.")
            elif tok == ("op", "["):
                self.take()
                key = self.expression(0)
                self.expect("]")
                node = ("member", node, key, False)
            elif tok == ("op", "(") and node[0] in ("id", "member"):
                self.take()
                node = ("call", node, self.items(")"))
            else:
                return node


def parse(text: str) -> tuple:
    parser = _Parser(text)
    node = parser.expression(0)
    if parser.peek()[0] != "eof":
        raise ExprError(f"unexpected token {parser.peek()[1]!r}")
    return node


# -- identifiers (getIdentifiers / guardVisitor / getMemberPath) -------------------------------------


def _member_path(node: tuple) -> str | None:
    parts = []
    while node[0] == "member":
        if node[3] or node[2][0] != "lit" or not isinstance(node[2][1], str):
            return None
        parts.insert(0, node[2][1])
        node = node[1]
    return ".".join([node[1], *parts]) if node[0] == "id" else None


def _children(node: tuple) -> list[tuple]:
    kind = node[0]
    if kind == "member":
        return [node[1], node[2]]
    if kind in ("call", "builtin"):
        return ([node[1]] if kind == "call" else []) + list(node[2])
    if kind == "unary":
        return [node[2]]
    if kind == "binary":
        return [node[2], node[3]]
    if kind == "cond":
        return list(node[1:])
    if kind == "array":
        return list(node[1])
    if kind == "map":
        return [n for pair in node[1] for n in pair]
    return []


def identifiers(text: str) -> list[str]:
    """Names and member paths an expression reads, not counting members guarded by `??` or `?.`."""
    tree, guarded, found = parse(text), set(), []

    def guard(node: tuple) -> None:
        if node[0] == "binary" and node[1] == "??":
            stack = [node[2]]
            while stack:
                n = stack.pop()
                if n[0] == "member":
                    guarded.add(id(n))
                stack.extend(_children(n))
        if node[0] == "member" and node[3] and node[1][0] == "member":
            guarded.add(id(node[1]))
        for child in _children(node):
            guard(child)

    def visit(node: tuple) -> None:
        for child in _children(node):
            visit(child)
        if id(node) in guarded:
            return
        name = node[1] if node[0] == "id" else _member_path(node) if node[0] == "member" else None
        if name and name not in found:
            found.append(name)

    guard(tree)
    visit(tree)
    return found
