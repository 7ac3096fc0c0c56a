"""Step names in a parsed `Document`: where each step is defined and every place that refers to it.

A step is referred to by a reference value (`data.dataset` in .dml, `${data.dataset}` in YAML), by
`${...}` inside a string, by an `after` entry and by a name in a `when` expression. The `Document`
gives the span of every value; the step name is found inside that span's text, so each occurrence
covers exactly the name (what rename replaces). Definitions are the steps' key spans.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dmlc.ir.types import NAME_RE
from dmlc.parse.document import Document, Path
from dmlc.source import Span

INTERPOLATION = re.compile(r"(?<!\$)\$\{\s*([A-Za-z_]\w*)")
# a name before `.` or `[` in a `when` expression; quoted text inside the expression is skipped
WHEN_NAME = re.compile(r"""'[^']*'|\\"(?:(?!\\").)*\\"|"[^"]*"|(?<![\w.])([A-Za-z_]\w*)(?=\s*[.\[])""")
RESERVED = ("params", "each")


@dataclass(frozen=True)
class Occurrence:
    """A step name in the text: 1-based line and column, end column exclusive (one line)."""

    name: str
    line: int
    col: int
    end_col: int
    definition: bool = False

    def contains(self, line: int, col: int) -> bool:
        return self.line == line and self.col <= col <= self.end_col


class _Text:
    """Offsets of a document's lines, to read the text a span covers."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]

    def offset(self, line: int, col: int) -> int:
        return self.starts[min(line, len(self.starts)) - 1] + col - 1

    def position(self, offset: int) -> tuple[int, int]:
        lo, hi = 0, len(self.starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if self.starts[mid] <= offset else (lo, mid - 1)
        return lo + 1, offset - self.starts[lo] + 1

    def covered(self, span: Span) -> tuple[str, int]:
        start = self.offset(span.line, span.col)
        end = self.offset(span.end_line, span.end_col) if span.end_line else start + 1
        return self.text[start:end], start


def step_names(doc: Document) -> list[str]:
    steps = doc.data.get("steps")
    return [str(name) for name in steps] if isinstance(steps, dict) else []


def occurrences(doc: Document) -> list[Occurrence]:
    """Every definition and reference of a step, in text order."""
    text, names = _Text(doc.source.text), set(step_names(doc))
    found = [occ for name in names if (occ := _definition(doc, text, name))]
    for path, value in _leaves(doc.data, ()):
        span = doc.spans.get(path)
        if span is None or not isinstance(value, str) or path[:1] != ("steps",):
            continue
        raw, start = text.covered(span)
        for at, name in _names_in(value, raw, path):
            if name in names:
                line, col = text.position(start + at)
                found.append(Occurrence(name, line, col, col + len(name)))
    return sorted(found, key=lambda o: (o.line, o.col))


def _definition(doc: Document, text: _Text, name: str) -> Occurrence | None:
    span = doc.key_spans.get(("steps", name))
    if span is None:
        return None
    raw, start = text.covered(span)
    at = raw.find(name)
    line, col = text.position(start + max(at, 0))
    return Occurrence(name, line, col, col + len(name), definition=True)


def _leaves(value: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))
    else:
        yield path, value


def _names_in(value: str, raw: str, path: Path) -> Iterator[tuple[int, str]]:
    """(offset in `raw`, name) of each name that may be a step in the value written as `raw`."""
    if len(path) >= 2 and path[-2] == "after":
        match = re.search(rf"(?<!\w){re.escape(value)}(?!\w)", raw)
        if match:
            yield match.start(), value
    elif len(path) == 3 and path[-1] == "when":
        quoted = len(raw) >= 2 and raw[0] in "\"'" and raw[-1] == raw[0]
        inner = raw[1:-1] if quoted else raw
        for match in WHEN_NAME.finditer(inner):
            if match.group(1):
                yield match.start(1) + quoted, match.group(1)
    elif value.startswith("${") and "${" not in raw:  # a .dml reference: the name starts the token
        root = re.match(r"[A-Za-z_]\w*", raw)
        if root:
            yield 0, root.group()
    else:
        for match in INTERPOLATION.finditer(raw):
            yield match.start(1), match.group(1)


def at(doc: Document, line: int, col: int) -> Occurrence | None:
    """The step name under the cursor (1-based line and column), definition or reference."""
    return next((o for o in occurrences(doc) if o.contains(line, col)), None)


def of_name(doc: Document, name: str) -> list[Occurrence]:
    return [o for o in occurrences(doc) if o.name == name]


def rename_error(doc: Document, old: str, new: str) -> str | None:
    """Why `old` cannot be renamed to `new`, or None when it can."""
    if not re.match(NAME_RE, new):
        return f"`{new}` is not a step name (letters, digits and _, not starting with a digit)"
    if new in RESERVED:
        return f"`{new}` is reserved (`params.x` and `each` are not steps)"
    if new != old and new in step_names(doc):
        return f"a step named `{new}` already exists"
    return None


@dataclass(frozen=True)
class Symbol:
    name: str
    detail: str
    kind: str  # step | volume | param
    span: Span  # the whole definition
    name_span: Span


def symbols(doc: Document) -> list[Symbol]:
    """The pipeline's steps, volumes and params with their spans, in document order."""
    out = []
    for group, kind in (("params", "param"), ("volumes", "volume"), ("steps", "step")):
        members = doc.data.get(group)
        for name, body in members.items() if isinstance(members, dict) else ():
            name_span = doc.key_spans.get((group, name))
            body_span = doc.spans.get((group, name))
            if name_span is None or body_span is None:
                continue
            detail = str(body.get("kind", "")) if isinstance(body, dict) and kind == "step" else kind
            out.append(Symbol(str(name), detail, kind, _union(name_span, body_span), name_span))
    return sorted(out, key=lambda s: (s.span.line, s.span.col))


def _union(a: Span, b: Span) -> Span:
    start = min((a.line, a.col), (b.line, b.col))
    end = max((a.end_line or a.line, a.end_col or a.col + 1), (b.end_line or b.line, b.end_col or b.col + 1))
    return Span(a.file, start[0], start[1], end[0], end[1])


def folds(doc: Document) -> list[tuple[int, int]]:
    """(first line, last line), 1-based, of every block, map and list that spans lines: from its key's line
    to its last line with content (a YAML block ends where the next key starts, after blank and comment lines)."""
    lines, out = doc.source.text.split("\n"), set()
    for path, span in doc.spans.items():
        if not path or not span.end_line or not isinstance(_value_at(doc.data, path), (dict, list)):
            continue
        first = min(span.line, doc.key_spans[path].line) if path in doc.key_spans else span.line
        last = span.end_line
        while last > first and not lines[last - 1][: span.end_col - 1 if last == span.end_line else None].strip():
            last -= 1
        while last > first and lines[last - 1].lstrip().startswith(("#", "//")):
            last -= 1
        if last > first:
            out.add((first, last))
    return sorted(out)


def _value_at(data: Any, path: Path) -> Any:
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data
