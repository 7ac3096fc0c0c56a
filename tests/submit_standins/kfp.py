"""A stand-in KFP API server (v2beta1, KFP 2.17.0): experiments, runs, a scripted run of each, pod logs.

Takes what `kfp.Client` sends (checked against specs/kfp-2.17.0-{healthz,experiment,run}.swagger.json
by `Standin`), and more than the swagger can say: the run's `pipeline_spec` must parse strictly into
kfp's PipelineSpec protobuf (and `platform_spec` into PlatformSpec), split as the API server does
(backend/src/apiserver/server/api_util.go, pipelineSpecStructToYamlString), and every runtime parameter
must be a root input of that spec, of its declared type. Gives what the API server answers: the created
run, then on each GET the next moment of a scripted run built from the spec's own tasks (loops expanded
over their items, one task detail per executed task with its pod name), and the log route that the
swagger does not list, GET /apis/v1alpha1/runs/{run_id}/nodes/{node_id}/log
(backend/src/apiserver/main.go; it writes 200 before it knows, so an error is a JSON body with status 200,
server/run_log_server.go). Options: `fail` (task names whose executions fail), `skip`.
"""

from __future__ import annotations

import copy
import itertools
import json
import time
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.submit_standins.openapi import Api
from tests.submit_standins.server import Standin

API = Api("kfp-2.17.0-healthz.swagger.json", "kfp-2.17.0-experiment.swagger.json", "kfp-2.17.0-run.swagger.json")
LOG_ROUTE = "/apis/v1alpha1/runs/{run_id}/nodes/{node_id}/log"
TYPES = {
    "NUMBER_INTEGER": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "NUMBER_DOUBLE": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "STRING": lambda v: isinstance(v, str),
    "BOOLEAN": lambda v: isinstance(v, bool),
    "LIST": lambda v: isinstance(v, list),
    "STRUCT": lambda v: isinstance(v, dict),
}
EPOCH = time.time()


def rfc3339(tick: float | None) -> str:
    return "1970-01-01T00:00:00Z" if tick is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH + tick))


def spec_problems(struct: dict) -> list[str]:
    """The pipeline_spec struct, parsed strictly into kfp's protobufs (unknown fields are errors)."""
    from google.protobuf import json_format
    from kfp.pipeline_spec import pipeline_spec_pb2

    parts = [(struct, pipeline_spec_pb2.PipelineSpec())]
    if "pipeline_spec" in struct:
        parts = [(struct["pipeline_spec"], pipeline_spec_pb2.PipelineSpec())]
        if "platform_spec" in struct:
            parts.append((struct["platform_spec"], pipeline_spec_pb2.PlatformSpec()))
    out = []
    for doc, message in parts:
        try:
            json_format.ParseDict(doc, message)
        except json_format.ParseError as exc:
            out.append(f"pipeline_spec: not a {type(message).__name__}: {exc}")
    return out


class Plan:
    """The scripted run: executed tasks (loops expanded), each Running for one tick then finished."""

    def __init__(self, spec: dict, fail: set[str], skip: set[str]) -> None:
        self.spec = spec.get("pipeline_spec", spec)
        self.rows: list[dict] = []  # name, start, outcome
        self._walk(self.spec["root"]["dag"]["tasks"], 1, fail, skip)
        self.last = max((r["start"] + 1 for r in self.rows), default=1)

    def _walk(self, tasks: dict, start: int, fail: set[str], skip: set[str]) -> tuple[int, bool]:
        """Rows for the executed tasks of one DAG from tick `start`; (its end tick, whether a task failed).
        A task after a failed one never runs (it has no task detail), as on KFP."""
        end: dict[str, int] = {}
        bad: set[str] = set()
        for name in self._order(tasks):
            task = tasks[name]
            deps = task.get("dependentTasks", [])
            begin = max((end[d] for d in deps if d in end), default=start)
            end[name] = begin
            if bad & set(deps):
                bad.add(name)
                continue
            comp = self.spec["components"][task["componentRef"]["name"]]
            if "dag" in comp:
                ran = [self._walk(comp["dag"]["tasks"], begin, fail, skip) for _ in range(self._count(task))]
                end[name] = max([e for e, _ in ran] or [begin])
                bad |= {name} if any(f for _, f in ran) else set()
                continue
            outcome = "FAILED" if name in fail else "SKIPPED" if name in skip else "SUCCEEDED"
            self.rows.append({"name": name, "start": begin, "outcome": outcome})
            end[name] = begin + 1
            bad |= {name} if outcome == "FAILED" else set()
        return max(end.values(), default=start), bool(bad)

    @staticmethod
    def _order(tasks: dict) -> list[str]:
        done: list[str] = []
        while len(done) < len(tasks):
            done += [n for n in tasks if n not in done and all(d in done for d in tasks[n].get("dependentTasks", []))][
                :1
            ]
        return done

    @staticmethod
    def _count(task: dict) -> int:
        raw = (task.get("parameterIterator") or {}).get("items", {}).get("raw")
        return len(json.loads(raw)) if raw else 1 if "parameterIterator" not in task else 2


