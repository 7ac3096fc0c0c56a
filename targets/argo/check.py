"""Argo target, stage 3.5 (target check): what Argo cannot express exactly, and names Kubernetes rejects.

Takes a validated `Pipeline` and its `CompileContext`; gives diagnostics pointing at the attribute:
DML100 for a construct this target would have to drop or emulate, DML102 for a name that is not a valid
Kubernetes / Argo name after sanitising (or that collides with another after sanitising), DML106 for a
metric name Argo cannot carry as an output parameter or a Prometheus metric.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from dmlc_targets.argo import dag, objstore, placeholders, prometheus
from dmlc_targets.argo.plan import Plan

from dmlc.diagnostics.catalogue import DML100, DML102, DML106
from dmlc.diagnostics.model import Diagnostic, Severity
from dmlc.ir.model import Evaluate, Select, Serve, Train
from dmlc.ir.types import Ref
from dmlc.k8s import is_k8s_name, k8s_name, tfjob_limits
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics.retry import describe
from dmlc.targets import CompileContext

_PARAM_NAME = re.compile(r"^[-a-zA-Z0-9_]+$")  # argo-workflows validate.go paramOrArtifactNameRegex
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def check(plan: Plan, ctx: CompileContext) -> list[Diagnostic]:
    found = list(_names(plan, ctx))
    if found:
        return found  # the remaining checks build Argo names from these
    for name in plan.steps:
        found += _step(plan, ctx, name)
    found += _loop_cycles(plan, ctx)
    found += _options(plan, ctx)
    found += objstore.check(plan, ctx)
    return found


# -- names (DML102) --------------------------------------------------------------------------------
def _name_error(ctx: CompileContext, path: tuple, text: str, what: str) -> Diagnostic:
    fixed = k8s_name(text)
    help_ = f"after sanitising it is `{fixed}`" if fixed else "use letters and digits"
    help_ += "; Kubernetes names are lower-case letters, digits and `-`, start with a letter, at most 63 characters"
    return ctx.error(DML102, f"{what} `{text}` is not a valid Kubernetes name", path, "here", help_)


def _names(plan: Plan, ctx: CompileContext) -> Iterator[Diagnostic]:
    pipeline = plan.pipeline
    name = k8s_name(pipeline.pipeline)
    if not name or not name[0].isalpha() or len(pipeline.pipeline) > 63:  # also the value of a label
        yield _name_error(ctx, ("pipeline",), pipeline.pipeline, "pipeline name")
    seen: dict[str, str] = {}
    for step in pipeline.steps:
        name = plan.name(step)
        if not name or not name[0].isalpha() or len(step) > 63:
            yield _name_error(ctx, ("steps", step), step, "step name")
        elif name in seen:
            yield ctx.error(
                DML102,
                f"steps `{seen[name]}` and `{step}` both become `{name}` on Kubernetes",
                ("steps", step),
                "same Kubernetes name",
                "rename one of them so they differ by more than case and `_`",
            )
        seen.setdefault(name, step)
    yield from _generated_collisions(plan, ctx, seen)
    yield from _other_names(plan, ctx)


def _generated_collisions(plan: Plan, ctx: CompileContext, steps: dict[str, str]) -> Iterator[Diagnostic]:
    """Templates dmlc adds (`x-each`, shard templates) must not take a step's name."""
    for step, eff in plan.steps.items():
        extra = [f"{plan.name(step)}-each"] if step in plan.bodies else []
        extra += [g for g in (plan.min_success_gate(step), plan.body_gate(step)) if g]
        if isinstance(eff, Serve) and eff.shards:
            extra += [f"{plan.name(step)}-shard-{i}" for i in range(eff.shards)]
            extra += [f"{plan.name(step)}-router", f"{plan.name(step)}-router-service"]
        for name in extra:
            if name in steps:
                message = f"step `{steps[name]}` takes the name dmlc gives to a template of `{step}`"
                yield ctx.error(DML102, message, ("steps", steps[name]), "here", f"rename `{steps[name]}`")


