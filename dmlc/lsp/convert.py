"""dmlc positions and results -> LSP types (lsprotocol), and LSP positions -> dmlc positions.

dmlc counts 1-based lines and columns in characters (code points), end exclusive (`dmlc.source.Span`);
LSP counts 0-based lines and columns in the code units the client negotiated (UTF-16 by default).
`Positions` converts both ways for one buffer, through pygls's position codec.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types as lsp

from dmlc.diagnostics.model import Diagnostic, Severity
from dmlc.lsp.completion import Item
from dmlc.source import Span

ITEM_KINDS = {
    "keyword": lsp.CompletionItemKind.Keyword,
    "field": lsp.CompletionItemKind.Property,
    "block": lsp.CompletionItemKind.Struct,
    "value": lsp.CompletionItemKind.EnumMember,
    "unit": lsp.CompletionItemKind.Unit,
    "step": lsp.CompletionItemKind.Function,
    "output": lsp.CompletionItemKind.Field,
    "param": lsp.CompletionItemKind.Variable,
}
SYMBOL_KINDS = {"step": lsp.SymbolKind.Function, "volume": lsp.SymbolKind.Object, "param": lsp.SymbolKind.Constant}
TRIGGER_SUGGEST = lsp.Command("", "editor.action.triggerSuggest")


class Positions:
    """Position conversion for one buffer (its text as the client sent it)."""

    def __init__(self, document: Any) -> None:
        self.lines = tuple(document.lines)
        self.codec = document.position_codec
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def position(self, line: int, col: int) -> lsp.Position:
        """1-based line/column in characters -> an LSP position."""
        if line < 1:
            return lsp.Position(0, 0)
        if line > len(self.lines):
            return lsp.Position(len(self.lines), 0)
        return self.codec.position_to_client_units(self.lines, lsp.Position(line - 1, max(col - 1, 0)))

    def range(self, span: Span | None) -> lsp.Range:
        if span is None:
            return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 0))
        end_line, end_col = (span.end_line, span.end_col) if span.end_line else (span.line, span.col + 1)
        return lsp.Range(self.position(span.line, span.col), self.position(end_line, end_col))

    def one_line(self, line: int, col: int, end_col: int) -> lsp.Range:
        return lsp.Range(self.position(line, col), self.position(line, end_col))

    def cursor(self, position: lsp.Position) -> tuple[int, int, int]:
        """An LSP position -> (1-based line, 1-based column, offset), in characters."""
        server = self.codec.position_from_client_units(self.lines, lsp.Position(position.line, position.character))
        line = min(server.line, len(self.lines))
        return line + 1, server.character + 1, self.starts[line] + server.character

    def whole(self) -> lsp.Range:
        return lsp.Range(lsp.Position(0, 0), lsp.Position(len(self.lines), 0))


def diagnostic(d: Diagnostic, positions: Positions, uri: str) -> lsp.Diagnostic:
    """A dmlc diagnostic as `dmlc check` shows it: message, the note under the caret, help; both places
    of a duplicate (the other as related information)."""
    message = d.message
    if d.primary.note:
        message += f"\n{d.primary.note}"
    if d.help:
        message += f"\nhelp: {d.help}"
    related = [
        lsp.DiagnosticRelatedInformation(lsp.Location(uri, positions.range(label.span)), label.note or "here")
        for label in d.secondary
        if label.span is not None
    ]
    severity = lsp.DiagnosticSeverity.Warning if d.severity == Severity.WARNING else lsp.DiagnosticSeverity.Error
    return lsp.Diagnostic(
        range=positions.range(d.span),
        message=message,
        severity=severity,
        code=str(d.code),
        source="dmlc",
        related_information=related or None,
    )


def completion_item(item: Item) -> lsp.CompletionItem:
    doc = lsp.MarkupContent(lsp.MarkupKind.Markdown, item.doc) if item.doc else None
    insert = item.insert if item.insert is not None else item.label
    return lsp.CompletionItem(
        label=item.label,
        kind=ITEM_KINDS.get(item.kind),
        detail=item.detail or None,
        documentation=doc,
        insert_text=insert,
        insert_text_format=lsp.InsertTextFormat.Snippet if item.snippet else lsp.InsertTextFormat.PlainText,
        sort_text=f"{item.sort}{item.label}",
        command=TRIGGER_SUGGEST if insert.endswith(".") else None,
    )
