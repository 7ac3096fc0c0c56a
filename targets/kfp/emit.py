"""Output of the KFP target (stage 4, emit): kfp GraphComponent -> deterministic YAML text.

Takes the validated pipeline and the compile context; gives kfp's own compiler output (PipelineSpec
and, when a task has Kubernetes settings, the PlatformSpec document) under a header naming the
source. Warnings (settings KFP does not enforce) and the recurring-run settings of a `schedule`
are written as header comments; with `--with-setup` the recurring run is appended as a document.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import yaml
from dmlc_targets.kfp import objstore
from dmlc_targets.kfp.plan import KfpPlan

from dmlc.ir.model import Pipeline
from dmlc.k8s import k8s_name
from dmlc.targets import CompileContext

KFP_CONCURRENCY = {"allow": 10, "forbid": 1}  # 10 is the most KFP accepts for one recurring run


@contextmanager
def default_str_representer() -> Iterator[None]:
    """kfp dumps with PyYAML's global representers, and importing hera (the argo target) replaces the
    one for `str` process-wide; put PyYAML's own back while kfp writes, so output never depends on
    which targets ran before in the same process."""
    candidates = (yaml.representer.SafeRepresenter, yaml.representer.Representer, yaml.Dumper, yaml.SafeDumper)
    classes = [cls for cls in candidates if "yaml_representers" in cls.__dict__]
    saved = [cls.yaml_representers.get(str) for cls in classes]
    for cls in classes:
        cls.yaml_representers[str] = yaml.representer.SafeRepresenter.represent_str
    try:
        yield
    finally:
        for cls, old in zip(classes, saved, strict=True):
            if old is None:
                cls.yaml_representers.pop(str, None)
            else:
                cls.yaml_representers[str] = old


@contextmanager
def commented_header() -> Iterator[None]:
    """kfp writes a string param's default into its `# Inputs:` header comment as it is (kfp 2.17
    pipeline_spec_builder.extract_comments_from_pipeline_spec): a line break in it would end the
    comment and start live YAML. Every line of the header stays a comment; the spec itself is unchanged."""
    from kfp.compiler import pipeline_spec_builder as builder

    original = builder.extract_comments_from_pipeline_spec

    def safe(spec: dict, description: str) -> str:
        text = original(spec, description)
        lines = [line if line.startswith("#") else "#    " + line for line in text.splitlines()]
        return "\n".join(lines) + ("\n" if text.endswith("\n") else "")

    builder.extract_comments_from_pipeline_spec = safe
    try:
        yield
    finally:
        builder.extract_comments_from_pipeline_spec = original


def compile_text(component: Any) -> str:
    from kfp import compiler

    fd, path = tempfile.mkstemp(suffix=".yaml", prefix="dmlc-kfp-")
    os.close(fd)
    try:
        with default_str_representer(), commented_header():
            compiler.Compiler().compile(component, path)
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    finally:
        os.unlink(path)


def pipeline_text(plan: KfpPlan, direct: bool = True) -> str:
    """kfp's compiler output for the pipeline: built directly where `direct.py` covers it, else with kfp's
    DSL and compiler (`direct=False` forces that: the oracle of the direct path's tests)."""
    from dmlc_targets.kfp import direct as direct_path

    if direct:
        try:
            return direct_path.compile_text(plan)
        except direct_path.Unsupported:
            pass
    from dmlc_targets.kfp.build import build

    with memoized_task_names():
        return compile_text(build(plan))


def recurring_run(pipeline: Pipeline, ctx: CompileContext) -> dict[str, Any] | None:
    """KFP v2beta1 RecurringRun fields (`kfp recurring-run create` / the REST API) for a `schedule`."""
    schedule = pipeline.schedule
    if schedule is None:
        return None
    options = ctx.options
    return {
        "display_name": k8s_name(pipeline.pipeline),
        "experiment": (options.experiment if options is not None else None) or k8s_name(pipeline.pipeline),
        "trigger": {"cron_schedule": {"cron": "0 " + " ".join(schedule.cron.split())}},  # KFP cron has seconds
        "max_concurrency": KFP_CONCURRENCY[schedule.concurrency],
        "no_catchup": schedule.concurrency == "forbid",
        "mode": "ENABLE",
        "pipeline_spec_file": f"{ctx.source_label}.kfp.yaml",
    }


def header(pipeline: Pipeline, ctx: CompileContext, warnings: list[Any]) -> str:
    lines = [ctx.header().rstrip("\n")]
    for diag in warnings:
        lines.append(f"# warning[{diag.code}]: {diag.message} ({diag.help})")
    lines += objstore.header_lines(pipeline)
    run = recurring_run(pipeline, ctx)
    if run is not None:
        lines.append("# recurring run (kfp recurring-run create, or dmlc compile --with-setup for the document):")
        lines += ["#   " + line for line in yaml.safe_dump(run, sort_keys=True).splitlines()]
    return "\n".join(lines) + "\n"


@contextmanager
def memoized_task_names() -> Iterator[None]:
    """kfp sanitises every task name of a DAG once per task (O(n^2) regex calls: most of its time on
    big pipelines); the function is pure, so caching it gives the same PipelineSpec in linear calls."""
    from kfp.dsl import utils

    original = utils.sanitize_task_name
    utils.sanitize_task_name = lru_cache(maxsize=None)(original)
    try:
        yield
    finally:
        utils.sanitize_task_name = original


def emit(plan: KfpPlan, ctx: CompileContext) -> str:
    pipeline = plan.pipeline
    text = header(pipeline, ctx, plan.warnings) + pipeline_text(plan)
    run = recurring_run(pipeline, ctx)
    if run is not None and ctx.flags.get("with_setup"):
        text += "---\n" + yaml.safe_dump({"kind": "RecurringRun", "apiVersion": "v2beta1", **run}, sort_keys=True)
    config = objstore.launcher_config(pipeline)
    if config is not None and ctx.flags.get("with_setup"):
        text += "---\n" + yaml.safe_dump(config, sort_keys=True)
    return text