def _other_names(plan: Plan, ctx: CompileContext) -> Iterator[Diagnostic]:
    pipeline = plan.pipeline
    if pipeline.namespace and not is_k8s_name(pipeline.namespace):
        yield _name_error(ctx, ("namespace",), pipeline.namespace, "namespace")
    sched = pipeline.scheduling
    if sched is not None and sched.queue and not is_k8s_name(sched.queue):
        yield _name_error(ctx, ("scheduling", "queue"), sched.queue, "queue")
    if sched is not None and isinstance(sched.priority, str) and not is_k8s_name(sched.priority):
        yield _name_error(ctx, ("scheduling", "priority"), sched.priority, "priority class")
    volumes: dict[str, str] = {}
    for vol in pipeline.volumes:
        name = k8s_name(vol)
        if not name or name in volumes:
            yield _name_error(ctx, ("volumes", vol), vol, "volume name")
        volumes[name] = vol
    for key in ("service_account", "memo_config_map"):
        value = getattr(ctx.options, key, None)
        if value is not None and not is_k8s_name(value):
            yield _name_error(ctx, ("targets", "argo", key), value, key.replace("_", " "))
    yield from _labels(ctx, pipeline.labels, ("labels",))
    for step, eff in pipeline.steps.items():
        yield from _labels(ctx, eff.labels, ("steps", step, "labels"))


def _labels(ctx: CompileContext, labels: dict[str, str], path: tuple) -> Iterator[Diagnostic]:
    for key, value in labels.items():
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            help_ = "label values are at most 63 letters, digits, `-`, `_` or `.`, starting and ending alphanumeric"
            yield ctx.error(DML102, f"label value `{value}` is not valid on Kubernetes", (*path, key), "here", help_)


# -- constructs (DML100) ---------------------------------------------------------------------------
def _unsupported(ctx: CompileContext, path: tuple, message: str, help_: str) -> Diagnostic:
    return ctx.error(DML100, f"Argo cannot express {message}", path, "not expressible on Argo", help_)


def _step(plan: Plan, ctx: CompileContext, step: str) -> list[Diagnostic]:
    base = ("steps", step)
    out = list(_step_refs(plan, ctx, step))
    eff = plan.steps[step]
    if eff.when:
        try:
            placeholders.when_expr(plan, step)  # raises Unsupported
        except placeholders.Unsupported as exc:
            out.append(_unsupported(ctx, (*base, "when"), f"this `when`: {exc}", "compare outputs and params only"))
    items = eff.for_each
    if isinstance(items, list) and len({isinstance(i, str) for i in items}) > 1:
        help_ = "use items of one kind: all strings, or all numbers / booleans / maps"
        out.append(_unsupported(ctx, (*base, "for_each"), "a list mixing strings and other values", help_))
    if isinstance(items, Ref) and len(items.fields) > 1:
        help_ = "give the list its own param or output, and loop over that"
        out.append(_unsupported(ctx, (*base, "for_each"), f"a loop over a field (`{items}`)", help_))
    if isinstance(items, Ref) and items.root == "params":
        items = plan.pipeline.params.get(items.fields[0])  # its default: what a plain submission loops over
    if isinstance(items, list) and not items:
        help_ = "Argo runs a task whose `withItems` is empty once; drop the step or give it items"
        out.append(_unsupported(ctx, (*base, "for_each"), "an empty list", help_))
    if isinstance(items, list) and any(isinstance(i, float) and i.is_integer() for i in items):
        help_ = "write the numbers as integers, or as strings"
        out.append(
            _unsupported(ctx, (*base, "for_each"), "a whole number written as a float (Argo gives `1.0` as `1`)", help_)
        )
    if isinstance(items, list) and any("{{" in json.dumps(i) for i in items):
        help_ = "Argo evaluates `{{` in a loop's list before it splits it into items; drop `{{` from the items"
        out.append(_unsupported(ctx, (*base, "for_each"), "an item holding `{{`", help_))
    if eff.wait == "each" and eff.for_each is not None:
        help_ = 'drop `for_each` here, or collect with `x[*].out` and `wait = "all"`'
        out.append(_unsupported(ctx, (*base, "wait"), '`wait = "each"` on a step that also fans out', help_))
    out += _retry(plan, ctx, step)
    out += _kind_checks(plan, ctx, step)
    return out