class KfpStandin(Standin):
    api = API

    def __init__(self, token: str | None = None, fail: set[str] | None = None, skip: set[str] | None = None) -> None:
        super().__init__(token)
        self.fail, self.skip = fail or set(), skip or set()
        self.experiments: list[dict] = []
        self.runs: dict[str, dict] = {}
        self.plans: dict[str, Plan] = {}
        self.ticks: dict[str, int] = {}
        self.logs: dict[str, str] = {}
        self.pods = itertools.count(1000)

    def extra_routes(self) -> list[Route]:
        return [Route("/apis/v1alpha1/runs/{run_id}/nodes/{node_id}/log", self._log, methods=["GET"])]

    # --- operations (by operationId) -------------------------------------------------------------------

    def op_HealthzService_GetHealthz(self, pp: dict, query: dict, body: Any) -> tuple[int, Any]:
        return 200, {"multi_user": False, "pipeline_store": "database"}

    def op_ExperimentService_ListExperiments(self, pp: dict, query: dict, body: Any) -> tuple[int, Any]:
        found = self.experiments
        for pred in json.loads((query.get("filter") or ["{}"])[0] or "{}").get("predicates", []):
            found = [e for e in found if e.get(pred["key"]) == pred.get("string_value", pred.get("stringValue"))]
        return 200, {"experiments": found, "total_size": len(found)} if found else {}

    def op_ExperimentService_CreateExperiment(self, pp: dict, query: dict, body: dict) -> tuple[int, Any]:
        exp = body | {"experiment_id": str(uuid.uuid4()), "created_at": rfc3339(0), "storage_state": "AVAILABLE"}
        self.experiments.append(exp)
        return 200, exp

    def op_RunService_CreateRun(self, pp: dict, query: dict, body: dict) -> tuple[int, Any]:
        problems = spec_problems(body.get("pipeline_spec") or {}) + self._parameter_problems(body)
        if problems:
            self.violations += problems
            return 400, {"code": 3, "message": "; ".join(problems)[:500], "details": []}
        run_id = str(uuid.uuid4())
        run = body | {"run_id": run_id, "created_at": rfc3339(0), "scheduled_at": rfc3339(0), "state": "PENDING"}
        run |= {"finished_at": rfc3339(None), "storage_state": "AVAILABLE"}
        self.runs[run_id] = run
        self.plans[run_id] = Plan(body["pipeline_spec"], self.fail, self.skip)
        self.ticks[run_id] = -1
        return 200, run

    def _parameter_problems(self, body: dict) -> list[str]:
        struct = body.get("pipeline_spec") or {}
        spec = struct.get("pipeline_spec", struct)
        declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
        out = []
        for name, value in ((body.get("runtime_config") or {}).get("parameters") or {}).items():
            if name not in declared:
                out.append(f"runtime_config.parameters.{name}: not an input of the pipeline")
            elif not TYPES.get(declared[name].get("parameterType", "STRING"), lambda v: True)(value):
                out.append(f"runtime_config.parameters.{name}: {value!r} is not {declared[name]['parameterType']}")
        return out

    def op_RunService_GetRun(self, pp: dict, query: dict, body: Any) -> tuple[int, Any]:
        run_id = pp["run_id"]
        if run_id not in self.runs:
            return 404, {"code": 5, "message": f"Failed to get run: run {run_id} not found", "details": []}
        self.ticks[run_id] += 1
        return 200, self._status(run_id, self.ticks[run_id])

    # --- the scripted status ----------------------------------------------------------------------------

    def _status(self, run_id: str, tick: int) -> dict:
        run, plan = copy.deepcopy(self.runs[run_id]), self.plans[run_id]
        if tick == 0:
            return run
        details = []
        for i, row in enumerate(plan.rows):
            if row["start"] <= tick:
                details.append(self._detail(run_id, i, row, tick))
        over = tick >= plan.last
        failed = any(r["outcome"] == "FAILED" for r in plan.rows)
        run["state"] = ("FAILED" if failed else "SUCCEEDED") if over else "RUNNING"
        if over:
            run["finished_at"] = rfc3339(plan.last)
        if over and failed:
            run["error"] = {"code": 2, "message": "a task failed", "details": []}
        run["run_details"] = {"task_details": details}
        return run

    def _detail(self, run_id: str, i: int, row: dict, tick: int) -> dict:
        done = tick > row["start"]
        pod = f"{row['name']}-{run_id[:8]}-system-container-impl-{i}"
        state = row["outcome"] if done else "RUNNING"
        if done and row["outcome"] != "SKIPPED":
            lines = [f"{row['name']}: executed"]
            lines += (
                ["Traceback (most recent call last):", "RuntimeError: scripted failure"] if state == "FAILED" else []
            )
            self.logs[pod] = "\n".join(lines) + "\n"
        detail = {"run_id": run_id, "task_id": f"task-{i:04d}", "display_name": row["name"], "pod_name": pod}
        detail |= {"create_time": rfc3339(row["start"]), "start_time": rfc3339(row["start"]), "state": state}
        detail["end_time"] = rfc3339(row["start"] + 1 if done else None)
        if state == "FAILED":
            detail["error"] = {"code": 2, "message": "exit status 1", "details": []}
        return detail

    # --- the log route (not in the swagger) --------------------------------------------------------------

    async def _log(self, request: Request) -> Response:
        await self.record(request)
        if not self.authorized(request):
            return JSONResponse({"code": 16, "message": "token not valid", "details": []}, status_code=401)
        run_id, pod = request.path_params["run_id"], request.path_params["node_id"]
        if run_id not in self.runs or pod not in self.logs:
            err = f"Failed to read logs for run {run_id}: pod {pod} not found"
            return JSONResponse({"error_message": err, "error_details": err}, status_code=200)
        return PlainTextResponse(self.logs[pod])
