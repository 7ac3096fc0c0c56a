"""The parsed document: the pipeline as plain data (the YAML form's shape) plus where each piece came from.

`data` uses only dict/list/str/int/float/bool/None. References are `${...}` strings in both syntaxes.
`spans[path]` is the span of the value at `path`; `key_spans[path]` the span of the key naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from dmlc.source import Source, Span

Path = tuple[str | int, ...]
MAX_DEPTH = 64
MAX_ERRORS = 50  # diagnostics a front end reports at most (a file of 4,000 copied steps had 8,400: 10 s to show)


@dataclass
class Document:
    data: dict[str, Any]
    source: Source
    spans: dict[Path, Span] = field(default_factory=dict)
    key_spans: dict[Path, Span] = field(default_factory=dict)

    def span(self, path: Path, *, key: bool = False) -> Span | None:
        """The span at `path`, or of its nearest ancestor that has one (naming this document's file)."""
        table = self.key_spans if key else self.spans
        for cut in range(len(path), -1, -1):
            found = table.get(path[:cut]) or (self.spans.get(path[:cut]) if key else None)
            if found:
                return found if found.file else replace(found, file=self.source.path)
        return None


def first_deep_opener(text: str, limit: int = MAX_DEPTH) -> int | None:
    """Offset of the first `[`/`{` nested deeper than `limit` (strings and comments skipped).

    Used to point DML005 at the place the nesting first goes too deep, whichever front end saw it.
    """
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            i = _string_end(text, i)
        elif ch == "#" or text.startswith("//", i):
            i = text.find("\n", i)
            i = n if i < 0 else i
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return i
        elif ch in "]}":
            depth -= 1
        i += 1
    return None


def _string_end(text: str, start: int) -> int:
    i = start + 1
    while i < len(text) and text[i] not in '"\n':
        i += 2 if text[i] == "\\" else 1
    return i
