"""The compiler driver: parse -> lower -> validate -> target.check -> target.emit, on one screen.

Each stage is a pure function; a stage that finds errors raises `DmlError` with its diagnostics,
so every caller (CLI, tests, executor) gets either a value or coded, located errors.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dmlc import targets
from dmlc.diagnostics.catalogue import DML101, DML103
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.ir.lower import lower
from dmlc.ir.model import Pipeline
from dmlc.parse import parse_file
from dmlc.parse.document import Document
from dmlc.targets import CompileContext, Target
from dmlc.validate import validate


@dataclass
class Loaded:
    pipeline: Pipeline
    document: Document


@contextmanager
def _no_gc() -> Iterator[None]:
    """Loading allocates many small objects that all stay alive; the cyclic GC would rescan the
    growing heap again and again (superlinear on big files) while finding nothing to free."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def load(path: str, params: dict[str, Any] | None = None) -> Loaded:
    """Parse, lower and validate one file; raises DmlError."""
    with _no_gc():
        return load_document(parse_file(path), params)


def load_document(document: Document, params: dict[str, Any] | None = None) -> Loaded:
    """Lower and validate a parsed document (a file, or an editor's unsaved text); raises DmlError."""
    with _no_gc():
        pipeline = lower(document, params)
        errors = validate(pipeline, document)
    if errors:
        raise DmlError(errors)
    return Loaded(pipeline, document)


def target_context(target: Target, loaded: Loaded, flags: dict[str, Any] | None = None) -> CompileContext:
    """Validate the `target NAME { }` block with the target's options model (DML101 on bad options)."""
    from pydantic import ValidationError

    raw = loaded.pipeline.targets.get(target.name, {})
    try:
        options = target.options_model.model_validate(raw)
    except ValidationError as exc:
        diags = []
        for err in exc.errors(include_url=False):
            path = ("targets", target.name, *err["loc"])
            span = loaded.document.span(path, key=True)
            help_ = f"options of target {target.name}: {', '.join(target.options_model.model_fields)}"
            diags.append(
                Diagnostic(
                    DML101,
                    f"invalid option `{'.'.join(map(str, err['loc']))}`: {err['msg']}",
                    Label(span),
                    help=help_,
                )
            )
        raise DmlError(diags) from None
    return CompileContext(loaded.document, options, flags or {})


def get_target(name: str) -> Target:
    target = targets.get(name)
    if target is None:
        help_ = f"installed targets: {', '.join(targets.names())}"
        raise DmlError([Diagnostic(DML103, f"unknown target `{name}`", Label(None), help=help_)])
    return target


@dataclass
class Prepared:
    """A pipeline checked for one target: what `emit` and `dmlc run` start from."""

    loaded: Loaded
    target: Target
    ctx: CompileContext
    plan: Any
    warnings: list[Diagnostic]


def prepare(path: str, target_name: str, flags: dict[str, Any] | None = None) -> Prepared:
    """load -> target.check: the one path of `compile` and `run`; errors raise DmlError."""
    target = get_target(target_name)
    loaded = load(path, (flags or {}).get("params"))
    ctx = target_context(target, loaded, flags)
    placed: list[Diagnostic] = []
    if getattr(target, "runs_in_image", False):  # its steps run images: user code must be in them (DML104)
        from dmlc.build import place

        pipeline, placed = place(loaded.pipeline, loaded.document, target.name)
        loaded = Loaded(pipeline, loaded.document)
    checked = target.check(loaded.pipeline, ctx)
    found = sorted(_once([*placed, *checked.diagnostics]), key=Diagnostic.sort_key)
    errors = [d for d in found if d.severity.value == "error"]
    if errors:
        raise DmlError(errors)
    return Prepared(loaded, target, ctx, checked.plan, [d for d in found if d.severity.value != "error"])


def _once(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    """Each diagnostic once: a target checks effective steps, so a setting inherited from `defaults`
    would be reported at that one place once per step that inherits it."""
    seen: set[tuple[Any, ...]] = set()
    out = []
    for d in diagnostics:
        key = (str(d.code), d.message, d.span, d.severity, d.primary.note, d.help)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def compile_file(
    path: str, target_name: str, flags: dict[str, Any] | None = None, warnings: list[Diagnostic] | None = None
) -> str:
    """The target's output text; errors raise DmlError, warnings are appended to `warnings`."""
    prepared = prepare(path, target_name, flags)
    if warnings is not None:
        warnings += prepared.warnings
    return prepared.target.emit(prepared.plan, prepared.ctx)


def check_text(path: str, text: str | bytes) -> list[Diagnostic]:
    """The diagnostics of `text` checked as the file `path` (bytes: decoded and size-checked as a file is)."""
    from dmlc.parse import MAX_BYTES, decode, parse_source, too_large
    from dmlc.source import Source

    try:
        if isinstance(text, bytes):
            if len(text) > MAX_BYTES:
                raise too_large(path)
            source = decode(path, text)
        else:
            source = Source(path, text)
        load_document(parse_source(source))
    except DmlError as exc:
        return exc.diagnostics
    return []


def check_file(path: str) -> list[Diagnostic]:
    try:
        load(path)
    except DmlError as exc:
        return exc.diagnostics
    return []
