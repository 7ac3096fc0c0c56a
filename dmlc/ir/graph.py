"""The pipeline graph (stage 2, lower): references and `after` -> dependency edges.

`refs(step)` lists every reference a step makes with the attribute path it sits at (fields,
`${...}` inside strings, names in `when`). `dependencies` is stdlib-only so `dmlc check` stays
fast; `graph()` gives the same edges as a networkx DiGraph for targets, the executor and `dmlc graph`.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dmlc.ir.model import Pipeline, Step
from dmlc.ir.types import Ref, interpolated, parse_ref

if TYPE_CHECKING:
    import networkx as nx

AttrPath = tuple[str | int, ...]


def _walk(value: Any, path: AttrPath) -> Iterator[tuple[AttrPath, Ref]]:
    if isinstance(value, Ref):
        yield path, value
    elif isinstance(value, str):
        try:
            for ref in interpolated(value):
                yield path, ref
        except ValueError:
            return  # reported by the validator
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            if item is not None and not isinstance(item, (bool, int, float)):
                yield from _walk(item, path + (info.alias or name,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, path + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, path + (i,))


# What a `when` expression may contain: comparisons, boolean logic, arithmetic, literals and
# references. Everything else (calls, lambdas, comprehensions...) is refused at check time (DML025).
WHEN_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd, ast.BinOp,
    ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Compare, ast.Eq, ast.NotEq, ast.Lt,
    ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn, ast.Constant, ast.Name, ast.Attribute, ast.Subscript,
    ast.List, ast.Tuple, ast.Load, ast.Call,
)  # fmt: skip
WHEN_WORDS = ("true", "false", "null", "True", "False", "None")
# The only functions a `when` may call: validation checks calls against it, evaluators call them.
WHEN_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "sum": sum,
    "any": any,
    "all": all,
}


def when_refs(expr: str) -> list[Ref]:
    """References in a `when` expression (`best.accuracy >= 0.8`); raises SyntaxError/ValueError."""
    tree = ast.parse(expr.strip(), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, WHEN_NODES):
            raise ValueError(f"`{ast.unparse(node)}` is not allowed in `when`")
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in WHEN_FUNCTIONS and not node.keywords
        ):
            raise ValueError(f"call `{ast.unparse(node)}` is not allowed in `when` (only {', '.join(WHEN_FUNCTIONS)})")
    found: list[Ref] = []
    _collect(tree.body, found)
    return found


def _collect(node: ast.AST, found: list[Ref]) -> None:
    """Whole `a.b[0].c` chains are one reference each; do not descend into them."""
    if isinstance(node, (ast.Attribute, ast.Subscript)):
        try:
            found.append(parse_ref(ast.unparse(node)))
            return
        except ValueError:
            if isinstance(node, ast.Attribute):
                raise
    if isinstance(node, ast.Name) and node.id not in WHEN_WORDS:
        found.append(parse_ref(node.id))
        return
    children = node.args if isinstance(node, ast.Call) else ast.iter_child_nodes(node)
    for child in children:
        _collect(child, found)


def refs(step: Step) -> list[tuple[AttrPath, Ref]]:
    """Every reference of a step with its attribute path (computed once per step)."""
    if step._refs is None:
        step._refs = _refs(step)
    return step._refs


def _refs(step: Step) -> list[tuple[AttrPath, Ref]]:
    out = [(path, ref) for path, ref in _walk(step, ()) if path[:1] != ("when",)]
    if step.when:
        try:
            out += [(("when",), ref) for ref in when_refs(step.when)]
        except (SyntaxError, ValueError):
            pass  # DML025 from the validator
    return out


def dependencies(pipeline: Pipeline) -> dict[str, list[str]]:
    """step -> its upstream steps (data references, then `after`), each once, in first-seen order."""
    deps: dict[str, list[str]] = {}
    for name, step in pipeline.steps.items():
        ups = [ref.root for _, ref in refs(step) if ref.is_step and ref.root in pipeline.steps]
        ups += [a for a in step.after if a in pipeline.steps]
        deps[name] = list(dict.fromkeys(ups))
    return deps


def topological_order(pipeline: Pipeline) -> list[str]:
    """Steps in dependency order, ties broken by pipeline order (deterministic)."""
    from graphlib import TopologicalSorter

    deps = dependencies(pipeline)
    sorter = TopologicalSorter(deps)
    sorter.prepare()
    position = {name: i for i, name in enumerate(pipeline.steps)}
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order += ready
        sorter.done(*ready)
    return order


def graph(pipeline: Pipeline) -> nx.DiGraph:
    """networkx DiGraph: nodes carry `step`, edges `kind` = data | control."""
    import networkx as nx

    g = nx.DiGraph(name=pipeline.pipeline)
    for name, step in pipeline.steps.items():
        g.add_node(name, step=step)
    for name, step in pipeline.steps.items():
        for _, ref in refs(step):
            if ref.is_step and ref.root in pipeline.steps and ref.root != name:
                g.add_edge(ref.root, name, kind="data")
        for up in step.after:
            if up in pipeline.steps and not g.has_edge(up, name):
                g.add_edge(up, name, kind="control")
    return g


def fanned_out(step: Step) -> bool:
    return step.for_each is not None
