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
ARITH: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
}


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
        return FUNCTIONS[node.func](*(value(a, lookup) for a in node.args))
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
