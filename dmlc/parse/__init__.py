"""Front ends (stage 1, parse): `.dml` or `.yaml`/`.json` text -> a `Document` (plain data + spans).

Both syntaxes produce the same document shape, so everything after parsing is shared.
"""

from __future__ import annotations

import re
from pathlib import Path

from dmlc.diagnostics.catalogue import DML004, DML006, DML200
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.parse.document import Document
from dmlc.source import Source, Span

YAML_SUFFIXES = (".yaml", ".yml", ".json")
_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"  # where str.splitlines ends a line
# a line holding more than blanks and a comment (possessive: nothing is retried over a long run of blanks)
CONTENT = re.compile(rf"(?:\A|(?<=[{_BREAKS}]))[^\S{_BREAKS}]*+(?!#|//|[{_BREAKS}]|\Z)")
# The most a pipeline file may hold (DML200 past it; the book's pipelines are a few KiB, 10,000 steps
# under 2 MiB). What a parse costs grows with its tokens, bounded by each front end (`MAX_TOKENS`).
MAX_BYTES = 8 << 20


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
    return CONTENT.search(text) is None


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
    return parse_source(decode(str(path), read_source(str(path))))


def read_source(path: str) -> bytes:
    """The file's bytes, at most `MAX_BYTES` of them (DML200 when it cannot be read or is larger)."""
    help_ = "check the path; `dmlc run` without a file reads ./pipeline.dml"
    try:
        with open(path, "rb") as handle:  # a bounded read: `/dev/zero` or a 10 GB file cannot fill memory
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DmlError([Diagnostic(DML200, f"cannot read `{path}`: {exc.strerror}", Label(None), help=help_)]) from None
    if len(raw) > MAX_BYTES:
        raise too_large(path)
    return raw


def too_large(path: str) -> DmlError:
    message = f"cannot read `{path}`: it is larger than {MAX_BYTES >> 20} MiB"
    help_ = f"a pipeline file holds at most {MAX_BYTES >> 20} MiB (10,000 steps take under 2 MiB)"
    return DmlError([Diagnostic(DML200, message, Label(None), help=help_)])


def parse_text(text: str, path: str = "<input>.dml") -> Document:
    return parse_source(Source(path, text))
