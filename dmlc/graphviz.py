"""`dmlc graph`: the pipeline DAG as Mermaid or Graphviz DOT text; SVG/PNG through Graphviz's `dot`.

Nodes show `kind name` and the fan-out width (`x3` for a static list, `xN` for a list known at run
time, `x3 per up` for a step paired instance by instance with a fanned-out upstream). Edges: solid
for data read once every instance is done (`wait = "all"`), thick for per-instance edges (`wait =
"each"`: one consumer instance starts as soon as its paired instance finishes), dashed for `after`,
dotted and labelled `always` from each last step to the exit handler (`finally`: it runs whatever they did);
an edge from a step that a `when` reads carries the condition (a condition on params only is shown
in the node). User text (conditions) is escaped for each format.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from dmlc.diagnostics.catalogue import DML205
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.ir.graph import edges, refs
from dmlc.ir.model import Pipeline, Step

MAX_WHEN = 60  # characters of a condition shown on an edge


@dataclass
class Edge:
    up: str
    down: str
    kind: str  # "all" | "each" | "after" | "finally"
    when: str = ""


def _fanned(pipeline: Pipeline) -> dict[str, str]:
    """step -> its width label, for steps with several instances (a list, or pairing with one)."""
    out: dict[str, str] = {}
    for name, step in pipeline.steps.items():  # lowered in dependency order? no: pairing may look ahead
        out.update(_width(pipeline, name, step, out))
    return out


def _width(pipeline: Pipeline, name: str, step: Step, known: dict[str, str]) -> dict[str, str]:
    if isinstance(step.for_each, list):
        return {name: f"x{len(step.for_each)}"}
    if step.for_each is not None:
        return {name: "xN"}
    if step.wait == "each":
        ups = [r.root for _, r in refs(step) if r.root in known and r.index is None and r.root != name]
        if ups:
            width = known[ups[0]]
            return {name: f"{width} per {ups[0]}" if width[1:].isdigit() else f"per {ups[0]}"}
    return {}


def _edges(pipeline: Pipeline) -> list[Edge]:
    fanned = _ordered_fanned(pipeline)
    out = []
    for down, ups in edges(pipeline).items():
        step = pipeline.steps[down]
        when_refs = {r.root for r in step.when.refs()} if step.when is not None else set()
        for up, kind in ups.items():
            each = kind == "data" and step.wait == "each" and up in fanned and _unindexed(step, up)
            label = _short(str(step.when)) if up in when_refs else ""
            out.append(Edge(up, down, "after" if kind == "control" else "each" if each else "all", label))
    return out + _exit_edges(pipeline, out)


def _exit_edges(pipeline: Pipeline, found: list[Edge]) -> list[Edge]:
    """The exit handler runs after every other step: an edge from each one nothing else waits for."""
    handler = next((n for n, s in pipeline.steps.items() if s.kind == "finally"), None)
    if handler is None:
        return []
    ups = {e.up for e in found}
    return [Edge(n, handler, "finally") for n in pipeline.steps if n != handler and n not in ups]


def _ordered_fanned(pipeline: Pipeline) -> dict[str, str]:
    """Widths, computed in dependency order so a chain of pairings is followed to its end."""
    from dmlc.ir.graph import dependencies

    order, seen = [], set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for up in dependencies(pipeline).get(name, []):
            visit(up)
        order.append(name)

    for name in pipeline.steps:
        visit(name)
    out: dict[str, str] = {}
    for name in order:
        out.update(_width(pipeline, name, pipeline.steps[name], out))
    return out


def _unindexed(step: Step, up: str) -> bool:
    return any(r.root == up and r.index is None for _, r in refs(step))


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_WHEN else text[: MAX_WHEN - 3] + "..."


def _label(name: str, step: Step, width: str, pipeline: Pipeline) -> str:
    label = f"{step.kind} {name}" + (f" {width}" if width else "")
    if step.when is not None and not any(r.root in pipeline.steps for r in step.when.refs()):
        label += f"\nwhen {_short(str(step.when))}"
    return label


def _mermaid_text(text: str) -> str:
    """Mermaid's entity codes for the characters that end or confuse a quoted label."""
    table = {"&": "#amp;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "|": "#124;", "\n": "<br/>"}
    for plain, code in table.items():
        text = text.replace(plain, code)
    return text


def _dot_text(text: str) -> str:
    """A DOT quoted string's text: backslash and quote escaped, a newline as DOT's line break."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


MERMAID_ARROWS = {"all": "-->", "each": "==>", "after": "-.->", "finally": "-. always .->"}
DOT_STYLES = {"all": "", "each": "penwidth=2.5, arrowhead=veevee", "after": "style=dashed",
              "finally": 'style=dotted, label="always"'}  # fmt: skip


def mermaid(pipeline: Pipeline) -> str:
    widths = _ordered_fanned(pipeline)
    lines = ["flowchart TD"]
    for name, step in pipeline.steps.items():
        lines.append(f'  {name}["{_mermaid_text(_label(name, step, widths.get(name, ""), pipeline))}"]')
    for e in _edges(pipeline):
        label = f'|"{_mermaid_text("when " + e.when)}"|' if e.when else ""
        lines.append(f"  {e.up} {MERMAID_ARROWS[e.kind]}{label} {e.down}")
    return "\n".join(lines) + "\n"


def dot(pipeline: Pipeline) -> str:
    widths = _ordered_fanned(pipeline)
    lines = [f'digraph "{pipeline.pipeline}" {{', "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for name, step in pipeline.steps.items():
        lines.append(f'  "{name}" [label="{_dot_text(_label(name, step, widths.get(name, ""), pipeline))}"];')
    for e in _edges(pipeline):
        attrs = [a for a in (DOT_STYLES[e.kind], f'label="{_dot_text("when " + e.when)}"' if e.when else "") if a]
        lines.append(f'  "{e.up}" -> "{e.down}"' + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_graph(pipeline: Pipeline, fmt: str) -> str | bytes:
    if fmt == "mermaid":
        return mermaid(pipeline)
    if fmt == "dot":
        return dot(pipeline)
    exe = shutil.which("dot")
    if exe is None:
        raise _no_dot(f"`--format {fmt}` needs Graphviz's `dot`")
    try:
        result = subprocess.run([exe, f"-T{fmt}"], input=dot(pipeline).encode(), capture_output=True, check=True)
    except OSError as exc:  # found on PATH but cannot be started (not executable, wrong architecture)
        raise _no_dot(f"cannot run Graphviz's `{exe}`: {exc.strerror or exc}") from None
    return result.stdout


def _no_dot(message: str) -> DmlError:
    help_ = "install Graphviz (e.g. `apt-get install graphviz`), or use --format mermaid|dot"
    return DmlError([Diagnostic(DML205, message, Label(None), help=help_)])
