"""The `local` target (stage 3 for `dmlc compile --target local`, stage 4 for `dmlc run --local`).

Takes a validated pipeline; `check` gives DML100 for what this machine cannot do exactly, `emit`
gives the execution plan as deterministic JSON (what `dmlc run --local` will run: order, edges,
commands, slots, retry/timeout/memo settings, a crontab line for `schedule`). The executor itself
lives in `executor.py`; the CLI commands in `commands.py`.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from dmlc_targets.local.plan import LocalPlan, build, plan_json

from dmlc.diagnostics.catalogue import DML100, DML107
from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.model import Pipeline
from dmlc.targets import Checked, CompileContext, TargetOptions


class LocalOptions(TargetOptions):
    """`target local { }`: no options yet (run state lives under `.dmlc/`, the store under `metadata`)."""


class LocalTarget:
    name: ClassVar[str] = "local"
    suffix: ClassVar[str] = ".json"
    description: ClassVar[str] = "run on this machine: subprocesses, SQLite metadata, content-addressed cache"
    capabilities: ClassVar[dict[str, str]] = {
        "fan_out": "instances started as the list is known (static or from an output)",
        "fan_in": "x[*].out collects successful instances in item order",
        "wait_each": "a consumer instance starts as soon as its paired instance finishes",
        "min_success": "downstream proceeds when enough instances succeeded",
        "when": "evaluated with a safe ast walker over params and outputs",
        "memoize": "content-addressed cache under .dmlc/cache (fcntl locks, atomic renames)",
        "retry": "same policy: limit, backoff, factor, max_backoff, on",
        "timeout": "kills the step's whole process group",
        "resources": "cpu/memory requests count against this machine's capacity",
        "priority": "ready queue ordered by priority, then pipeline order",
        "parallelism": "at most N step processes at once",
        "gang": "a distributed train job takes all its slots at once or waits",
        "queue": "one user per machine: the queue has no one to share with",
        "distributed_train": "N local processes with TF_CONFIG on localhost ports",
        "serve": "server processes on localhost; stopped at run end unless --keep-serving",
        "volume": "a folder under the run directory",
        "placement and identity": "accepted, no effect; the run says so once",
        "schedule": "printed as a crontab line in the plan",
        "metadata": "SQLite: runs, attempts, artifacts with digests, metrics",
        "secret_env": "from `dmlc run --secrets FILE` or $K of dmlc's environment; only the reference is written",
        "artifacts": "s3:// stores through s3fs: every artifact also written there, verified, at the cluster keys",
    }
    options_model: ClassVar[type[TargetOptions]] = LocalOptions

    def check(self, pipeline: Pipeline, ctx: CompileContext) -> Checked:
        return Checked(self._diagnostics(pipeline, ctx), LocalPlan(pipeline, build(pipeline), ctx.source_name))

    def _diagnostics(self, pipeline: Pipeline, ctx: CompileContext) -> list[Diagnostic]:
        out = []
        if pipeline.schedule is not None and pipeline.schedule.concurrency == "replace":
            help_ = 'use concurrency = "forbid" (skip a tick while a run is going) or "allow"'
            message = 'a crontab line cannot replace a running run (`concurrency = "replace"`)'
            out.append(ctx.error(DML100, message, ("schedule", "concurrency"), "not expressible in cron", help_))
        if pipeline.artifacts is not None and not pipeline.artifacts.store.startswith("s3://"):
            help_ = "use an s3:// store locally (MinIO, Ceph and GCS's S3 interoperability all speak it)"
            message = "a local run reads and writes its artifact store through s3fs: only `s3://` stores"
            out.append(ctx.error(DML107, message, ("artifacts", "store"), "not usable locally", help_))
        return out

    def emit(self, plan: LocalPlan, ctx: CompileContext) -> str:
        doc: dict[str, Any] = plan_json(plan)
        return json.dumps(doc, indent=2, default=str) + "\n"

    def run(self, file: str, params: dict[str, Any] | None = None, **options: Any) -> dict[str, Any]:
        """Run a pipeline on this machine (what `dmlc run --local` does) and give its results as data
        (`results.py`); `options` are RunRequest's: resume, no_cache, keep_serving, secrets, root, and
        `out` (a text stream for the progress lines; default: none)."""
        import io
        from pathlib import Path

        from dmlc_targets.local.results import results
        from dmlc_targets.local.runner import RunRequest, UsageError, execute
        from dmlc_targets.local.store import Store

        out = options.pop("out", None) or io.StringIO()
        if "root" in options:
            options["root"] = Path(options["root"])
        req = RunRequest(file, params or {}, **options)
        try:
            execute(req, out)
        except UsageError as exc:  # no run to resume, or it is still going: the caller's LookupError
            raise LookupError(str(exc)) from None
        assert req.run_id is not None and req.store is not None  # execute sets them or raises
        store = Store(req.store)
        try:
            return results(store, req.run_id)
        finally:
            store.close()

    def runs(self) -> Any:
        """`dmlc status|logs` of local runs, from the metadata store (targets/local/runs.py)."""
        from dmlc_targets.local.runs import LocalRuns

        return LocalRuns()


target = LocalTarget
