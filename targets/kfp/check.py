"""Capability checks of the KFP target (stage 3, target check): IR -> DML1xx diagnostics.

Takes a validated `Pipeline` and the compile context; gives one diagnostic per construct KFP v2
cannot express exactly, pointing at the attribute that asks for it (DML100), and DML102 for a
pipeline name that is no Kubernetes name; a warning for `max_age` under `cache_max_age = "ignore"`.
Never imports kfp, so `dmlc check` stays fast.
"""

from __future__ import annotations

import keyword
from itertools import islice
from typing import Any

from dmlc_targets.kfp.exit_task import exit_checks
from dmlc_targets.kfp.manifests import DATA_MOUNT, DATA_VOLUME
from dmlc_targets.kfp.plan import KfpPlan, PlacementError, StepPlan, is_distributed, plan, tree

from dmlc.diagnostics.catalogue import DML100, DML102
from dmlc.diagnostics.model import Diagnostic, Severity
from dmlc.ir.model import Pipeline, Train
from dmlc.ir.types import Ref
from dmlc.k8s import k8s_name, tfjob_limits
from dmlc.semantics.retry import by_codes, describe
from dmlc.targets import Checked, CompileContext

ANTICHAIN_LIMIT = 5000  # sets of independent steps examined for `parallelism` before giving up


def _source_path(pipeline: Pipeline, name: str, attr: str) -> tuple[str, ...]:
    """Where an effective setting was written: on the step, or inherited from `defaults`."""
    return ("steps", name, attr) if getattr(pipeline.steps[name], attr) is not None else ("defaults", attr)


def _loop_checks(pipeline: Pipeline, ctx: CompileContext, p: StepPlan) -> list[Diagnostic]:
    """`dsl.ParallelFor` refuses an empty static list, a field of a parameter and a fan-in's list."""
    items, where = p.step.for_each, ("steps", p.name, "for_each")
    problem = None
    if isinstance(items, list) and not items:
        problem = "an empty list (kfp refuses one)", "drop the step or give it items"
    elif isinstance(items, Ref) and len(items.fields) > 1:
        problem = f"a loop over a field (`{items}`)", "give the list its own param or output, and loop over that"
    elif isinstance(items, Ref) and items.is_step and (items.index is not None or pipeline.steps[items.root].for_each):
        problem = (
            f"a loop over the instances of a loop (`{items}`)",
            "collect the list in a step, and loop over its output",
        )
    if p.step.wait == "each" and items is not None:  # its loop would nest in the one it pairs with
        where = ("steps", p.name, "wait")
        problem = '`wait = "each"` on a step that also fans out', 'drop `for_each`, or read `x[*]` with `wait = "all"`'
    if problem is None:
        return []
    return [ctx.error(DML100, f"KFP cannot express {problem[0]}", where, "not expressible on kfp", problem[1])]


def _service_account_check(pipeline: Pipeline, ctx: CompileContext, name: str) -> Diagnostic:
    """kfp-kubernetes 2.17.3 has no per-task service account (nor has kubeflow/pipelines'
    kubernetes_platform/proto/kubernetes_executor_config.proto at 7b70c7b, 2026-08): a KFP run has one,
    for every task. A TFJob's or InferenceService's pods take it in their manifest."""
    help_ = (
        "set the run's service account when you start it (KFP's `service_account` of a run), "
        "or use the argo target; on a TFJob or InferenceService step it is exact"
    )
    where = _source_path(pipeline, name, "service_account")
    return ctx.error(DML100, "KFP cannot give one task its own service account", where, "per run on kfp", help_)


def _step_checks(pipeline: Pipeline, ctx: CompileContext, p: StepPlan) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    step, name = p.step, p.name
    if step.priority is not None:
        help_ = "KFP starts every ready task at once; remove `priority` or use the argo or local target"
        out.append(ctx.error(DML100, "KFP cannot order ready steps by `priority`", ("steps", name, "priority"),
                             "not expressible on kfp", help_))  # fmt: skip
    if isinstance(step, Train) and is_distributed(step):
        for attr, what, help_ in tfjob_limits(step):
            ignore = getattr(ctx.options, "elastic", "error") == "ignore"
            where = ("steps", name, attr)
            out.append(ctx.error(DML100, f"KFP cannot launch {what}", where, "as a TFJob", help_, warning=ignore))
    if isinstance(step, Train) and step.gang and not is_distributed(step):
        help_ = 'gang scheduling applies to TFJobs: use strategy = "allreduce" or "parameter_server", or drop `gang`'
        out.append(ctx.error(DML100, "KFP can gang-schedule only a TFJob", ("steps", name, "gang"), "one pod", help_))
    if step.service_account and not p.launched:
        out.append(_service_account_check(pipeline, ctx, name))
    if step.min_success is not None:
        out.append(_min_success_check(ctx, name))
    out += _loop_checks(pipeline, ctx, p)
    out += _retry_checks(pipeline, ctx, p)
    memo = step.memoize
    if memo is not None and (pipeline.volumes or p.launched):
        out.append(_per_run_claims(pipeline, ctx, name))
    if memo is not None and memo.max_age is not None and getattr(ctx.options, "cache_max_age", "epoch") == "ignore":
        where = (*_source_path(pipeline, name, "memoize"), "max_age")
        help_ = 'drop `cache_max_age = "ignore"` to bound the age with an epoch task (see the KFP README)'
        message = "cached results are reused however old on KFP"
        out.append(ctx.error(DML100, message, where, "not enforced", help_, warning=True))
    return out


