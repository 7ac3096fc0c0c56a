"""Formatting a buffer the way `dmlc fmt` formats a file, through dmlc.fmt's public functions.

This is the one place the server calls the formatter: when `dmlc fmt` changes (a comment-keeping
formatter is planned in issue 13), only `formatted` changes. Until then `dmlc fmt` keeps only the
file's leading comment block, so a buffer whose other comments would be lost is not reformatted:
`formatted` says why instead of deleting what the user wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmlc.diagnostics.model import DmlError
from dmlc.lsp.context import tokens
from dmlc.parse import YAML_SUFFIXES, parse_source
from dmlc.source import Source


@dataclass(frozen=True)
class Formatted:
    text: str | None  # the formatted text, None when the buffer is left as it is
    reason: str = ""  # why it is left as it is


def formatted(text: str, path: str) -> Formatted:
    """The canonical text of the buffer, or why there is none (it does not check, or comments would be lost)."""
    from dmlc import driver
    from dmlc.fmt import leading_comments, to_dml, to_yaml

    try:
        loaded = driver.load_document(parse_source(Source(path, text)))
    except DmlError:
        return Formatted(None, "the file has errors; fix them first (see the problems)")
    comments = leading_comments(text)
    out = (to_yaml if path.endswith(YAML_SUFFIXES) else to_dml)(loaded.pipeline, comments)
    lost = [c for c in _comments(text, path) if c not in out]
    if lost:
        return Formatted(None, f"formatting would drop {len(lost)} comment(s), e.g. `{lost[0]}`; not formatted")
    return Formatted(out)


def _comments(text: str, path: str) -> list[str]:
    if path.endswith(YAML_SUFFIXES):
        lines = text.splitlines()
        whole = [line.strip() for line in lines if line.lstrip().startswith("#")]
        return whole + ["#" + line.split(" #", 1)[1] for line in lines if " #" in line and line.strip()[:1] != "#"]
    return [t.text.rstrip() for t in tokens(text) if t.kind == "comment"]
