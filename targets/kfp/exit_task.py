"""The exit handler on KFP (stage 3 check): what `dsl.ExitHandler` cannot express exactly (DML100).

The `finally` step becomes the ExitHandler's exit task around the whole DAG (`build.py`), taking a
`dsl.PipelineTaskFinalStatus` that the backend fills in: a state (the handler DAG's MLMD state, COMPLETE
or FAILED, read by `shim.run_status`), the run and the task's names, an error the 2.x driver leaves
empty (backend/src/v2/driver/resolve.go, the TaskFinalStatus case). So:
- `${pipeline.failures}`: no list of failed tasks reaches the exit task;
- pipeline volumes: their PVCs are created by `CreatePVC` tasks, and kfp refuses an exit task that
  depends on another task (`dsl.ExitHandler`: "exit_task cannot depend on any other tasks"), so the
  exit task could not mount them;
- a step in a nested group (`dsl.ParallelFor` for `for_each` and its `wait = "each"` readers, `dsl.If`
  for `when`):
  the backend updates a DAG's state one level above a container only, so the handler's group stays
  Running and the exit task reads a wrong status (kubeflow/pipelines #11979, open since 2.5; #13321 for
  loops, 2.16), or the run fails outright (#12390, a loop, 2.14). The harness does not replay that bug:
  refusing is what keeps the KFP output exact.
"""

from __future__ import annotations

from typing import Any

from dmlc.diagnostics.catalogue import DML100
from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.graph import refs
from dmlc.ir.model import Pipeline
from dmlc.targets import CompileContext

NESTED = {"loop": "for_each", "if": "when"}  # a group frame's kind -> the attribute of its owner that makes it


def exit_checks(pipeline: Pipeline, ctx: CompileContext, name: str, scopes: dict[str, Any]) -> list[Diagnostic]:
    """`scopes`: step -> its group frames ((kind, owner), ...), from the KFP plan."""
    step = pipeline.steps[name]
    if step.kind != "finally":
        return []
    out = []
    for path, ref in refs(step):
        if ref.root == "pipeline" and ref.fields == ("failures",):
            help_ = "use `${pipeline.status}`; KFP's PipelineTaskFinalStatus names no failed task"
            message = "KFP cannot hand `${pipeline.failures}` to the exit task"
            out.append(ctx.error(DML100, message, ("steps", name, *path), "not expressible on kfp", help_))
    nested = next((frame for frames in scopes.values() for frame in frames), None)
    if nested is not None:
        kind, owner = nested
        attr = NESTED[kind]
        help_ = "use argo or local for this pipeline (kubeflow/pipelines #11979, #13321, #12390)"
        message = f"KFP's exit task does not see the right status when a step runs in a nested group (`{owner}`)"
        out.append(ctx.error(DML100, message, ("steps", owner, attr), "a nested DAG", help_))
    if pipeline.volumes:
        help_ = "drop the pipeline's volumes, or the `finally` step, for KFP (its exit task cannot wait for a PVC)"
        message = "KFP cannot mount the pipeline's volumes in the exit task (it may not depend on their CreatePVC)"
        out.append(ctx.error(DML100, message, ("steps", name), "not expressible on kfp", help_))
    return out