def _per_run_claims(pipeline: Pipeline, ctx: CompileContext, name: str) -> Diagnostic:
    """KFP's cache fingerprint holds the names of the PVCs a task mounts (and its parameter inputs: a
    launched task gets the data volume's name), and `CreatePVC` names a claim per run (backend
    driver/cache.go, driver/k8s.go, 2.17.0): such a task is never found in the cache. A miss is safe."""
    help_ = "KFP recomputes it in every run (a miss is always safe); drop `memoize` or the volume to silence this"
    return ctx.error(DML100, "KFP never reuses this step: its cache key holds the run's volume names",
                     _source_path(pipeline, name, "memoize"), "recomputed on kfp", help_, warning=True)  # fmt: skip


def _min_success_check(ctx: CompileContext, name: str) -> Diagnostic:
    help_ = (
        "KFP 2.17 compiles `ignore_upstream_failure` into an exit hook, which a ParallelFor drops, and stops "
        "starting tasks after a failure: accept that every instance must succeed with "
        '`target kfp { min_success = "all" }`'
    )
    accept = getattr(ctx.options, "min_success", "error") == "all"
    message = "KFP cannot run a step after a loop with a failed instance"
    where = ("steps", name, "min_success")
    return ctx.error(DML100, message, where, "every instance must succeed on kfp", help_, warning=accept)


def _retry_checks(pipeline: Pipeline, ctx: CompileContext, p: StepPlan) -> list[Diagnostic]:
    retry = p.step.retry
    if retry is None:
        return []
    out = []
    base = _source_path(pipeline, p.name, "retry")
    if retry.on != "any" and not p.launched:
        # KFP's retryPolicy (pipeline_spec.proto RetryPolicy) has a count and a backoff, no condition
        help_ = (
            'KFP retries every failed attempt: use on = "any", or accept that with `target kfp { task_retry = "any" }`'
            " (TFJob and serve launchers apply `on` themselves)"
        )
        accept = getattr(ctx.options, "task_retry", "error") == "any"
        message = f"KFP cannot retry only on {describe(retry.on)}" + ("" if by_codes(retry.on) else " failures")
        note = "every failure retries on kfp" if accept else "here"
        out.append(ctx.error(DML100, message, (*base, "on"), note, help_, warning=accept))
    if retry.max_backoff is not None:
        help_ = "KFP's backoff_max_duration bounds the whole retry period, not one wait: remove `max_backoff`"
        out.append(ctx.error(DML100, "KFP cannot cap a single retry wait", (*base, "max_backoff"), "here", help_))
    return out


def _pipeline_checks(pipeline: Pipeline, ctx: CompileContext, plans: dict[str, StepPlan]) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    if not k8s_name(pipeline.pipeline):
        out.append(ctx.error(DML102, f"`{pipeline.pipeline}` gives no valid KFP pipeline name", ("pipeline",),
                             "no letter or digit left", "use letters or digits in the pipeline name"))  # fmt: skip
    sched = pipeline.scheduling
    if sched is not None and isinstance(sched.priority, int):
        help_ = 'name a priority class (priority = "high"): KFP pods take it as a Kueue workload priority class'
        out.append(ctx.error(DML100, "KFP cannot give pods a numeric priority", ("scheduling", "priority"), "", help_))
    if sched is not None and sched.parallelism and _too_wide(pipeline, plans, sched.parallelism):
        help_ = "KFP limits only the instances of one loop (ParallelFor parallelism); raise the limit or drop it"
        message = f"KFP cannot hold the whole pipeline to {sched.parallelism} steps at once"
        out.append(ctx.error(DML100, message, ("scheduling", "parallelism"), "independent steps exceed it", help_))
    if pipeline.namespace:
        help_ = "drop `namespace` for KFP, or start the run from the profile whose namespace you want"
        message = (
            "KFP runs a pipeline, and the objects its steps launch, in the namespace of the profile that starts it"
        )
        out.append(ctx.error(DML100, message, ("namespace",), "not applied on kfp", help_, warning=True))
    if any(p.launched for p in plans.values()):
        out += _reserved_volume_checks(pipeline, ctx)
    out += _name_checks(pipeline, ctx, plans)
    out += _schedule_checks(pipeline, ctx)
    return out


HIDDEN_INPUTS = ("dmlc_spec", "dmlc_item", "dmlc_cache_epoch", "dmlc_data_pvc")


