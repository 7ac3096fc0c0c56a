"""The pipeline graph (stage 2, lower): references and `after` -> dependency edges.

`refs(step)` lists every reference a step makes with the attribute path it sits at (fields,
`${...}` inside strings, references in the parsed `when`). `dependencies` is stdlib-only so `dmlc check` stays
fast; `graph()` gives the same edges as a networkx DiGraph for targets, the executor and `dmlc graph`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from dmlc.ir.model import Pipeline, Step
from dmlc.ir.types import Ref, interpolated

if TYPE_CHECKING:
    import networkx as nx

AttrPath = tuple[str | int, ...]


_FIELDS: dict[type, list[tuple[str, str]]] = {}  # model class -> (attribute, path key) of each field


def _fields(cls: type) -> list[tuple[str, str]]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = [(name, info.alias or name) for name, info in cls.model_fields.items()]  # type: ignore[attr-defined]
    return found


def _walk(value: Any, path: AttrPath, out: list[tuple[AttrPath, Ref]]) -> None:
    """Append the references under `value`. It visits every field of every step: one pass, texts and
    empty containers handled in their parent (no call each), no generators."""
    if isinstance(value, BaseModel):
        items: Any = ((key, value.__dict__.get(name)) for name, key in _fields(type(value)))
    elif isinstance(value, dict):
        items = value.items()
    else:
        items = enumerate(value)
    for key, item in items:
        if isinstance(item, str):
            if "${" in item:
                try:
                    out += [(path + (key,), ref) for ref in interpolated(item)]
                except ValueError:
                    pass  # reported by the validator
        elif isinstance(item, Ref):
            out.append((path + (key,), item))
        elif item and isinstance(item, (BaseModel, dict, list)):
            _walk(item, path + (key,), out)


def refs(step: Step) -> list[tuple[AttrPath, Ref]]:
    """Every reference of a step with its attribute path (computed once per step)."""
    private = step.__pydantic_private__  # not `step._refs`: pydantic's __getattr__ is slow on a hot path
    if private is None or private.get("_refs") is None:
        step._refs = _refs(step)
        return step._refs
    return private["_refs"]


def _refs(step: Step) -> list[tuple[AttrPath, Ref]]:
    found: list[tuple[AttrPath, Ref]] = []
    _walk(step, (), found)
    out = [(path, ref) for path, ref in found if path[:1] != ("when",)]
    if step.when is not None:
        out += [(("when",), ref) for ref in step.when.refs()]
    return out


def edges(pipeline: Pipeline) -> dict[str, dict[str, str]]:
    """step -> {upstream: "data" | "control"}: data references first, then `after`, each once, in first-seen
    order. The one place dependencies are computed: validation, every target and the executor read it."""
    if pipeline._edges is None:
        found: dict[str, dict[str, str]] = {}
        for name, step in pipeline.steps.items():
            ups = {ref.root: "data" for _, ref in refs(step) if ref.is_step and ref.root in pipeline.steps}
            for up in step.after:
                if up in pipeline.steps:
                    ups.setdefault(up, "control")
            found[name] = ups
        pipeline._edges = found
    return pipeline._edges


def dependencies(pipeline: Pipeline) -> dict[str, list[str]]:
    """step -> its upstream steps (data references, then `after`), each once, in first-seen order."""
    return {name: list(ups) for name, ups in edges(pipeline).items()}


def data_dependencies(pipeline: Pipeline, name: str) -> list[str]:
    """The upstreams whose outputs step `name` reads."""
    return [up for up, kind in edges(pipeline)[name].items() if kind == "data"]


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
    """networkx DiGraph: nodes carry `step`, edges `kind` = data | control (self-references dropped)."""
    import networkx as nx

    g = nx.DiGraph(name=pipeline.pipeline)
    for name, step in pipeline.steps.items():
        g.add_node(name, step=step)
    for name, ups in edges(pipeline).items():
        for up, kind in ups.items():
            if up != name:
                g.add_edge(up, name, kind=kind)
    return g
