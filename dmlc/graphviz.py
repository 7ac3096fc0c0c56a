"""`dmlc graph`: the pipeline DAG as Mermaid or Graphviz DOT text; SVG/PNG through Graphviz's `dot`.

Nodes show `kind name` and fan-out; solid edges are data references, dashed edges are `after`.
"""

from __future__ import annotations

import shutil
import subprocess

from dmlc.diagnostics.catalogue import DML205
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.ir.graph import graph
from dmlc.ir.model import Pipeline, Step


def _label(name: str, step: Step) -> str:
    fan = ""
    if isinstance(step.for_each, list):
        fan = f" x{len(step.for_each)}"
    elif step.for_each is not None:
        fan = " xN"
    return f"{step.kind} {name}{fan}"


def mermaid(pipeline: Pipeline) -> str:
    g = graph(pipeline)
    lines = ["flowchart TD"]
    for name, data in g.nodes(data=True):
        lines.append(f'  {name}["{_label(name, data["step"])}"]')
    for up, down, data in g.edges(data=True):
        arrow = "-->" if data["kind"] == "data" else "-.->"
        lines.append(f"  {up} {arrow} {down}")
    return "\n".join(lines) + "\n"


def dot(pipeline: Pipeline) -> str:
    g = graph(pipeline)
    lines = [f'digraph "{pipeline.pipeline}" {{', "  rankdir=TB;", "  node [shape=box, style=rounded];"]
    for name, data in g.nodes(data=True):
        lines.append(f'  "{name}" [label="{_label(name, data["step"])}"];')
    for up, down, data in g.edges(data=True):
        style = "" if data["kind"] == "data" else " [style=dashed]"
        lines.append(f'  "{up}" -> "{down}"{style};')
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
