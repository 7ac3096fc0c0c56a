"""Front ends (stage 1, parse): `.dml` or `.yaml`/`.json` text -> a `Document` (plain data + spans).

Both syntaxes produce the same document shape, so everything after parsing is shared.
"""

from __future__ import annotations

from pathlib import Path

from dmlc.diagnostics.catalogue import DML004, DML006, DML200
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.parse.document import Document
from dmlc.source import Source, Span

YAML_SUFFIXES = (".yaml", ".yml", ".json")


def decode(path: str, raw: bytes) -> Source:
    """UTF-8 text of a file, or DML004 at the first byte that is not UTF-8."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = raw[: exc.start].decode("utf-8")
        src = Source(path, good)
        span = src.span(len(good))
        note = f"byte 0x{raw[exc.start]:02x} is not UTF-8"
        diag = Diagnostic(DML004, "file is not valid UTF-8", Label(span, note), help="save the file as UTF-8")
        raise DmlError([diag]) from None
    return Source(path, text.removeprefix("\ufeff"))


def _blank(text: str) -> bool:
    """True when the text holds nothing but whitespace and comments (`#`, and `//` in .dml)."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith(("#", "//")):
            return False
    return True


def parse_source(source: Source) -> Document:
    if _blank(source.text):
        span = Span(source.path, 1, 1, 1, 1)
        help_ = "a pipeline starts with `pipeline NAME {` (or `pipeline: NAME` in YAML)"
        raise DmlError([Diagnostic(DML006, "the file is empty", Label(span), help=help_)])
    if source.path.endswith(YAML_SUFFIXES):
        from dmlc.parse.yaml_front import parse_yaml

        return parse_yaml(source)
    from dmlc.parse.dml import parse_dml

    return parse_dml(source)


def parse_file(path: str | Path) -> Document:
    path = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        span = None
        help_ = "check the path; `dmlc run` without a file reads ./pipeline.dml"
        raise DmlError([Diagnostic(DML200, f"cannot read `{path}`: {exc.strerror}", Label(span), help=help_)]) from None
    return parse_source(decode(path, raw))


def parse_text(text: str, path: str = "<input>.dml") -> Document:
    return parse_source(Source(path, text))
