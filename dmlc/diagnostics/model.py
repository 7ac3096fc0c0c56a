"""Diagnostic data: what went wrong (code, message), where (primary span + extra labels), how to fix it (help)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from enum import Enum

from dmlc.diagnostics.catalogue import Code
from dmlc.source import Span


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Label:
    """A span with a short note, printed under the caret."""

    span: Span | None
    note: str = ""


@dataclass(frozen=True)
class Diagnostic:
    code: Code
    message: str
    primary: Label
    secondary: tuple[Label, ...] = ()
    help: str | None = None
    severity: Severity = Severity.ERROR

    def __post_init__(self) -> None:
        if not isinstance(self.code, Code):  # a bare string could be a code that is not in the catalogue
            raise TypeError(f"diagnostic code {self.code!r} is not a catalogue `Code`")

    @property
    def span(self) -> Span | None:
        return self.primary.span

    def sort_key(self) -> tuple[str, int, int, str]:
        span = self.span
        if span is None:
            return ("", 0, 0, self.code)
        return (span.file, span.line, span.col, self.code)

    def to_json(self) -> dict[str, object]:
        """The JSON form (`dmlc check --format json`): 1-based lines and columns, end exclusive."""

        def where(label: Label) -> dict[str, object]:
            s = label.span
            loc = {"file": s.file, "line": s.line, "column": s.col} if s else {}
            if s and s.end_line:
                loc |= {"end_line": s.end_line, "end_column": s.end_col}
            return {**loc, "note": label.note}

        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "location": where(self.primary),
            "related": [where(lab) for lab in self.secondary],
            "help": self.help,
        }


class DmlError(Exception):
    """Raised by a stage that cannot go on; carries the diagnostics found so far."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        super().__init__("; ".join(d.message for d in diagnostics))
        self.diagnostics = diagnostics


def suggest(word: str, candidates: list[str] | set[str] | tuple[str, ...]) -> str | None:
    """The closest candidate to a misspelt word, if one is close enough."""
    found = difflib.get_close_matches(word, sorted(candidates), n=1, cutoff=0.6)
    return found[0] if found else None


class Suggestion(str):
    """A help text that proposes a replacement: `word` -> `replacement` (a machine-applicable fix where
    the diagnostic's span shows `word` once; see `dmlc.diagnostics.render.fixes`)."""

    word: str
    replacement: str

    def __new__(cls, text: str, word: str, replacement: str) -> Suggestion:
        made = super().__new__(cls, text)
        made.word, made.replacement = word, replacement
        return made


def did_you_mean(word: str, candidates: list[str] | set[str] | tuple[str, ...], what: str) -> str | None:
    match = suggest(word, candidates)
    article = "an" if what[:1] in "aeiou" else "a"
    return Suggestion(f"{article} {what} with a similar name exists: `{match}`", word, match) if match else None
