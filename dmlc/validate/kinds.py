"""Validation rules per step kind (stage 3): ingest sources, training strategies, serving shards, tasks."""

from __future__ import annotations

from collections.abc import Callable

from dmlc.diagnostics.catalogue import DML022, DML023, DML024, DML026, DML040, DML041, DML042
from dmlc.diagnostics.model import Diagnostic, did_you_mean
from dmlc.ir.model import BUILTIN_MODELS, Finally, Ingest, Select, Serve, Task, Train
from dmlc.ir.types import Ref
from dmlc.validate.context import Ctx


def check_kinds(ctx: Ctx) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, step in ctx.steps():
        checker = KIND_RULES.get(type(step))
        if checker:
            out += checker(ctx, name, step)
    return out


def _ingest(ctx: Ctx, name: str, step: Ingest) -> list[Diagnostic]:
    base = ("steps", name)
    if (step.dataset is None) == (step.path is None):
        return [
            ctx.diag(
                DML026,
                "an ingest step needs exactly one of `dataset` and `path`",
                base,
                "here",
                'e.g. `dataset = "digits"` or `path = "data/"` with `format = "idx"`',
                key=True,
            )
        ]
    if step.path is not None and step.format is None:
        return [
            ctx.diag(
                DML024,
                "`path` needs a `format`",
                base + ("path",),
                "here",
                'add `format = "idx"` (or npz, csv, tfrecord)',
                key=True,
            )
        ]
    return []


def _train(ctx: Ctx, name: str, step: Train) -> list[Diagnostic]:
    base = ("steps", name)
    out = []
    if step.strategy == "parameter_server" and step.ps < 1:
        out.append(
            ctx.diag(
                DML040,
                "the parameter_server strategy needs `ps >= 1`",
                base + ("strategy",),
                "here",
                "add `ps = 1` (or more)",
                key=True,
            )
        )
    if step.ps > 0 and step.strategy != "parameter_server":
        out.append(
            ctx.diag(
                DML026,
                f"`ps = {step.ps}` only applies to the parameter_server strategy",
                base + ("ps",),
                "here",
                'set `strategy = "parameter_server"` or remove `ps`',
                key=True,
            )
        )
    if step.workers > 1 and step.strategy in ("single", "mirrored"):
        out.append(
            ctx.diag(
                DML040,
                f"`workers = {step.workers}` needs a multi-worker strategy",
                base + ("workers",),
                "here",
                'use `strategy = "allreduce"` or "parameter_server"',
                key=True,
            )
        )
    if step.elastic and step.elastic.min_workers > step.elastic.max_workers:
        out.append(
            ctx.diag(
                DML042,
                "`elastic.min_workers` is larger than `max_workers`",
                base + ("elastic",),
                "here",
                "make min_workers <= max_workers",
                key=True,
            )
        )
    if isinstance(step.model, str) and step.model not in BUILTIN_MODELS and ":" not in step.model:
        help_ = (
            did_you_mean(step.model, BUILTIN_MODELS, "model")
            or 'built-in models: cnn, dropout, batch_norm, mlp, or "pkg.module:build"'
        )
        out.append(ctx.diag(DML023, f"unknown model `{step.model}`", base + ("model",), "here", help_))
    out += _each_models(ctx, name, step)
    return out


def _each_models(ctx: Ctx, name: str, step: Train) -> list[Diagnostic]:
    if not (isinstance(step.model, Ref) and step.model.root == "each" and isinstance(step.for_each, list)):
        return []
    bad = [m for m in step.for_each if isinstance(m, str) and m not in BUILTIN_MODELS and ":" not in m]
    return [
        ctx.diag(
            DML023,
            f"unknown model `{m}` in `for_each`",
            ("steps", name, "for_each", step.for_each.index(m)),
            "used as `model = each`",
            did_you_mean(m, BUILTIN_MODELS, "model"),
        )
        for m in bad
    ]


def _select(ctx: Ctx, name: str, step: Select) -> list[Diagnostic]:
    return []


def _serve(ctx: Ctx, name: str, step: Serve) -> list[Diagnostic]:
    base = ("steps", name)
    out = []
    if step.shards is not None and not step.shard_key:
        out.append(
            ctx.diag(
                DML041,
                "`shards` needs a `shard_key`",
                base + ("shards",),
                "here",
                'add `shard_key = "id"` naming the field that picks the shard',
                key=True,
            )
        )
    scale = step.autoscale
    if scale and scale.min is not None and scale.max is not None and scale.min > scale.max:
        out.append(
            ctx.diag(
                DML022,
                "`autoscale.min` is larger than `autoscale.max`",
                base + ("autoscale",),
                "here",
                "make min <= max",
                key=True,
            )
        )
    return out


def _task(ctx: Ctx, name: str, step: Task) -> list[Diagnostic]:
    if (step.run is None) == (step.command is None):
        return [
            ctx.diag(
                DML026,
                "a task needs exactly one of `run` and `command`",
                ("steps", name),
                "here",
                'e.g. `run = "pkg.module:function"` or `command = ["python", "x.py"]`',
                key=True,
            )
        ]
    return []


KIND_RULES: dict[type, Callable[..., list[Diagnostic]]] = {
    Ingest: _ingest,
    Train: _train,
    Select: _select,
    Serve: _serve,
    Task: _task,
    Finally: _task,  # the exit handler is a task
}