def _step_refs(plan: Plan, ctx: CompileContext, step: str) -> Iterator[Diagnostic]:
    for path, ref in plan.refs_of[step]:
        full = ("steps", step, *path)
        if path[:1] in (("command",), ("args",), ("env",)) and ref.root != "each" and len(ref.fields) > 1:
            help_ = "hand the field over as its own output or param"
            yield _unsupported(ctx, full, f"a field of a value inside text (`{ref}`)", help_)
            continue
        if ref.root == "pipeline" and ref.fields == ("failures",):
            help_ = "use `${pipeline.status}`; the failed steps are in the workflow's node status (`argo get`)"
            message = "`${pipeline.failures}` exactly: `workflow.failures` lists every failed node (retries, pods)"
            yield _unsupported(ctx, full, message, help_)
        elif ref.is_step and isinstance(ref.index, int):
            help_ = f"read every instance with `{ref.root}[*].{ref.output}` and pick one in a step"
            yield _unsupported(ctx, full, f"one instance's output (`{ref}`)", help_)
        elif ref.is_step and ref.root in plan.steps:
            yield from _ref_scope(plan, ctx, step, full, ref)


def _ref_scope(plan: Plan, ctx: CompileContext, step: str, path: tuple, ref: Any) -> Iterator[Diagnostic]:
    up_scope = plan.scope(ref.root)
    if up_scope is not None and up_scope != ref.root and plan.scope(step) != up_scope:
        help_ = f'set `wait = "each"` on `{step}` too, or read `{up_scope}[*]` instead'
        yield _unsupported(ctx, path, f"an output of the per-instance step `{ref.root}` outside its loop", help_)
    if plan.steps[step].wait == "each" and ref.index is None and plan.fanned(ref.root) and plan.scope(step) != ref.root:
        loop = plan.scope(step)
        help_ = f"read `{ref.root}[*]` (all its instances), or pair `{step}` with one fanned-out step only"
        message = f"`{step}` pairing with the instances of both `{loop}` and `{ref.root}` (one loop per step)"
        yield _unsupported(ctx, path, message, help_)
    up = plan.steps[ref.root]
    if isinstance(up, Train) and up.distributed and ref.output and up.outputs().get(ref.output) == "param":
        help_ = "read the metrics inside the model (dmlc_metrics.json) with an `evaluate` or `select` step"
        message = f"`{ref}`: a TFJob (distributed train) returns its model, not a parameter"
        yield _unsupported(ctx, path, message, help_)


def _loop_cycles(plan: Plan, ctx: CompileContext) -> list[Diagnostic]:
    out = []
    for member, up in dag.loop_cycles(plan):
        paths = [path for path, ref in plan.refs_of[member] if ref.is_step and ref.root == up] or [("after",)]
        loop = plan.scope(member)
        help_ = f'drop `wait = "each"` from `{member}`, so that it waits for all of `{loop}`'
        message = f"`{member}` running per instance of `{loop}` after `{up}`, which waits for all of `{loop}`"
        out.append(_unsupported(ctx, ("steps", member, *paths[0]), message, help_))
    return out


