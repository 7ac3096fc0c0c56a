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
import sys

MASK = b"***"


class Redactor:
    """Masks byte strings in a stream cut into arbitrary chunks. Every occurrence of every value is found
    (overlapping ones too) and the union of what they cover becomes `***`, so two values that overlap
    leak no part of either. The last (longest value - 1) bytes are held back until more arrive, so a
    value split across two reads is still masked whole."""

    def __init__(self, values: list[str]) -> None:
        self.values = sorted({v.encode() for v in values if v}, key=len, reverse=True)
        self.keep = max((len(v) for v in self.values), default=1) - 1
        self.pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data, self.pending = self.pending + chunk, b""
        if not self.values:
            return data
        boundary = max(len(data) - self.keep, 0)  # a match still to come starts at or after this
        spans = self._spans(data)
        final = [s for s in spans if s[1] <= boundary]  # no later match can overlap these
        cut = boundary if len(final) == len(spans) else min(boundary, spans[len(final)][0])
        self.pending = data[cut:]
        return self._mask(data[:cut], final)

    def flush(self) -> bytes:
        data, self.pending = self.pending, b""
        return self.flush_all(data)

    def flush_all(self, data: bytes) -> bytes:
        """`data` masked in one piece (what the chunked masking must equal)."""
        return self._mask(data, self._spans(data))

    def _spans(self, data: bytes) -> list[tuple[int, int]]:
        """The merged [start, end) ranges that some value covers."""
        found = []
        for value in self.values:
            at = data.find(value)
            while at >= 0:
                found.append((at, at + len(value)))
                at = data.find(value, at + 1)
        merged: list[tuple[int, int]] = []
        for start, end in sorted(found):
            if merged and start < merged[-1][1]:  # overlapping (adjacent ones stay two masks)
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        return merged

    @staticmethod
    def _mask(data: bytes, spans: list[tuple[int, int]]) -> bytes:
        out, pos = [], 0
        for start, end in spans:
            if start >= len(data):
                break
            out += [data[pos:start], MASK]
            pos = end
        out.append(data[pos:])
        return b"".join(out)


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
