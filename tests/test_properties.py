"""Property: however a valid example is mangled, checking it gives coded diagnostics, never a crash.

Hypothesis mutates the bytes of the example files (delete, insert, duplicate characters and tokens,
swap, drop or repeat lines) and `check_file` must return a list of `Diagnostic`s whose codes are in
the catalogue (DML900 excluded: that would be a dmlc bug), each renderable in every format.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dmlc.diagnostics.catalogue import CATALOGUE
from dmlc.diagnostics.model import Diagnostic, DmlError
from dmlc.diagnostics.render import render
from dmlc.driver import check_file
from dmlc.parse import decode

WORD = re.compile(rb"\w+|[^\w\s]")
ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.dml")) + sorted((ROOT / "examples").glob("*.yaml"))
TOKENS = [
    b"{", b"}", b"[", b"]", b'"', b'"""', b"=", b",", b".", b":", b"-", b"#", b"//", b"\n", b"\t", b" ",
    b"[*]", b"[0]", b"${", b"}", b"each", b"params.epochs", b"model[*].model", b"data.dataset", b"after",
    b"for_each", b"wait", b"when", b"train", b"ingest", b"select", b"null", b"true", b"-1", b"0", b"1e999",
    b"2GB", b"10 parsecs", b"500m", b"&a", b"*a", b"<<", b"!!python/object", b"\\u12", b"\\", b"\x00",
    b"\xff", b"\xc3", "é".encode(), b"\xef\xbb\xbf", b"---", b"? ", b"|", b">", b"!foo ", b"!!int ",
    b"!!python/object:os.system ",
]  # fmt: skip


@st.composite
def mutation(draw: st.DrawFn, size: int) -> tuple[str, int, int, bytes]:
    kinds = ["delete", "insert", "duplicate", "swap_lines", "drop_line", "repeat_line", "token"]
    kind = draw(st.sampled_from(kinds))
    at = draw(st.integers(0, max(0, size - 1)))
    length = draw(st.integers(1, 12))
    token = draw(st.sampled_from(TOKENS) | st.binary(min_size=1, max_size=3))
    return kind, at, length, token


def apply(data: bytes, change: tuple[str, int, int, bytes]) -> bytes:
    kind, at, length, token = change
    at = min(at, len(data))
    if kind == "delete":
        return data[:at] + data[at + length :]
    if kind == "insert":
        return data[:at] + token + data[at:]
    if kind == "duplicate":
        return data[:at] + data[at : at + length] + data[at:]
    if kind == "token":
        return _token_edit(data, at, length)
    lines = data.split(b"\n")
    i, j = at % len(lines), (at + length) % len(lines)
    if kind == "swap_lines":
        lines[i], lines[j] = lines[j], lines[i]
    elif kind == "drop_line":
        del lines[i]
    else:
        lines.insert(i, lines[i])
    return b"\n".join(lines)


def _token_edit(data: bytes, at: int, length: int) -> bytes:
    """Delete, duplicate or replace (with another token of the file) one whole token."""
    spans = [m.span() for m in WORD.finditer(data)]
    if not spans:
        return data
    start, end = spans[at % len(spans)]
    other = spans[(at * 7 + length) % len(spans)]
    choice = length % 3
    if choice == 0:
        return data[:start] + data[end:]
    if choice == 1:
        return data[:end] + b" " + data[start:end] + data[end:]
    return data[:start] + data[other[0] : other[1]] + data[end:]


@st.composite
def mangled(draw: st.DrawFn) -> tuple[str, bytes]:
    example = draw(st.sampled_from(EXAMPLES))
    data = example.read_bytes()
    for _ in range(draw(st.integers(1, 4))):
        data = apply(data, draw(mutation(len(data))))
    return example.suffix, data


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mangled")


def assert_only_coded(diags: object, path: Path) -> None:
    assert isinstance(diags, list)
    for diag in diags:
        assert isinstance(diag, Diagnostic)
        assert diag.code in CATALOGUE and diag.code != "DML900", diag
        assert diag.message
    sources = {}
    try:
        sources[str(path)] = decode(str(path), path.read_bytes())
    except DmlError:  # a non-UTF-8 file is rendered without source lines
        pass
    lines = len(sources[str(path)].text.splitlines()) + 1 if sources else None
    for diag in diags:
        for label in (diag.primary, *diag.secondary):
            if label.span and lines:
                assert 1 <= label.span.line <= lines and label.span.col >= 1, (diag, label)
    for fmt in ("human", "short", "json"):
        render(diags, sources, fmt)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mangled())
def test_mutated_examples_give_only_coded_diagnostics(workdir: Path, case: tuple[str, bytes]) -> None:
    suffix, data = case
    path = workdir / f"mutant{suffix}"
    path.write_bytes(data)
    assert_only_coded(check_file(str(path)), path)


def test_examples_are_valid() -> None:
    """The seeds themselves check clean, so every diagnostic above comes from a mutation."""
    assert EXAMPLES
    for example in EXAMPLES:
        assert check_file(str(example)) == [], example.name