def _retry(plan: Plan, ctx: CompileContext, step: str) -> list[Diagnostic]:
    retry = plan.steps[step].retry
    if retry is None:
        return []
    base = ("steps", step, "retry") if plan.pipeline.steps[step].retry is not None else ("defaults", "retry")
    out = []
    if retry.factor is not None and not float(retry.factor).is_integer():
        help_ = "use a whole number, e.g. 2"
        out.append(_unsupported(ctx, (*base, "factor"), f"a fractional backoff factor ({retry.factor})", help_))
    eff = plan.steps[step]
    launched = isinstance(eff, Serve) or (isinstance(eff, Train) and eff.distributed)
    if retry.on != "any" and launched and ctx.options.object_retry == "error":
        help_ = (
            'a TFJob / InferenceService reports no exit code to Argo to tell failures apart: use on = "any", or '
            'accept retrying every failure with `target argo { object_retry = "any" }`'
        )
        what = f"retrying a Kubernetes object only on {describe(retry.on)}"
        out.append(_unsupported(ctx, (*base, "on"), what, help_))
    return out


def _kind_checks(plan: Plan, ctx: CompileContext, step: str) -> list[Diagnostic]:
    eff = plan.steps[step]
    base = ("steps", step)
    out = []
    if isinstance(eff, Train) and eff.distributed:
        for attr, what, help_ in tfjob_limits(eff):
            diag = _unsupported(ctx, (*base, attr), what, help_)
            out.append(replace(diag, severity=Severity.WARNING) if ctx.options.elastic == "ignore" else diag)
    if isinstance(eff, Train) and not eff.distributed and eff.workers > 1:
        help_ = 'set strategy = "allreduce" or "parameter_server" to use several workers'
        out.append(_unsupported(ctx, (*base, "workers"), f"{eff.workers} workers with `{eff.strategy}`", help_))
    if isinstance(eff, Serve) and eff.autoscale is not None and not float(eff.autoscale.target).is_integer():
        help_ = "KServe's scaleTarget is a whole number"
        out.append(_unsupported(ctx, (*base, "autoscale", "target"), "a fractional autoscale target", help_))
    out += _metric_names(plan, ctx, step)
    return out


def _metric_names(plan: Plan, ctx: CompileContext, step: str) -> list[Diagnostic]:
    """DML106: a metric a step reports must name an output parameter, fixed when the workflow is written
    (argo-workflows v4.1 workflow/validate/validate.go: `^[-a-zA-Z0-9_]+$`), and, with `prometheus`, a
    Prometheus gauge (`prometheus.py`)."""
    eff = plan.steps[step]
    written = [(("metric",), eff.metric)] if isinstance(eff, Select) else []
    if isinstance(eff, Evaluate):
        written = [(("metrics", i), name) for i, name in enumerate(eff.metrics) if "${" in name]
    out = []
    for path, metric in written:
        if "${" in metric:
            what, help_ = "a metric named by a reference", "write its name: Argo names its outputs before the run"
        elif not _PARAM_NAME.match(ui_metrics.param_name(metric)):
            what, help_ = f"the metric name `{metric}` (an output parameter)", "use letters, digits, `-` and `_`"
        elif plan.options.prometheus and not prometheus.valid(metric):
            what = f"the metric name `{metric}` as a Prometheus gauge `{prometheus.metric_name(metric)}`"
            help_ = "use letters, digits and `_`, or set `prometheus = false` in `target argo`"
        else:
            continue
        where = ("steps", step, *path)
        out.append(ctx.error(DML106, f"Argo cannot show {what}", where, "not an Argo metric name", help_))
    return out


def _options(plan: Plan, ctx: CompileContext) -> list[Diagnostic]:
    if ctx.options.volume_claims != "template":
        return []
    out = []
    for step, eff in plan.steps.items():
        if eff.memoize is not None or isinstance(eff, Serve):
            what = "memoized results" if eff.memoize is not None else "a served model"
            help_ = 'keep `volume_claims = "existing"` so results outlive the workflow'
            message = f"{what} of `{step}` on a volume deleted with the workflow"
            out.append(_unsupported(ctx, ("targets", "argo", "volume_claims"), message, help_))
    return out
