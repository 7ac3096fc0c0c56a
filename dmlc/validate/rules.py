"""The validation rules: each `check_*` takes the context and returns its diagnostics."""

from __future__ import annotations

from collections.abc import Callable

from dmlc.diagnostics.catalogue import (
    DML012,
    DML015,
    DML016,
    DML017,
    DML018,
    DML019,
    DML020,
    DML024,
    DML030,
    DML031,
    DML032,
    DML043,
    DML103,
)
from dmlc.diagnostics.model import Diagnostic, Label, did_you_mean
from dmlc.ir import graph
from dmlc.ir.model import Step
from dmlc.ir.types import Ref, interpolated
from dmlc.parse.document import Path
from dmlc.validate.artifacts import check_artifacts
from dmlc.validate.context import Ctx, strings
from dmlc.validate.exit_handler import check_exit_handler, check_exit_ref
from dmlc.validate.kinds import check_kinds
from dmlc.validate.param_types import check_param_types
from dmlc.validate.placement import check_placement
from dmlc.validate.process import check_commands_and_mounts, check_process_text

RESERVED = ("params", "each", "pipeline", "steps", "inputs", "outputs", "workflow", "tasks", "item")


def check_reserved_names(ctx: Ctx) -> list[Diagnostic]:
    return [
        ctx.diag(
            DML019,
            f"`{name}` is a reserved word and cannot name a step",
            ("steps", name),
            key=True,
            help="rename the step",
        )
        for name, _ in ctx.steps()
        if name in RESERVED
    ]


def check_has_steps(ctx: Ctx) -> list[Diagnostic]:
    """A pipeline runs at least one step (Argo refuses an empty DAG; KFP could not build one: DML900)."""
    if ctx.pipeline.steps:
        return []
    help_ = 'add a step, e.g. `task hello { command = ["echo", "hi"] }`'
    return [ctx.diag(DML024, f"pipeline `{ctx.pipeline.pipeline}` has no steps", ("pipeline",), "no steps", help_)]


def check_references(ctx: Ctx) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    for name, step in ctx.steps():
        for path, ref in graph.refs(step):
            out += _check_ref(ctx, name, step, ("steps", name, *path), ref)
    return out


def _check_ref(ctx: Ctx, name: str, step: Step, path: Path, ref: Ref) -> list[Diagnostic]:
    exit_ref = check_exit_ref(ctx, name, step, path, ref)
    if exit_ref is not None:
        return exit_ref
    if ref.root == "params":
        return _check_param(ctx, path, ref)
    if ref.root == "each":
        if step.for_each is None:
            help_ = "add `for_each = [...]` to this step, or use a concrete value"
            return [ctx.diag(DML017, "`each` is only defined in a step with `for_each`", path, "used here", help_)]
        return []
    steps = ctx.pipeline.steps
    if ref.root not in steps:
        help_ = did_you_mean(ref.root, list(steps), "step")
        note = f"no step named `{ref.root}` in pipeline `{ctx.pipeline.pipeline}`"
        return [ctx.diag(DML012, f"unknown step `{ref.root}`", path, note, help_)]
    return _check_output(ctx, step, path, ref, steps[ref.root])


def _check_param(ctx: Ctx, path: Path, ref: Ref) -> list[Diagnostic]:
    param = ref.output
    if param is None or param in ctx.pipeline.params:
        return []
    help_ = did_you_mean(param, list(ctx.pipeline.params), "parameter") or "declare it in `params { }`"
    return [ctx.diag(DML016, f"unknown parameter `{param}`", path, "not in `params`", help_)]


def _check_output(ctx: Ctx, step: Step, path: Path, ref: Ref, up: Step) -> list[Diagnostic]:
    outputs = up.outputs()
    out: list[Diagnostic] = []
    in_when = path[-1] == "when"
    if ref.output is None and not in_when:
        help_ = f"name an output: {', '.join(f'{ref.root}.{o}' for o in outputs) or '(it has none)'}"
        out.append(ctx.diag(DML015, f"`{ref.root}` is a step, not a value", path, "which output?", help_))
    elif ref.output is not None and ref.output not in outputs:
        help_ = did_you_mean(ref.output, list(outputs), "output") or f"outputs of `{ref.root}`: {', '.join(outputs)}"
        note = f"`{ref.root}` has no output `{ref.output}`"
        out.append(ctx.diag(DML015, f"unknown output `{ref.output}` of step `{ref.root}`", path, note, help_))
    out += _check_index(ctx, step, path, ref, up)
    return out


def _check_index(ctx: Ctx, step: Step, path: Path, ref: Ref, up: Step) -> list[Diagnostic]:
    if ref.index is not None and up.for_each is None:
        help_ = f"`{ref.root}` has one instance: write `{ref.root}.{ref.output or '...'}`"
        return [
            ctx.diag(DML018, f"`{ref.root}` is not fanned out, so it cannot be indexed", path, "indexed here", help_)
        ]
    if ref.index is None and up.for_each is not None and step.wait != "each" and path[-1] != "when":
        help_ = f'collect every instance with `{ref.root}[*].{ref.output}`, or set `wait = "each"` on this step'
        return [ctx.diag(DML018, f"`{ref.root}` is fanned out: say which instances", path, "which instance?", help_)]
    return []


