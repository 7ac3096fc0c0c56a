"""Run-time values (local executor, stage 4): resolve references, interpolate strings, evaluate `when`.

Takes a step's JSON dump (references still written `${...}`) and a `lookup(Ref) -> value` callback
that the executor answers from finished instances; gives resolved attributes, command arguments and
the truth of a `when` expression. `when` is evaluated by walking its `ast` with a small whitelist of
node kinds — never `eval` — so a pipeline file cannot run code in the executor.
"""

from __future__ import annotations

import ast
import json
import operator
from collections.abc import Callable
from typing import Any

from dmlc.ir.graph import WHEN_FUNCTIONS
from dmlc.ir.types import INTERP, REF_FULL, Ref, parse_ref

Lookup = Callable[[Ref], Any]


class ResolveError(Exception):
    """A reference or expression that cannot be given a value at run time."""


def to_text(value: Any) -> str:
    """How a value reads inside a string or a command argument: strings as-is, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def interpolate(text: str, lookup: Lookup) -> str:
    def replace(match: Any) -> str:
        return to_text(lookup(parse_ref(match.group(1))))

    return INTERP.sub(replace, text).replace("$${", "${")


def resolve(value: Any, lookup: Lookup) -> Any:
    """A JSON dump with whole-string refs replaced by their values and `${...}` inside strings filled."""
    if isinstance(value, str):
        match = REF_FULL.match(value)
        if match:
            return lookup(parse_ref(match.group(1)))
        return interpolate(value, lookup) if "${" in value else value
    if isinstance(value, dict):
        return {k: resolve(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, lookup) for v in value]
    return value


def resolve_arg(value: Any, lookup: Lookup) -> str:
    """One command argument: resolved, then as text (a list interpolates as JSON)."""
    return to_text(resolve(value, lookup))


def dig(value: Any, fields: tuple[str, ...] | list[str], what: str) -> Any:
    """`value.a.b` for nested dicts (param outputs are JSON)."""
    for field in fields:
        if isinstance(value, dict) and field in value:
            value = value[field]
        else:
            raise ResolveError(f"`{what}` has no field `{field}`")
    return value


# --- when --------------------------------------------------------------------------------------

_CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
_FUNCTIONS = WHEN_FUNCTIONS  # one list for the check (DML025) and for evaluation
_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def eval_when(expr: str, lookup: Lookup) -> bool:
    """Truth of a `when` expression such as `best.accuracy >= 0.8 and params.deploy == true`."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ResolveError(f"invalid `when` expression: {exc.msg}") from None
    try:
        return bool(_Eval(lookup).visit(tree.body))
    except ResolveError:
        raise
    except Exception as exc:  # a type error between values: report it as the expression's fault
        raise ResolveError(f"`when = {expr!r}` failed: {type(exc).__name__}: {exc}") from None


class _Eval:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup

    def visit(self, node: ast.AST) -> Any:
        method = getattr(self, f"v_{type(node).__name__}", None)
        if method is None:
            raise ResolveError(f"`{ast.unparse(node)}` is not allowed in `when`")
        return method(node)

    def v_Constant(self, node: ast.Constant) -> Any:
        return node.value

    def v_Name(self, node: ast.Name) -> Any:
        if node.id in _CONSTANTS:
            return _CONSTANTS[node.id]
        return self.lookup(parse_ref(node.id))

    def v_Attribute(self, node: ast.Attribute) -> Any:
        return self.lookup(parse_ref(ast.unparse(node)))

    def v_Subscript(self, node: ast.Subscript) -> Any:
        text = ast.unparse(node)
        try:
            return self.lookup(parse_ref(text))  # `model[0].metrics` is a reference
        except ValueError:
            return self.visit(node.value)[self.visit(node.slice)]

    def v_List(self, node: ast.List) -> Any:
        return [self.visit(e) for e in node.elts]

    def v_Tuple(self, node: ast.Tuple) -> Any:
        return tuple(self.visit(e) for e in node.elts)

    def v_BoolOp(self, node: ast.BoolOp) -> Any:
        if isinstance(node.op, ast.And):
            return all(self.visit(v) for v in node.values)
        return any(self.visit(v) for v in node.values)

    def v_UnaryOp(self, node: ast.UnaryOp) -> Any:
        value = self.visit(node.operand)
        if isinstance(node.op, ast.Not):
            return not value
        if isinstance(node.op, ast.USub):
            return -value
        if isinstance(node.op, ast.UAdd):
            return +value
        raise ResolveError(f"operator in `{ast.unparse(node)}` is not allowed in `when`")

    def v_BinOp(self, node: ast.BinOp) -> Any:
        op = _BINARY.get(type(node.op))
        if op is None:
            raise ResolveError(f"operator in `{ast.unparse(node)}` is not allowed in `when`")
        return op(self.visit(node.left), self.visit(node.right))

    def v_Compare(self, node: ast.Compare) -> Any:
        left = self.visit(node.left)
        for op_node, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.visit(right_node)
            if not _COMPARE[type(op_node)](left, right):
                return False
            left = right
        return True

    def v_Call(self, node: ast.Call) -> Any:
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS or node.keywords:
            raise ResolveError(f"call `{ast.unparse(node)}` is not allowed in `when` (only {', '.join(_FUNCTIONS)})")
        return _FUNCTIONS[node.func.id](*(self.visit(a) for a in node.args))
