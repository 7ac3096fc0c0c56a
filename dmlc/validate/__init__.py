"""Validation (stage 3): the lowered IR -> semantic diagnostics, one `check_*` function per rule.

Rules never stop at the first error: all are run, results are sorted by position and capped.
"""

from __future__ import annotations

from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.model import Pipeline
from dmlc.parse.document import Document
from dmlc.validate.context import Ctx
from dmlc.validate.rules import RULES

MAX_ERRORS = 50


def validate(pipeline: Pipeline, document: Document) -> list[Diagnostic]:
    ctx = Ctx(pipeline, document)
    found: list[Diagnostic] = []
    for rule in RULES:
        found += rule(ctx)
    unique = {(d.code, d.span, d.message): d for d in found}
    return sorted(unique.values(), key=Diagnostic.sort_key)[:MAX_ERRORS]