def check_after(ctx: Ctx) -> list[Diagnostic]:
    out = []
    for name, step in ctx.steps():
        for i, up in enumerate(step.after):
            if up not in ctx.pipeline.steps:
                help_ = did_you_mean(up, list(ctx.pipeline.steps), "step")
                note = f"no step named `{up}` in pipeline `{ctx.pipeline.pipeline}`"
                out.append(ctx.diag(DML012, f"unknown step `{up}`", ("steps", name, "after", i), note, help_))
    return out


def check_cycles(ctx: Ctx) -> list[Diagnostic]:
    from graphlib import CycleError, TopologicalSorter

    try:
        TopologicalSorter(graph.dependencies(ctx.pipeline)).prepare()
    except CycleError as exc:
        cycle = list(exc.args[1])
        path_text = " -> ".join(reversed(cycle))
        labels = tuple(Label(ctx.document.span(("steps", n), key=True), "in the cycle") for n in cycle[1:-1])
        help_ = "remove one of these references or `after` entries"
        return [
            ctx.diag(
                DML030,
                f"dependency cycle: {path_text}",
                ("steps", cycle[-1]),
                "starts here",
                help_,
                key=True,
                also=labels,
            )
        ]
    return []


def check_fan_rules(ctx: Ctx) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    deps = graph.dependencies(ctx.pipeline)
    for name, step in ctx.steps():
        ups = [ctx.pipeline.steps[u] for u in deps[name]]
        if step.wait is not None and not any(u.for_each is not None for u in ups):
            help_ = "`wait` only applies to a step that consumes a fanned-out (`for_each`) step"
            out.append(
                ctx.diag(
                    DML031, "`wait` without a fanned-out upstream", ("steps", name, "wait"), "here", help_, key=True
                )
            )
        if step.min_success is not None:
            out += _check_min_success(ctx, name, step)
    return out


def _check_min_success(ctx: Ctx, name: str, step: Step) -> list[Diagnostic]:
    path = ("steps", name, "min_success")
    if step.for_each is None:
        help_ = "put `min_success` on the step that has `for_each`"
        return [ctx.diag(DML031, "`min_success` on a step that is not fanned out", path, "here", help_, key=True)]
    if isinstance(step.for_each, list) and step.min_success is not None and step.min_success > len(step.for_each):
        message = f"`min_success = {step.min_success}` but `for_each` has {len(step.for_each)} items"
        return [ctx.diag(DML032, message, path, "too many", "lower it to at most the number of items")]
    return []


def check_strings(ctx: Ctx) -> list[Diagnostic]:
    """`${...}` inside strings must be well-formed references."""
    out = []
    for name, raw in ctx.document.data.get("steps", {}).items():
        for path, text in strings(raw, ("steps", name)):
            if "${" not in text:
                continue
            try:
                interpolated(text)
            except ValueError as exc:
                out.append(ctx.diag(DML020, str(exc), path, "bad reference"))
    return out


def check_resources(ctx: Ctx) -> list[Diagnostic]:
    """Zero requests and byte-sized memory are mistakes (`memory = 512` is 512 bytes, not 512Mi)."""
    out = []
    places = [(("steps", n), s.resources) for n, s in ctx.steps()]
    if ctx.pipeline.defaults is not None:
        places.append((("defaults",), ctx.pipeline.defaults.resources))
    for base, res in places:
        if res is None:
            continue
        if res.cpu == 0:
            out.append(
                ctx.diag(
                    DML043,
                    "a cpu request of 0",
                    (*base, "resources", "cpu"),
                    "here",
                    "request at least 1m (e.g. `cpu = 100m`), or leave `cpu` out",
                )
            )
        if res.memory is not None and res.memory < 2**20:
            help_ = f"did you mean `{res.memory}Mi`? plain numbers are bytes"
            out.append(
                ctx.diag(
                    DML043,
                    f"`memory = {res.memory}` is less than 1Mi",
                    (*base, "resources", "memory"),
                    "too small to run a container",
                    help_,
                )
            )
    return out


def check_target_blocks(ctx: Ctx) -> list[Diagnostic]:
    """`target NAME { }` must name an installed target (its options are checked by that target)."""
    from dmlc import targets

    known = targets.names()
    return [
        ctx.diag(
            DML103,
            f"unknown target `{name}`",
            ("targets", name),
            "no such target",
            key=True,
            help=did_you_mean(name, known, "target") or f"installed targets: {', '.join(known)}",
        )
        for name in ctx.pipeline.targets
        if name not in known
    ]


RULES: list[Callable[[Ctx], list[Diagnostic]]] = [
    check_has_steps,
    check_reserved_names,
    check_references,
    check_param_types,
    check_after,
    check_cycles,
    check_fan_rules,
    check_strings,
    check_kinds,
    check_resources,
    check_process_text,
    check_commands_and_mounts,
    check_target_blocks,
    check_exit_handler,
    check_placement,
    check_artifacts,
]
