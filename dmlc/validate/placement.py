"""Validation rules of placement (stage 3, validate): context -> DML028 diagnostics.

The field formats (label keys and values, names, the accelerator's resource name) are the IR's
patterns; these are the relations between fields the Kubernetes API server refuses when the pod is
created, after other steps already ran (k8s.io/kubernetes pkg/apis/core/validation
validateTolerations), and an `accelerator` that no effective step's GPU request uses.
"""

from __future__ import annotations

from typing import Any

from dmlc.diagnostics.catalogue import DML028
from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.effective import effective
from dmlc.parse.document import Path
from dmlc.validate.context import Ctx


def check_placement(ctx: Ctx) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    places: list[tuple[Path, Any]] = [(("steps", n), s) for n, s in ctx.steps()]
    if ctx.pipeline.defaults is not None:
        places.append((("defaults",), ctx.pipeline.defaults))
    for base, block in places:
        for i, tol in enumerate(block.tolerations or ()):
            out += _toleration(ctx, (*base, "tolerations", i), tol)
    return out + _accelerators(ctx)


def _accelerators(ctx: Ctx) -> list[Diagnostic]:
    """An `accelerator` that no GPU request uses, judged on the effective steps (`resources` merge
    field by field with `defaults`): a default accelerator serves every step that asks for GPUs."""
    out = []
    asking = False
    for name, _ in ctx.steps():
        res = effective(ctx.pipeline, name).resources
        asking = asking or bool(res is not None and res.gpu)
        own = ctx.pipeline.steps[name].resources
        if own is not None and own.accelerator is not None and not (res is not None and res.gpu):
            out.append(_unused(ctx, ("steps", name), own.accelerator))
    defaults = ctx.pipeline.defaults
    if defaults is not None and defaults.resources is not None and defaults.resources.accelerator and not asking:
        out.append(_unused(ctx, ("defaults",), defaults.resources.accelerator))
    return out


def _unused(ctx: Ctx, base: Path, name: str) -> Diagnostic:
    help_ = "ask for GPUs with `gpu = N`, or drop `accelerator`"
    message = f"`accelerator = {name}` without GPUs: nothing is asked for under that name"
    return ctx.diag(DML028, message, (*base, "resources", "accelerator"), "no gpu here", help_)


def _toleration(ctx: Ctx, path: Path, tol: Any) -> list[Diagnostic]:
    out = []
    if tol.operator == "Exists" and tol.value:
        help_ = 'drop `value` (Exists tolerates every value), or use operator = "Equal"'
        message = "a toleration with operator Exists takes no value"
        out.append(ctx.diag(DML028, message, (*path, "value"), "here", help_))
    if tol.key is None and tol.operator != "Exists":
        help_ = 'name the taint with `key`, or tolerate every taint with operator = "Exists"'
        message = "a toleration without a key must have operator Exists"
        out.append(ctx.diag(DML028, message, path, "no key", help_))
    if tol.toleration_seconds is not None and tol.effect != "NoExecute":
        help_ = 'set effect = "NoExecute" (only an eviction can be delayed), or drop `toleration_seconds`'
        message = "`toleration_seconds` needs effect NoExecute"
        out.append(ctx.diag(DML028, message, (*path, "toleration_seconds"), "here", help_))
    return out
