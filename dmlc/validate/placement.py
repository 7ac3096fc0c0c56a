"""Validation rules of placement (stage 3, validate): context -> DML028 diagnostics.

The field formats (label keys and values, names, the accelerator's resource name) are the IR's
patterns; these are the relations between fields the Kubernetes API server refuses when the pod is
created, after other steps already ran (k8s.io/kubernetes pkg/apis/core/validation
validateTolerations), and an `accelerator` that nothing asks for.
"""

from __future__ import annotations

from typing import Any

from dmlc.diagnostics.catalogue import DML028
from dmlc.diagnostics.model import Diagnostic
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
        res = block.resources
        if res is not None and res.accelerator is not None and not res.gpu:
            help_ = "ask for GPUs with `gpu = N`, or drop `accelerator`"
            message = f"`accelerator = {res.accelerator}` without GPUs: nothing is asked for under that name"
            out.append(ctx.diag(DML028, message, (*base, "resources", "accelerator"), "no gpu here", help_))
    return out


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
