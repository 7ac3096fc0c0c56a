"""The validation context (stage 3): the pipeline, its document (for spans) and a diagnostic builder."""

from __future__ import annotations

from dataclasses import dataclass

from dmlc.diagnostics.catalogue import Code
from dmlc.diagnostics.model import Diagnostic, Label
from dmlc.ir.model import Pipeline, Step
from dmlc.parse.document import Document, Path


@dataclass
class Ctx:
    pipeline: Pipeline
    document: Document

    def diag(
        self,
        code: Code,
        message: str,
        path: Path,
        note: str = "",
        help: str | None = None,
        key: bool = False,
        also: tuple[Label, ...] = (),
    ) -> Diagnostic:
        return Diagnostic(code, message, Label(self.document.span(path, key=key), note), also, help)

    def steps(self) -> list[tuple[str, Step]]:
        return list(self.pipeline.steps.items())


def strings(value: object, path: Path, keys: bool = False) -> list[tuple[Path, str]]:
    """Every text in a document value with its path (map keys too, with `keys`), in document order."""
    found: list[tuple[Path, str]] = []
    _strings(value, path, keys, found)
    return found


def _strings(value: object, path: Path, keys: bool, found: list[tuple[Path, str]]) -> None:
    """One pass appending to `found` (it runs over every step of a big pipeline, twice)."""
    if isinstance(value, str):
        found.append((path, value))
    elif isinstance(value, dict):
        for k, v in value.items():
            here = path + (k,)
            if keys:
                found.append((here, str(k)))
            if isinstance(v, str):
                found.append((here, v))
            elif isinstance(v, (dict, list)):
                _strings(v, here, keys, found)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            if isinstance(v, str):
                found.append((path + (i,), v))
            elif isinstance(v, (dict, list)):
                _strings(v, path + (i,), keys, found)
