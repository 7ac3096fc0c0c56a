"""Hover: the attribute under the cursor (description, type, default, units), a step kind, a step name.

A parsed `Document` gives the key under the cursor from its key spans; while the text does not parse,
the word under the cursor is looked up in the block the context scanner finds around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from dmlc.ir.model import STEP_KINDS
from dmlc.lsp import navigate
from dmlc.lsp.analysis import Analysis
from dmlc.lsp.context import dml_context
from dmlc.lsp.fields import field_at, field_markdown, kind_markdown, model_at
from dmlc.lsp.yaml_context import yaml_context
from dmlc.parse.document import Document, Path
from dmlc.source import Span

WORD = re.compile(r"[A-Za-z_]\w*")


@dataclass(frozen=True)
class Hover:
    markdown: str
    line: int  # 1-based, end column exclusive, as `Span`
    col: int
    end_col: int


def hover(analysis: Analysis, line: int, col: int, offset: int) -> Hover | None:
    """The hover at 1-based `line`/`col` (`offset`: the same place as an index into the text)."""
    doc = analysis.document
    if doc is not None:
        return _from_document(doc, analysis, line, col)
    return _from_context(analysis, line, col, offset)


def _from_document(doc: Document, analysis: Analysis, line: int, col: int) -> Hover | None:
    kinds, steps = analysis.kinds(), analysis.steps()
    occ = navigate.at(doc, line, col)
    if occ is not None and occ.name in kinds:
        return Hover(kind_markdown(kinds[occ.name], occ.name, steps.get(occ.name)), occ.line, occ.col, occ.end_col)
    for path, span in _containing(doc.spans, line, col):
        if len(path) == 3 and path[0] == "steps" and path[2] == "kind" and span.line == line:
            return Hover(kind_markdown(kinds.get(str(path[1]), "")), span.line, span.col, span.end_col)
    for path, span in _containing(doc.key_spans, line, col):
        text = _markdown(path, kinds, doc)
        if text:
            return Hover(text, span.line, span.col, span.end_col)
    return None


def _containing(table: dict[Path, Span], line: int, col: int) -> list[tuple[Path, Span]]:
    """Entries whose one-line span holds the position, the narrowest first."""
    found = [(p, s) for p, s in table.items() if s.line == line == (s.end_line or line) and s.col <= col <= s.end_col]
    return sorted(found, key=lambda ps: ps[1].end_col - ps[1].col)


def _markdown(path: Path, kinds: dict[str, str], doc: Document) -> str | None:
    if len(path) == 2 and path[0] == "steps":
        return kind_markdown(kinds.get(str(path[1]), ""), str(path[1]), doc.data["steps"].get(path[1]))
    if len(path) == 2 and path[0] == "params":
        value = doc.data["params"].get(path[1])
        return f"**param** `{path[1]}` = `{value!r}`\n\noverride with `--param {path[1]}=VALUE`"
    if len(path) == 2 and path[0] == "targets":
        return f"**target {path[1]}**: options only the `{path[1]}` target reads (checked when compiling for it)"
    if len(path) == 3 and path[0] == "steps" and path[2] == "kind":
        return kind_markdown(kinds.get(str(path[1]), ""))
    found = field_at(tuple(str(p) for p in path if not isinstance(p, int)), kinds.get)
    return field_markdown(found) if found is not None else None


def _from_context(analysis: Analysis, line: int, col: int, offset: int) -> Hover | None:
    """Without a Document: the word under the cursor as an attribute of the block around it."""
    text = analysis.text
    start = offset
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    match = WORD.match(text, start)
    if match is None:
        return None
    word = match.group()
    ctx = (yaml_context if analysis.is_yaml else dml_context)(text, start)
    where = Hover("", line, col - (offset - start), col - (offset - start) + len(word))
    if ctx.where != "key":
        return None
    if not ctx.path and word in STEP_KINDS and not analysis.is_yaml:
        return Hover(kind_markdown(word), where.line, where.col, where.end_col)
    model = model_at(ctx.path, ctx.steps.get)
    found = field_at((*ctx.path, word), ctx.steps.get) if model is not None else None
    return Hover(field_markdown(found), where.line, where.col, where.end_col) if found else None
