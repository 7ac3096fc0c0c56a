"""The DAG picture of a run report (local executor, `dmlc runs report`): steps and edges -> inline SVG.

Takes one `Node` per step (title such as `train model x3`, the states of its instances) and edges
(up, down, "data" | "control"); gives an SVG drawn here, with no Graphviz: steps in layers (a step one
layer below its lowest upstream, networkx for the order), ordered in each layer by the mean position of
their upstreams, boxes coloured by outcome, curved arrows (dashed for `after`). Self-contained: no
fonts, scripts or links outside the SVG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape

import networkx as nx

COLOURS = {  # fill, stroke
    "succeeded": ("#e7f5ea", "#2e7d32"),
    "cached": ("#e6f0fb", "#1565c0"),
    "failed": ("#fdecea", "#c62828"),
    "upstream failed": ("#fff4e5", "#ef6c00"),
    "skipped": ("#f2f2f2", "#9e9e9e"),
    "not run": ("#ffffff", "#9e9e9e"),
    "running": ("#fffde7", "#f9a825"),
}
CHAR_W, NODE_H, GAP_X, GAP_Y, PAD = 7.2, 46, 28, 56, 16


@dataclass
class Node:
    name: str
    title: str  # `kind name` and the fan-out width
    states: list[str] = field(default_factory=list)  # one per instance; empty: never started

    @property
    def outcome(self) -> str:
        """The colour of the box: failed over upstream failed over the rest; all cached is cached."""
        for worst in ("failed", "upstream failed", "running"):
            if worst in self.states:
                return worst
        if not self.states:
            return "not run"
        if all(s == "cached" for s in self.states):
            return "cached"
        if all(s == "skipped" for s in self.states):
            return "skipped"
        return "succeeded" if all(s in ("succeeded", "cached", "skipped") for s in self.states) else "running"

    @property
    def note(self) -> str:
        counts: dict[str, int] = {}
        for s in self.states:
            counts[s] = counts.get(s, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in counts.items()) if counts else "not run"

    @property
    def width(self) -> float:
        return max(120.0, CHAR_W * max(len(self.title), len(self.note)) + 20)


def layers(names: list[str], edges: list[tuple[str, str, str]]) -> list[list[str]]:
    """Steps by layer: a step sits one layer below its deepest upstream; each layer ordered by the mean
    position of its upstreams (then the pipeline's order), so edges cross little."""
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    graph.add_edges_from((u, d) for u, d, _ in edges if u in names and d in names and u != d)
    if not nx.is_directed_acyclic_graph(graph):  # a store that disagrees with the file: one row
        return [names]
    depth: dict[str, int] = {}
    for name in nx.topological_sort(graph):
        depth[name] = 1 + max((depth[u] for u in graph.predecessors(name)), default=-1)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in names:
        out[depth[name]].append(name)
    where: dict[str, float] = {}
    for layer in out:
        layer.sort(key=lambda n: _mean([where[u] for u in graph.predecessors(n)], names.index(n)))
        where.update({n: float(i) for i, n in enumerate(layer)})
    return out


def _mean(values: list[float], default: float) -> float:
    return sum(values) / len(values) if values else default


def dag_svg(nodes: list[Node], edges: list[tuple[str, str, str]]) -> str:
    """The picture: boxes in layers, arrows from each upstream's bottom to its downstream's top."""
    by_name = {n.name: n for n in nodes}
    rows = layers([n.name for n in nodes], edges)
    widths = [sum(by_name[n].width for n in row) + GAP_X * (len(row) - 1) for row in rows]
    total = max(widths, default=120.0) + 2 * PAD
    boxes: dict[str, tuple[float, float, float]] = {}  # name -> x, y, width
    for depth, (row, row_w) in enumerate(zip(rows, widths, strict=True)):
        x = (total - row_w) / 2
        for name in row:
            boxes[name] = (x, PAD + depth * (NODE_H + GAP_Y), by_name[name].width)
            x += by_name[name].width + GAP_X
    height = PAD * 2 + len(rows) * NODE_H + max(0, len(rows) - 1) * GAP_Y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="dag" width="{total:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {total:.0f} {height:.0f}" role="img" aria-label="pipeline DAG">',
        '<defs><marker id="dmlc-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#555"/></marker></defs>',
    ]
    parts += [_edge(boxes[u], boxes[d], kind) for u, d, kind in edges if u in boxes and d in boxes and u != d]
    parts += [_box(by_name[name], *boxes[name]) for name in boxes]
    parts.append("</svg>")
    return "\n".join(parts)


def _edge(up: tuple[float, float, float], down: tuple[float, float, float], kind: str) -> str:
    x1, y1 = up[0] + up[2] / 2, up[1] + NODE_H
    x2, y2 = down[0] + down[2] / 2, down[1] - 2
    mid = (y1 + y2) / 2
    dash = ' stroke-dasharray="5 4"' if kind == "control" else ""
    path = f"M {x1:.1f} {y1:.1f} C {x1:.1f} {mid:.1f}, {x2:.1f} {mid:.1f}, {x2:.1f} {y2:.1f}"
    return (
        f'<path class="edge {kind}" d="{path}" fill="none" stroke="#555" stroke-width="1.4"{dash} '
        'marker-end="url(#dmlc-arrow)"/>'
    )


def _box(node: Node, x: float, y: float, width: float) -> str:
    fill, stroke = COLOURS.get(node.outcome, COLOURS["not run"])
    cx = x + width / 2
    return (
        f'<g class="step {escape(node.outcome)}" data-step="{escape(node.name)}">'
        f"<title>{escape(node.name)}: {escape(node.note)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{NODE_H}" rx="8" fill="{fill}" '
        f'stroke="{stroke}" stroke-width="1.6"/>'
        f'<text x="{cx:.1f}" y="{y + 19:.1f}" text-anchor="middle" font-size="13" font-weight="600" '
        f'font-family="sans-serif" fill="#222">{escape(node.title)}</text>'
        f'<text x="{cx:.1f}" y="{y + 36:.1f}" text-anchor="middle" font-size="11" font-family="sans-serif" '
        f'fill="{stroke}">{escape(node.note)}</text></g>'
    )
