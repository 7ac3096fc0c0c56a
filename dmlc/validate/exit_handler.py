"""Rules of the exit handler (`finally NAME { }`, DESIGN §7.7): where it sits and what it may read.

It runs once, after every other step has ended, on every target: Argo's `spec.onExit`, KFP's
`dsl.ExitHandler` exit task, the local executor's last step. So: at most one per pipeline (KFP's
ExitHandler has one exit task); no `for_each`, `when`, `after`, `wait`, `min_success` or `memoize`
(it is never fanned out, skipped, ordered or cached); no step may read it or run after it, and it is
not the only step (DML033).
It reads params and `${pipeline.status}` / `${pipeline.failures}`, never another step's outputs:
Argo's onExit template and KFP's exit task cannot be wired to them exactly (DML034); and
`${pipeline.*}` exists only inside it.
"""

from __future__ import annotations

from dmlc.diagnostics.catalogue import DML033, DML034
from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.model import Step
from dmlc.ir.types import Ref
from dmlc.parse.document import Path
from dmlc.validate.context import Ctx

KIND = "finally"
PIPELINE_FIELDS = ("status", "failures")  # what `${pipeline.*}` offers
FORBIDDEN = ("for_each", "when", "after", "wait", "min_success", "memoize")


def is_exit_handler(step: Step) -> bool:
    return step.kind == KIND


def check_exit_handler(ctx: Ctx) -> list[Diagnostic]:
    out: list[Diagnostic] = []
    handlers = [name for name, step in ctx.steps() if is_exit_handler(step)]
    if handlers and len(handlers) == len(ctx.pipeline.steps):  # Argo refuses an empty DAG; KFP an empty group
        help_ = 'add the steps it runs after, e.g. `task work { command = ["true"] }`'
        message = "a pipeline with only a `finally` step has nothing to run it after"
        out.append(ctx.diag(DML033, message, ("steps", handlers[0]), "the only step", help_, True))
    for extra in handlers[1:]:
        help_ = f"merge it into `{handlers[0]}` (one command can do both)"
        note = f"`{handlers[0]}` is this pipeline's exit handler"
        out.append(ctx.diag(DML033, "a pipeline has at most one `finally` step", ("steps", extra), note, help_, True))
    for name in handlers:
        step = ctx.pipeline.steps[name]
        for attr in FORBIDDEN:
            if getattr(step, attr) not in (None, []):
                message = f"a `finally` step cannot have `{attr}`"
                help_ = "remove it: the exit handler runs exactly once, after every other step, whatever happened"
                out.append(ctx.diag(DML033, message, ("steps", name, attr), "not allowed here", help_, key=True))
    for name, step in ctx.steps():
        for i, up in enumerate(step.after):
            if up in handlers:
                message = f"`{name}` cannot run after the `finally` step `{up}`"
                help_ = "nothing runs after the exit handler; remove this `after` entry"
                out.append(ctx.diag(DML033, message, ("steps", name, "after", i), "after the exit handler", help_))
    return out


def check_exit_ref(ctx: Ctx, name: str, step: Step, path: Path, ref: Ref) -> list[Diagnostic] | None:
    """The diagnostics of one reference when the exit handler is involved, None when it is not."""
    if ref.root == "pipeline":
        return _pipeline_ref(ctx, step, path, ref)
    up = ctx.pipeline.steps.get(ref.root) if ref.is_step else None
    if up is not None and is_exit_handler(up):
        message = f"`{ref.root}` is the `finally` step: nothing can read it"
        help_ = "the exit handler runs after every other step; read a value it writes outside the pipeline"
        return [ctx.diag(DML033, message, path, "reads the exit handler", help_)]
    if ref.is_step and is_exit_handler(step):
        message = f"the `finally` step `{name}` cannot read `{ref.text}`"
        help_ = (
            "it may read `${params.*}`, `${pipeline.status}` and `${pipeline.failures}`: Argo's onExit and "
            "KFP's exit task cannot be wired to step outputs"
        )
        return [ctx.diag(DML034, message, path, "a step output", help_)]
    return None


def _pipeline_ref(ctx: Ctx, step: Step, path: Path, ref: Ref) -> list[Diagnostic]:
    if not is_exit_handler(step):
        help_ = "only the `finally` step sees the run's status; move this into a `finally` block"
        return [ctx.diag(DML034, f"`{ref.text}` is only defined in the `finally` step", path, "not here", help_)]
    if ref.index is not None or len(ref.fields) != 1 or ref.fields[0] not in PIPELINE_FIELDS:
        help_ = "write `${pipeline.status}` (succeeded | failed) or `${pipeline.failures}` (a JSON list of step names)"
        return [ctx.diag(DML034, f"`{ref.text}` is not a value of the run", path, "unknown", help_)]
    return []
