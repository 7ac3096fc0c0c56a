"""The target contract and registry (used by the driver): a target turns a validated IR into output.

A target is a plug-in registered under the entry-point group `dmlc.targets`. It declares its name,
output suffix, capabilities and the options model of its `target NAME { ... }` block, and implements
`check` (DML1xx diagnostics for what it cannot express) and `emit` (deterministic text). The core
never branches on a target's name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from dmlc.diagnostics.model import Diagnostic, Label
from dmlc.ir.model import Pipeline
from dmlc.parse.document import Document, Path
from dmlc.source import Span


class TargetOptions(BaseModel):
    """Base of every target's options model: unknown options are errors (DML101)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


@dataclass
class CompileContext:
    """What a target gets besides the IR: where things are in the source, its options, CLI flags."""

    document: Document
    options: Any = None
    flags: dict[str, Any] = field(default_factory=dict)

    @property
    def source_name(self) -> str:
        return self.document.source.path

    def span(self, *path: str | int, key: bool = False) -> Span | None:
        return self.document.span(tuple(path), key=key)

    def error(self, code: str, message: str, path: Path, note: str = "", help: str | None = None) -> Diagnostic:
        """A diagnostic pointing at the attribute at `path` (e.g. ("steps", "best", "when"))."""
        return Diagnostic(code, message, Label(self.document.span(path, key=True), note), help=help)


@runtime_checkable
class Target(Protocol):
    name: ClassVar[str]
    suffix: ClassVar[str]
    description: ClassVar[str]
    capabilities: ClassVar[dict[str, str]]  # construct -> how it is expressed ("" = not supported)
    options_model: ClassVar[type[TargetOptions]]

    def check(self, pipeline: Pipeline, ctx: CompileContext) -> list[Diagnostic]: ...

    def emit(self, pipeline: Pipeline, ctx: CompileContext) -> str: ...


@lru_cache(maxsize=1)
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group="dmlc.targets")}


def names() -> list[str]:
    return sorted(_entry_points())


def get(name: str) -> Target | None:
    """The target registered as `name`, loaded on first use (so hera/kfp load only when needed)."""
    ep = _entry_points().get(name)
    if ep is None:
        return None
    obj = ep.load()
    return obj() if isinstance(obj, type) else obj
