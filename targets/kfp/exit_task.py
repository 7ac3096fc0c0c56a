"""The exit handler on KFP (stage 3 check): what `dsl.ExitHandler` cannot express exactly (DML100).

The `finally` step becomes the ExitHandler's exit task around the whole DAG (`build.py`), taking a
`dsl.PipelineTaskFinalStatus` that the backend fills in: a state (the handler DAG's MLMD state, COMPLETE
or FAILED, read by `shim.run_status`), the run and the task's names, an error the 2.x driver leaves
empty (backend/src/v2/driver/resolve.go, the TaskFinalStatus case). So:
- `${pipeline.failures}`: no list of failed tasks reaches the exit task;
- pipeline volumes: their PVCs are created by `CreatePVC` tasks, and kfp refuses an exit task that
  depends on another task (`dsl.ExitHandler`: "exit_task cannot depend on any other tasks"), so the
  exit task could not mount them;
- a fanned-out step (a `dsl.ParallelFor` inside the handler's group): the backend leaves the group's
  state Running, so the exit task reads a wrong status (kubeflow/pipelines #13321, 2.16), or fails the
  run outright (#12390, 2.14, open). The harness does not replay that bug: refusing is what keeps the
  KFP output exact.
"""

from __future__ import annotations

from dmlc.diagnostics.catalogue import DML100
from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.graph import refs
from dmlc.ir.model import Pipeline
from dmlc.targets import CompileContext


def exit_checks(pipeline: Pipeline, ctx: CompileContext, name: str) -> list[Diagnostic]:
    step = pipeline.steps[name]
    if step.kind != "finally":
        return []
    out = []
    for path, ref in refs(step):
        if ref.root == "pipeline" and ref.fields == ("failures",):
            help_ = "use `${pipeline.status}`; KFP's PipelineTaskFinalStatus names no failed task"
            message = "KFP cannot hand `${pipeline.failures}` to the exit task"
            out.append(ctx.error(DML100, message, ("steps", name, *path), "not expressible on kfp", help_))
    loops = [n for n, s in pipeline.steps.items() if s.for_each is not None]
    if loops:
        help_ = "use argo or local for this pipeline, or drop `for_each` (kubeflow/pipelines #13321, #12390)"
        message = f"KFP's exit task does not see the right status when the pipeline fans out (`{loops[0]}`)"
        out.append(ctx.error(DML100, message, ("steps", loops[0], "for_each"), "a ParallelFor", help_))
    if pipeline.volumes:
        help_ = "drop the pipeline's volumes, or the `finally` step, for KFP (its exit task cannot wait for a PVC)"
        message = "KFP cannot mount the pipeline's volumes in the exit task (it may not depend on their CreatePVC)"
        out.append(ctx.error(DML100, message, ("steps", name), "not expressible on kfp", help_))
    return out
