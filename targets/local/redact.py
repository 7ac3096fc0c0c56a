"""The log pump of a step that holds secrets (local executor, stage 4): stdin -> LOG, secret values masked.

Run as `python -S redact.py LOG` with the values in $DMLC_REDACT (a JSON list) and the step's stdout and
stderr on stdin; appends what it reads to LOG with every value replaced by `***`, as CI systems mask
their secrets. A separate process, not a thread of the executor: a server a serve step leaves running
keeps writing its log after the executor has gone (`--keep-serving`). Imports only the standard library
(it starts in ~20 ms) and must stay importable as a script.
"""

from __future__ import annotations

import json
import os
import re
import sys

MASK = b"***"


class Redactor:
    """Masks byte strings in a stream cut into arbitrary chunks. One left-to-right scan, longest value
    first (a value containing another is masked whole); the last (longest value - 1) bytes are held
    back unmasked until more arrive, so a value split across two reads is still masked whole."""

    def __init__(self, values: list[str]) -> None:
        found = sorted({v.encode() for v in values if v}, key=len, reverse=True)
        self.pattern = re.compile(b"|".join(re.escape(v) for v in found)) if found else None
        self.keep = max((len(v) for v in found), default=1) - 1
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data, self.pending = self.pending + chunk, b""
        if self.pattern is None:
            return data
        cut, pos, out = max(len(data) - self.keep, 0), 0, []
        for match in self.pattern.finditer(data):
            if match.start() >= cut:  # might be the start of a longer value still to come
                break
            out += [data[pos : match.start()], MASK]
            pos = match.end()
        cut = max(cut, pos)
        out.append(data[pos:cut])
        self.pending = data[cut:]
        return b"".join(out)

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return self.flush_all(data)

    def flush_all(self, data: bytes) -> bytes:
        """`data` masked in one piece (what the chunked masking must equal)."""
        return self.pattern.sub(MASK, data) if self.pattern else data


def pump(source: int, log: str, values: list[str]) -> None:
    """Copy `source` to the end of `log` until every writer has closed it, masking `values`."""
    redactor = Redactor(values)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        while chunk := os.read(source, 65536):
            _write(fd, redactor.feed(chunk))
        _write(fd, redactor.flush())
    finally:
        os.close(fd)


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


if __name__ == "__main__":
    pump(0, sys.argv[1], json.loads(os.environ.pop("DMLC_REDACT", "[]")))
