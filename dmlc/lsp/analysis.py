"""One editor buffer checked the way `dmlc check` checks a file: parse, then the driver (lower + validate).

`analyze(text, path)` gives the diagnostics `dmlc check` would print for that text, the parsed
`Document` (kept even when validation finds errors, so navigation works in a file with a bad value)
and the steps with their kinds. Positions stay as the front ends give them (`dmlc.source.Span`:
1-based line and column in characters, end exclusive); the server turns them into LSP ranges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dmlc.diagnostics.catalogue import DML900
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.parse import YAML_SUFFIXES, parse_source
from dmlc.parse.document import Document
from dmlc.source import Source


@dataclass
class Analysis:
    path: str
    text: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    document: Document | None = None  # None when the text does not parse

    @property
    def is_yaml(self) -> bool:
        return self.path.endswith(YAML_SUFFIXES)

    def steps(self) -> dict[str, dict[str, Any]]:
        """The steps of the parsed document (name -> its attributes), {} without one."""
        found = self.document.data.get("steps") if self.document else None
        return {str(k): v for k, v in found.items() if isinstance(v, dict)} if isinstance(found, dict) else {}

    def kinds(self) -> dict[str, str]:
        return {name: str(step.get("kind", "")) for name, step in self.steps().items()}


def source_path(path: str, language: str | None) -> str:
    """The path the front ends see: a YAML buffer whose name does not say so (untitled) is read as YAML."""
    if language == "yaml" and not path.endswith(YAML_SUFFIXES):
        return path + ".yaml"
    return path


def analyze(text: str, path: str) -> Analysis:
    """Parse and check `text` as the file `path` (its suffix picks the syntax); never raises DmlError."""
    from dmlc import driver

    result = Analysis(path, text)
    try:
        result.document = parse_source(Source(path, text.removeprefix("\ufeff")))
        driver.load_document(result.document)
    except DmlError as exc:
        result.diagnostics = sorted(exc.diagnostics, key=Diagnostic.sort_key)
    except Exception as exc:  # an internal error, as `dmlc check` reports it (DML900), the server stays up
        message = f"internal error: {type(exc).__name__}: {exc} (this is a dmlc bug; please report it)"
        result.diagnostics = [Diagnostic(DML900, message, Label(None))]
    return result
