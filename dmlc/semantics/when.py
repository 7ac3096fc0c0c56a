"""Evaluation of a parsed `when` (`dmlc.ir.when` tree) against run-time values.

Takes the tree and a `lookup(Ref) -> value`; gives its truth. Used by the local executor and by the
KFP condition component, so both decide exactly alike; the Argo target translates the same tree into
an Argo expression instead. Nothing is ever `eval`-ed: the tree holds only whitelisted node kinds.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from dmlc.ir.when import FUNCTIONS, Arith, Bool, Call, Compare, Item, Lit, Neg, Node, Not, Seq, Var, When
from dmlc.semantics.values import Lookup, ResolveError

COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
MAX_SIZE = 100_000  # items (or characters) a value built by a `when` may hold: a condition needs few


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list)) else 0


def _add(a: Any, b: Any) -> Any:
    if _size(a) + _size(b) > MAX_SIZE:
        raise ResolveError(f"a `when` would build a value of more than {MAX_SIZE:,} items")
    return operator.add(a, b)


def _mul(a: Any, b: Any) -> Any:
    count = b if _size(a) else a if _size(b) else 0
    if isinstance(count, int) and (_size(a) or _size(b)) * max(count, 0) > MAX_SIZE:
        raise ResolveError(f"a `when` would build a value of more than {MAX_SIZE:,} items")
    return operator.mul(a, b)


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):  # `'%9999999999d' % 1` is printf formatting, not a remainder
        raise ResolveError("`%` in a `when` takes numbers")
    return operator.mod(a, b)


def _sum(values: Any, start: Any = 0) -> Any:
    items = list(values)
    if not all(isinstance(v, (int, float)) for v in [*items, start]):  # sum(lists, []) is quadratic
        raise ResolveError("`sum` in a `when` takes numbers")
    return sum(items, start)


ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": _add,
    "-": operator.sub,
    "*": _mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": _mod,
}
CALLS: dict[str, Callable[..., Any]] = {**FUNCTIONS, "sum": _sum}


def holds(when: When, lookup: Lookup) -> bool:
    """Truth of a `when` such as `best.metrics.accuracy >= 0.8 and params.deploy == true`."""
    try:
        return bool(value(when.tree, lookup))
    except ResolveError:
        raise
    except Exception as exc:  # a type error between values: the expression's fault, said plainly
        raise ResolveError(f"`when = {when.text!r}` failed: {type(exc).__name__}: {exc}") from None


def value(node: Node, lookup: Lookup) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Var):
        return lookup(node.ref)
    if isinstance(node, Not):
        return not value(node.operand, lookup)
    if isinstance(node, Neg):
        return -value(node.operand, lookup)
    if isinstance(node, Bool):
        test = all if node.op == "and" else any
        return test(value(v, lookup) for v in node.values)
    if isinstance(node, Compare):
        return _compare(node, lookup)
    if isinstance(node, Arith):
        return ARITH[node.op](value(node.left, lookup), value(node.right, lookup))
    if isinstance(node, Call):
        return CALLS[node.func](*(value(a, lookup) for a in node.args))
    if isinstance(node, Seq):
        return [value(i, lookup) for i in node.items]
    assert isinstance(node, Item)
    return value(node.value, lookup)[value(node.index, lookup)]


def _compare(node: Compare, lookup: Lookup) -> bool:
    left = value(node.left, lookup)
    for op, right_node in zip(node.ops, node.rights, strict=True):
        right = value(right_node, lookup)
        if not COMPARE[op](left, right):
            return False
        left = right
    return True
