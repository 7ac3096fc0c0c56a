"""Source files and spans (used by every stage): where a piece of text came from, as file:line:col.

`Source` holds the decoded text of one input file and turns offsets into line/column; `Span` is
the location every AST node, IR node and diagnostic carries. Lines and columns are 1-based.
"""

from __future__ import annotations

from dataclasses import dataclass

CHUNK = 1 << 16


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
    """The text of one input file; offsets -> line:col and line numbers -> lines, for diagnostics.

    Lines end at `\n` (as the parsers count them). No index is kept: only diagnostics ask, and a
    count over the text runs at memory speed (8 MB of newlines took 300 MB and 2.5 s to index)."""

    path: str
    text: str

    def line_col(self, offset: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, offset) + 1
        return line, offset - (self.text.rfind("\n", 0, offset) + 1) + 1

    def span(self, start: int, end: int | None = None) -> Span:
        line, col = self.line_col(start)
        end_line, end_col = self.line_col(end if end is not None else start + 1)
        return Span(self.path, line, col, end_line, end_col)

    def line_text(self, line: int) -> str:
        """Line `line` (1-based) without its line break; "" past the end."""
        start = self._line_start(line)
        if start < 0 or (start == len(self.text) and line > 1):
            return ""
        end = self.text.find("\n", start)
        return self.text[start : end if end >= 0 else len(self.text)].removesuffix("\r")

    def _line_start(self, line: int) -> int:
        """The offset where line `line` starts, or -1: newlines are counted a chunk at a time."""
        text, need, pos = self.text, line - 1, 0
        if need < 0:
            return -1
        while need > 0:
            end = min(len(text), pos + CHUNK)
            found = text.count("\n", pos, end)
            if found >= need:
                for _ in range(need):
                    pos = text.index("\n", pos) + 1
                return pos
            need, pos = need - found, end
            if pos >= len(text):
                return -1
        return pos
