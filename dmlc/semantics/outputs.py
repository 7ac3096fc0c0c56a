"""Reading a step's outputs back after it ran (the local executor and the KFP shim alike).

Takes the outputs a step declares and the folder it wrote them to (`$DMLC_OUTPUTS`); gives each
output's value: an artifact is its path, a param is the JSON its file holds, or the file's text when
it is not JSON (`echo hi > $DMLC_OUTPUTS/greeting` gives "hi" on every target).

What a step writes is not trusted. A param is a small value that every engine passes around as
text, so it is a regular file of at most `PARAM_LIMIT` bytes (1 MiB: an Argo workflow, output
parameters included, must fit in one 1 MB etcd object, and older Argo passed them in a 256 KiB pod
annotation; KFP keeps parameters in ML Metadata, for "small amounts of data"), UTF-8 text whose JSON
nests at most `DEPTH_LIMIT` levels (100: the default recursion limit of protobuf, which KFP's
parameter values go through), and holds no NUL and no lone surrogate (no process can receive
either). An artifact is a file or a folder of files: a FIFO or a device (even through a link) would
block or never end when it is copied into the cache. Anything else is an `OutputError` (DML206)
naming the output; the step fails with it. A FIFO is never opened for more than a look.
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from dmlc.diagnostics.catalogue import DML206

PARAM_LIMIT = 1 << 20  # bytes in a param output file
DEPTH_LIMIT = 100  # nesting of a param's JSON
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # a JSON string, as an unrolled loop
_BRACKET = re.compile(r"[\[\]{}]")
_UNSENDABLE = re.compile("[\x00\ud800-\udfff]")  # NUL, or half of a surrogate pair


class OutputError(Exception):
    """An output a step wrote that cannot be taken as its value (DML206); says which and why."""

    def __init__(self, problem: str, name: str = "") -> None:
        super().__init__(f"{DML206}: " + (f"output `{name}` " if name else "a param value ") + problem)
        self.problem, self.name = problem, name


def read_outputs(declared: dict[str, str], outputs_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """Values of the declared outputs written to `outputs_dir`, and the names that are missing;
    `OutputError` for the first output that is there but cannot be taken."""
    values: dict[str, Any] = {}
    missing: list[str] = []
    for name, kind in declared.items():
        path = outputs_dir / name
        if not path.exists():
            missing.append(name)
            continue
        try:
            values[name] = parse_param(path) if kind == "param" else _artifact(path)
        except OutputError as exc:
            raise OutputError(exc.problem, name) from None
        except OSError as exc:
            raise OutputError(f"cannot be read: {exc.strerror or exc}", name) from None
    return values, missing


def parse_param(path: Path) -> Any:
    """The value of a param file (see `param_value`), byte for byte as the engines read it (read_text
    would turn a `\r` into `\n`); `OutputError` unless it is a regular file within the limits."""
    data = _read_small(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        where = f"byte 0x{data[exc.start]:02x} at offset {exc.start}"
        raise OutputError(f"is not UTF-8 text ({where}); write binary data as an artifact") from None
    return param_value(text)


def param_value(text: str) -> Any:
    """A param holds JSON text; anything else is taken as a plain string (trailing newline dropped).
    `OutputError` for JSON nested too deeply, a NUL or a lone surrogate."""
    if text.lstrip()[:1] in ("[", "{"):  # only an array or an object makes the JSON parser recurse
        _check_depth(text)
    try:
        value = json.loads(text)
    except ValueError:
        value = text.rstrip("\n")
    _check_sendable(value)
    return value


def _read_small(path: Path) -> bytes:
    """At most PARAM_LIMIT bytes of a regular file, opened without blocking (a FIFO is only looked at)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OutputError(f"is {_what(mode)}; a param output must be a file")
        chunks, size = [], 0
        while size <= PARAM_LIMIT:
            chunk = os.read(fd, min(1 << 16, PARAM_LIMIT + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > PARAM_LIMIT:
        total = path.stat().st_size
        raise OutputError(f"is {_size(total)}; a param holds at most 1 MiB: write it as an artifact")
    return b"".join(chunks)


def _check_depth(text: str) -> None:
    """JSON nested more than DEPTH_LIMIT levels (brackets outside strings), without parsing it."""
    if text.count("[") + text.count("{") <= DEPTH_LIMIT:
        return
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
        if deepest > DEPTH_LIMIT:
            raise OutputError(f"nests JSON more than {DEPTH_LIMIT} levels deep")


def _check_sendable(value: Any) -> None:
    """Every string (and key) in `value` can be passed to a process: no NUL, no lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            found = _UNSENDABLE.search(item)
            if found:
                what = "a NUL character" if found.group() == "\x00" else "a lone UTF-16 surrogate"
                raise OutputError(f"holds {what}, which no process can receive")


def _artifact(path: Path) -> str:
    """`path`, once it is known to be a file or a folder holding only files and folders (links are
    followed, as the cache's copy follows them; a link back to a folder above it is refused)."""
    todo: list[tuple[Path, frozenset[tuple[int, int]]]] = [(path, frozenset())]
    while todo:
        current, above = todo.pop()
        try:
            st = current.stat()
        except OSError:
            continue  # a link to nothing: no content to copy or digest
        inside = "" if current == path else f"holds `{current.relative_to(path)}`, which "
        if stat.S_ISDIR(st.st_mode):
            folder = (st.st_dev, st.st_ino)
            if folder in above:
                raise OutputError(f"{inside}links back to a folder above it; an artifact is files and folders")
            todo.extend((child, above | {folder}) for child in current.iterdir())
        elif not stat.S_ISREG(st.st_mode):
            raise OutputError(f"{inside}is {_what(st.st_mode)}; an artifact is files and folders")
    return str(path)


def _what(mode: int) -> str:
    kinds = [
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ]
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit} ({n} bytes)"
    return f"{n} bytes"