def _name_checks(pipeline: Pipeline, ctx: CompileContext, plans: dict[str, StepPlan]) -> list[Diagnostic]:
    """KFP builds a Python function per pipeline and per component: params and outputs become parameter
    names, so a Python keyword, or an output named like one of the component's inputs, cannot be one;
    and a KFP parameter value cannot be null."""
    out = []
    for name, value in pipeline.params.items():
        problem = "is a Python keyword" if keyword.iskeyword(name) else "holds a null" if _has_null(value) else ""
        if problem:
            help_ = "rename the param" if "keyword" in problem else "give it a value, or leave the key out"
            message = f"KFP cannot take the param `{name}`: it {problem}"
            out.append(ctx.error(DML100, message, ("params", name), "not expressible on kfp", help_))
    for p in plans.values():
        inputs = {b.input for b in [*p.bindings.values(), *p.when_bindings.values()]} | set(HIDDEN_INPUTS)
        for output in p.step.outputs():
            if keyword.iskeyword(output) or output in inputs or output.startswith("dmlc_pvc_"):
                message = f"KFP cannot name an output `{output}` (a Python keyword, or one of the component's inputs)"
                where = ("steps", p.name, "outputs", output)
                out.append(ctx.error(DML100, message, where, "not expressible on kfp", "rename the output"))
    return out


def _has_null(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_null(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_null(v) for v in value)
    return value is None


def _reserved_volume_checks(pipeline: Pipeline, ctx: CompileContext) -> list[Diagnostic]:
    """Launched pods mount the run's data volume as `dmlc-data` at /dmlc-data: a volume of the pipeline's
    by that name or at that path would give them two volumes of one name or two mounts on one path."""
    out = []
    for name, vol in pipeline.volumes.items():
        clash = k8s_name(name) == DATA_VOLUME or vol.mount.rstrip("/") == DATA_MOUNT
        if clash:
            help_ = f"rename the volume and mount it elsewhere than {DATA_MOUNT}"
            message = f"`{DATA_VOLUME}` at {DATA_MOUNT} is where KFP's launched workloads get their data"
            out.append(ctx.error(DML100, message, ("volumes", name), "reserved on kfp", help_))
    return out


def _schedule_checks(pipeline: Pipeline, ctx: CompileContext) -> list[Diagnostic]:
    schedule = pipeline.schedule
    if schedule is None:
        return []
    out = []
    zone = ctx.options.scheduler_timezone if ctx.options is not None else "UTC"
    if schedule.timezone and schedule.timezone != zone:
        help_ = f'KFP reads cron in its controller\'s zone; if yours runs in {schedule.timezone}, set target kfp {{ scheduler_timezone = "{schedule.timezone}" }}'  # noqa: E501
        message = f"KFP recurring runs use the cluster's zone ({zone}), not `{schedule.timezone}`"
        out.append(ctx.error(DML100, message, ("schedule", "timezone"), "per-schedule zones are not supported", help_))
    if schedule.concurrency == "forbid":
        help_ = (
            "KFP (max_concurrency 1, no_catchup) starts the latest missed run when the running one ends; "
            'accept that with `target kfp { schedule_forbid = "delay" }`'
        )
        delay = getattr(ctx.options, "schedule_forbid", "error") == "delay"
        out.append(ctx.error(DML100, "KFP delays, rather than skips, a run that falls while one is active",
                             ("schedule", "concurrency"), "not exactly forbid", help_, warning=delay))  # fmt: skip
    if schedule.concurrency == "replace":
        help_ = 'use concurrency = "forbid" or "allow"'
        message = "KFP recurring runs cannot stop the previous run"
        out.append(ctx.error(DML100, message, ("schedule", "concurrency"), "", help_))
    return out


def _too_wide(pipeline: Pipeline, plans: dict[str, StepPlan], limit: int) -> bool:
    """Could more than `limit` steps run at once? A step inside a loop counts `limit` (the loop's own cap)."""
    import networkx as nx

    from dmlc.ir.graph import graph

    closure = nx.transitive_closure_dag(graph(pipeline))
    weight = {n: limit if any(f[0] == "loop" for f in p.scope) else 1 for n, p in plans.items()}
    return any(sum(weight[n] for n in chain) > limit for chain in islice(nx.antichains(closure), ANTICHAIN_LIMIT))


def check(pipeline: Pipeline, ctx: CompileContext) -> Checked:
    try:
        plans = plan(pipeline)
        tree(pipeline, plans)  # orders the groups: raises for a loop body needed before and after a step
    except PlacementError as exc:
        path = ("steps", exc.step, *exc.path)
        return Checked([ctx.error(DML100, f"KFP cannot place this step: {exc}", path, "", exc.help)])
    out = _pipeline_checks(pipeline, ctx, plans)
    for p in plans.values():
        out += _step_checks(pipeline, ctx, p)
        out += exit_checks(pipeline, ctx, p.name, {n: q.scope for n, q in plans.items()})
    warnings = sorted((d for d in out if d.severity == Severity.WARNING), key=Diagnostic.sort_key)
    return Checked(out, KfpPlan(pipeline, plans, ctx.options, warnings))
