"""Formatting a buffer the way `dmlc fmt` formats a file, through dmlc.fmt's public `formatted`.

This is the one place the server calls the formatter. `dmlc fmt` keeps every comment (issue 13),
so any buffer that checks is formatted; one with errors is left alone and the user told why.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmlc.diagnostics.model import DmlError


@dataclass(frozen=True)
class Formatted:
    text: str | None  # the formatted text, None when the buffer is left as it is
    reason: str = ""  # why it is left as it is


def formatted(text: str, path: str) -> Formatted:
    """The canonical text of the buffer, or why there is none (it does not check)."""
    from dmlc import fmt

    try:
        return Formatted(fmt.formatted(text, path))
    except DmlError:
        return Formatted(None, "the file has errors; fix them first (see the problems)")
