"""The `when` expression as an IR node (stage 2, lower): text -> a small typed tree, parsed once.

Takes the text of a `when` attribute (`best.accuracy >= 0.8 and params.deploy`); gives a `When`: the text
as written (what `fmt` prints and the schema shows) and its tree of `Lit`, `Var` (a reference),
`Not`, `Neg`, `Bool`, `Compare`, `Arith`, `Call`, `Seq` and `Item` nodes. Python's `ast` only parses;
the tree is built from a whitelist of node kinds, so anything else (lambdas, comprehensions, calls
other than `FUNCTIONS`) is a DML025 at lowering. `normalize` rewrites `best.accuracy` to
`best.metrics.accuracy` once, so no target or evaluator needs that rule. Evaluation lives in
`dmlc.semantics.when`; each target translates the same tree.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, replace
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic_core import PydanticCustomError, core_schema

from dmlc.ir.types import Ref, parse_ref

# The only functions a `when` may call: lowering checks calls against it, evaluators call them.
FUNCTIONS: dict[str, Callable[..., Any]] = {"len": len, "min": min, "max": max, "abs": abs, "sum": sum, "any": any,
                                            "all": all}  # fmt: skip
CONSTANTS = {"true": True, "false": False, "null": None, "True": True, "False": False, "None": None}
COMPARE = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.In: "in",
           ast.NotIn: "not in"}  # fmt: skip
ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.FloorDiv: "//", ast.Mod: "%"}


@dataclass(frozen=True)
class Lit:
    value: Any


@dataclass(frozen=True)
class Var:
    ref: Ref


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class Neg:
    operand: Node


@dataclass(frozen=True)
class Bool:
    op: str  # "and" | "or"
    values: tuple[Node, ...]


@dataclass(frozen=True)
class Compare:
    left: Node
    ops: tuple[str, ...]
    rights: tuple[Node, ...]


@dataclass(frozen=True)
class Arith:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Seq:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Item:
    """`value[index]` where the whole is not a reference (e.g. `params.sizes[0]`)."""

    value: Node
    index: Node


Node = Lit | Var | Not | Neg | Bool | Compare | Arith | Call | Seq | Item


class WhenError(ValueError):
    """Text that is not a valid `when` expression (DML025)."""


@dataclass(frozen=True, eq=False)
class When:
    """A parsed `when`: equal and hashed by its text, so twins with the same text compare equal."""

    text: str
    tree: Node

    def __eq__(self, other: object) -> bool:
        return isinstance(other, When) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text

    def refs(self) -> list[Ref]:
        return [node.ref for node in walk(self.tree) if isinstance(node, Var)]


MAX_LENGTH = 10_000  # characters: a condition is a line; Python's parser needs memory in proportion


def parse(text: str) -> When:
    """`When` of `text`; raises WhenError with a message for the user."""
    if len(text) > MAX_LENGTH:
        raise WhenError(f"the expression is {len(text):,} characters long (at most {MAX_LENGTH:,})")
    try:
        tree = ast.parse(text.strip(), mode="eval")
        return When(text, _build(tree.body))
    except SyntaxError as exc:
        raise WhenError(f"invalid syntax: {exc.msg}") from None
    except (RecursionError, MemoryError):
        raise WhenError("the expression is nested too deeply") from None


def walk(node: Node) -> Iterator[Node]:
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: Node) -> list[Node]:
    """The sub-expressions of a node, in order."""
    found: list[Node] = []
    for f in fields(node):
        value = getattr(node, f.name)
        found += [v for v in value if _is_node(v)] if isinstance(value, tuple) else [value] * _is_node(value)
    return found


def map_children(node: Node, fn: Callable[[Node], Node]) -> Node:
    """The node with `fn` applied to each sub-expression (the node itself when nothing changed)."""
    changes: dict[str, Any] = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            new: Any = tuple(fn(v) if _is_node(v) else v for v in value)
        else:
            new = fn(value) if _is_node(value) else value
        if new != value:
            changes[f.name] = new
    return replace(node, **changes) if changes else node


def _is_node(value: Any) -> bool:
    return isinstance(value, (Lit, Var, Not, Neg, Bool, Compare, Arith, Call, Seq, Item))


def _build(node: ast.AST) -> Node:
    builder = _BUILDERS.get(type(node))
    if builder is None:
        raise WhenError(f"`{ast.unparse(node)}` is not allowed in `when`")
    return builder(node)


def _name(node: ast.Name) -> Node:
    if node.id in CONSTANTS:
        return Lit(CONSTANTS[node.id])
    return Var(parse_ref(node.id))


def _chain(node: ast.Attribute | ast.Subscript) -> Node:
    """A whole `a.b[0].c` chain is one reference; a subscript that is not one indexes a value."""
    try:
        return Var(parse_ref(ast.unparse(node)))
    except ValueError as exc:
        if isinstance(node, ast.Attribute):
            raise WhenError(str(exc)) from None
    assert isinstance(node, ast.Subscript)
    return Item(_build(node.value), _build(node.slice))


def _unary(node: ast.UnaryOp) -> Node:
    operand = _build(node.operand)
    if isinstance(node.op, ast.Not):
        return Not(operand)
    if isinstance(node.op, ast.USub):
        return Neg(operand)
    if isinstance(node.op, ast.UAdd):
        return operand
    raise WhenError(f"`{ast.unparse(node)}` is not allowed in `when`")


def _compare(node: ast.Compare) -> Node:
    ops = tuple(COMPARE.get(type(op), "") for op in node.ops)
    if "" in ops:
        raise WhenError(f"`{ast.unparse(node)}`: only == != < <= > >= in and not in compare values")
    return Compare(_build(node.left), ops, tuple(_build(c) for c in node.comparators))


def _arith(node: ast.BinOp) -> Node:
    op = ARITH.get(type(node.op))
    if op is None:
        raise WhenError(f"operator in `{ast.unparse(node)}` is not allowed in `when`")
    return Arith(op, _build(node.left), _build(node.right))


def _call(node: ast.Call) -> Node:
    if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS or node.keywords:
        raise WhenError(f"call `{ast.unparse(node)}` is not allowed in `when` (only {', '.join(FUNCTIONS)})")
    if any(isinstance(a, ast.Starred) for a in node.args):
        raise WhenError(f"`{ast.unparse(node)}`: `*` is not allowed in `when`")
    return Call(node.func.id, tuple(_build(a) for a in node.args))


def _constant(node: ast.Constant) -> Node:
    if not isinstance(node.value, (str, int, float, bool, type(None))):
        raise WhenError(f"`{ast.unparse(node)}` is not allowed in `when`")
    return Lit(node.value)


_BUILDERS: dict[type, Callable[[Any], Node]] = {
    ast.Constant: _constant,
    ast.Name: _name,
    ast.Attribute: _chain,
    ast.Subscript: _chain,
    ast.UnaryOp: _unary,
    ast.BoolOp: lambda n: Bool("and" if isinstance(n.op, ast.And) else "or", tuple(_build(v) for v in n.values)),
    ast.Compare: _compare,
    ast.BinOp: _arith,
    ast.Call: _call,
    ast.List: lambda n: Seq(tuple(_build(e) for e in n.elts)),
    ast.Tuple: lambda n: Seq(tuple(_build(e) for e in n.elts)),
}


def render(node: Node) -> str:
    """The tree as expression text that parses back to the same tree (fully parenthesised)."""
    if isinstance(node, Lit):
        return "null" if node.value is None else ("true" if node.value is True else
                                                  "false" if node.value is False else repr(node.value))  # fmt: skip
    if isinstance(node, Var):
        return node.ref.text
    if isinstance(node, (Not, Neg)):
        return ("not " if isinstance(node, Not) else "-") + f"({render(node.operand)})"
    if isinstance(node, Bool):
        return "(" + f" {node.op} ".join(render(v) for v in node.values) + ")"
    if isinstance(node, Compare):
        parts = [render(node.left)] + [f"{op} {render(r)}" for op, r in zip(node.ops, node.rights, strict=True)]
        return "(" + " ".join(parts) + ")"
    if isinstance(node, Arith):
        return f"({render(node.left)} {node.op} {render(node.right)})"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(render(a) for a in node.args)})"
    if isinstance(node, Seq):
        return "[" + ", ".join(render(i) for i in node.items) + "]"
    assert isinstance(node, Item)
    return f"({render(node.value)})[{render(node.index)}]"


# -- normalization (lowering) ---------------------------------------------------------------------
def normalize(when: When, outputs_of: Callable[[str], dict[str, str] | None]) -> When:
    """`best.accuracy` -> `best.metrics.accuracy` where `best` has no output `accuracy` but has `metrics`.

    `outputs_of(step)` gives a step's outputs, or None for a name that is no step (left for validation).
    """
    changed = _rewrite(when.tree, outputs_of)
    return when if changed is when.tree else When(when.text, changed)


def _rewrite(node: Node, outputs_of: Callable[[str], dict[str, str] | None]) -> Node:
    if isinstance(node, Var):
        ref = node.ref
        outputs = outputs_of(ref.root) if ref.is_step else None
        if outputs is not None and ref.fields and ref.fields[0] not in outputs and "metrics" in outputs:
            return Var(Ref(ref.root, ref.index, ("metrics", *ref.fields)))
        return node
    return map_children(node, lambda child: _rewrite(child, outputs_of))


# -- the pydantic field type ---------------------------------------------------------------------
class _WhenField:
    """`when` in the IR: a string in the file and the schema, a parsed `When` in the model."""

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        def validate(value: Any) -> When:
            if isinstance(value, When):
                return value
            if not isinstance(value, str):
                raise PydanticCustomError("dml_type", 'expected an expression string like "best.accuracy >= 0.8"')
            try:
                return parse(value)
            except (WhenError, ValueError) as exc:
                raise PydanticCustomError("dml_when", "{msg}", {"msg": str(exc)}) from None

        return core_schema.no_info_plain_validator_function(
            validate, serialization=core_schema.plain_serializer_function_ser_schema(lambda w: w.text)
        )

    def __get_pydantic_json_schema__(self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler) -> Any:
        return {"type": "string", "description": 'an expression over params and outputs, e.g. "best.accuracy >= 0.8"'}


WHEN_FIELD = _WhenField()
