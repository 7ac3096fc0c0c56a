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
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        found = []
        for k, v in value.items():
            found += [(path + (k,), str(k))] if keys else []
            found += strings(v, path + (k,), keys)
        return found
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in strings(v, path + (i,), keys)]
    return []
