"""Source files and spans (used by every stage): where a piece of text came from, as file:line:col.

`Source` holds the decoded text of one input file and turns offsets into line/column; `Span` is
the location every AST node, IR node and diagnostic carries. Lines and columns are 1-based.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: start line/column and end line/column (end exclusive)."""

    file: str
    line: int
    col: int
    end_line: int = 0
    end_col: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass
class Source:
    """The text of one input file, with a line index for offset -> line:col."""

    path: str
    text: str
    _starts: list[int] = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._starts = [0] + [i + 1 for i, ch in enumerate(self.text) if ch == "\n"]

    def line_col(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    def span(self, start: int, end: int | None = None) -> Span:
        line, col = self.line_col(start)
        end_line, end_col = self.line_col(end if end is not None else start + 1)
        return Span(self.path, line, col, end_line, end_col)

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""
