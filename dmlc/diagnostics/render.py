"""Renderers: diagnostics -> text for people (rustc/ruff style), `file:line:col` lines, or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

from dmlc.diagnostics.model import Diagnostic, Label, Suggestion
from dmlc.source import Source


def _caret_block(label: Label, sources: dict[str, Source], width: int) -> list[str]:
    span = label.span
    if span is None or span.file not in sources:
        return []
    text = sources[span.file].line_text(span.line).replace("\t", " ")
    length = span.end_col - span.col if span.end_line == span.line and span.end_col > span.col else 1
    length = max(1, min(length, max(1, len(text) - span.col + 1)))
    pad = " " * width
    start = 0 if len(text) <= 120 else max(0, span.col - 60)
    shown = text[start : start + 120]
    if start:
        shown = "..." + shown
    if start + 120 < len(text):
        shown += "..."
    offset = span.col - 1 - start + (3 if start else 0)
    marker = " " * offset + "^" * min(length, 80)
    note = f" {label.note}" if label.note else ""
    return [f"{span.line:>{width}} | {shown}", f"{pad} | {marker}{note}"]


def human(diag: Diagnostic, sources: dict[str, Source]) -> str:
    """error[DML012]: message / --> file:line:col / source line / caret / = help: ..."""
    labels = [diag.primary, *diag.secondary]
    width = max((len(str(lab.span.line)) for lab in labels if lab.span), default=1)
    pad = " " * width
    out = [f"{diag.severity.value}[{diag.code}]: {diag.message}"]
    if diag.span:
        out.append(f"{pad}--> {diag.span}")
    for i, label in enumerate(labels):
        block = _caret_block(label, sources, width)
        if not block:
            continue
        if i > 0 and label.span is not None:
            out.append(f"{pad}::: {label.span}")
        out += [f"{pad} |", *block]
    if diag.help:
        out += [f"{pad} |", f"{pad} = help: {diag.help}"]
    return "\n".join(out) + "\n"


def short(diag: Diagnostic, sources: dict[str, Source]) -> str:
    """`file:line:col: error: message [DML012]`, the form gcc prints and editors' problem matchers read."""
    where = f"{diag.span}: " if diag.span else "dmlc: "
    return f"{where}{diag.severity.value}: {diag.message} [{diag.code}]\n"


def fixes(diag: Diagnostic, sources: dict[str, Source]) -> list[dict[str, object]]:
    """Machine-applicable edits: a did-you-mean replaces the misspelt name where the primary span shows
    it exactly once as a whole name (so `dta.dataset` gets `dta` -> `data`, and nothing is guessed)."""
    help_, span = diag.help, diag.span
    if not isinstance(help_, Suggestion) or span is None or span.file not in sources:
        return []
    if span.end_line not in (0, span.line):
        return []
    text = sources[span.file].line_text(span.line)
    end = span.end_col if span.end_line else len(text) + 1
    shown = text[span.col - 1 : end - 1]
    found = [m.start() for m in re.finditer(rf"(?<![\w-]){re.escape(help_.word)}(?![\w-])", shown)]
    if len(found) != 1:
        return []
    col = span.col + found[0]
    where = {"file": span.file, "line": span.line, "column": col, "end_line": span.line}
    return [{"range": where | {"end_column": col + len(help_.word)}, "replacement": help_.replacement}]


RENDERERS: dict[str, Callable[[Diagnostic, dict[str, Source]], str]] = {"human": human, "short": short}


def render(diags: Sequence[Diagnostic], sources: dict[str, Source], fmt: str = "human") -> str:
    if fmt == "json":
        return json.dumps([d.to_json() | {"fixes": fixes(d, sources)} for d in diags], indent=2) + "\n"
    body = "".join(RENDERERS[fmt](d, sources) + ("\n" if fmt == "human" else "") for d in diags)
    errors = sum(1 for d in diags if d.severity.value == "error")
    if fmt == "human" and errors:
        body += f"error: found {errors} error{'s' if errors != 1 else ''}\n"
    elif fmt == "human" and diags:
        body += f"warning: {len(diags)} warning{'s' if len(diags) != 1 else ''}; output written anyway\n"
    return body
