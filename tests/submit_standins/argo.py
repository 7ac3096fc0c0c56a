"""A stand-in Argo Server (API v4.1.2): creates workflows and plays a scripted run of each one.

Takes what dmlc sends (checked against specs/argo-v4.1.2.swagger.trimmed.json by `Standin`) and gives
what an Argo Server answers: the created Workflow (a name from `generateName`), then on each GET the
next moment of a scripted run built from the workflow's own DAG: Pending, then each task Running and
Succeeded level by level, with Argo's node shapes (the root DAG node, a TaskGroup with one Pod per
`withItems` item named `task(i:item)`, a Retry node whose Pods are `task(0)`, `task(1)`, Skipped and
Omitted nodes, memoization hits), node ids `<wf>-<fnv32a(node name)>`, and pod logs keyed by Argo's
v2 pod names, streamed as the log endpoint does (one `{"result": {...}}` JSON object per line).
Errors as the Argo Server gives them: 401 without the token, 404 for an unknown namespace or workflow.
Options: `fail` {task: item indexes, or None for all}, `retry` (tasks whose first attempt fails),
`cached`, `skip` (a false `when`), `refuse` (a message every create is refused with, 400).
"""

from __future__ import annotations

import copy
import re
import time
from functools import reduce
from typing import Any

from tests.submit_standins.openapi import Api
from tests.submit_standins.server import Standin

API = Api("argo-v4.1.2.swagger.trimmed.json")
EPOCH = time.time()


def fnv32a(text: str) -> int:
    return reduce(lambda h, b: ((h ^ b) * 16777619) % 2**32, text.encode(), 2166136261)


def rfc3339(tick: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(EPOCH + tick))


class Script:
    """The run of one workflow, tick by tick: each task's start and end tick and how it ends."""

    def __init__(self, wf: dict, fail: dict, retry: set, cached: set, skip: set) -> None:
        self.name = wf["metadata"]["name"]
        spec = wf["spec"]
        self.entry = spec["entrypoint"]
        templates = {t["name"]: t for t in spec["templates"]}
        self.tasks = {t["name"]: t for t in templates[self.entry].get("dag", {}).get("tasks", [])}
        self.fail, self.retry, self.cached, self.skip = fail, retry, cached, skip
        self.start: dict[str, int] = {}
        self.end: dict[str, int] = {}
        self.outcome: dict[str, str] = {}
        for task in self._order():
            self._plan(task)
        self.last = max(self.end.values(), default=1)

    def _deps(self, task: str) -> list[str]:
        words = re.findall(r"[A-Za-z0-9-]+", self.tasks[task].get("depends", "") or "")
        return [w for w in words if w in self.tasks and w != task]

    def _order(self) -> list[str]:
        done: list[str] = []
        while len(done) < len(self.tasks):
            done += [t for t in self.tasks if t not in done and all(d in done for d in self._deps(t))][:1]
        return done

    def _plan(self, task: str) -> None:
        deps = self._deps(task)
        self.start[task] = max((self.end[d] for d in deps), default=1)
        if any(self.outcome[d] in ("Failed", "Omitted") for d in deps):
            self.outcome[task], self.end[task] = "Omitted", self.start[task]
        elif task in self.skip:
            self.outcome[task], self.end[task] = "Skipped", self.start[task]
        else:
            self.end[task] = self.start[task] + (2 if task in self.retry else 1)
            self.outcome[task] = "Failed" if task in self.fail else "Succeeded"

    def items(self, task: str) -> list[Any] | None:
        t = self.tasks[task]
        if "withItems" in t:
            return t["withItems"]
        return ["a", "b"] if "withParam" in t else None

    def phase(self, tick: int) -> str:
        if tick == 0:
            return "Pending"
        if tick < self.last:
            return "Running"
        return "Failed" if "Failed" in self.outcome.values() else "Succeeded"


class ArgoStandin(Standin):
    api = API

    def __init__(
        self,
        token: str | None = None,
        namespaces: tuple[str, ...] | None = ("argo",),
        fail: dict[str, Any] | None = None,
        retry: set[str] | None = None,
        cached: set[str] | None = None,
        skip: set[str] | None = None,
        refuse: str | None = None,
    ) -> None:
        super().__init__(token)
        self.refuse = refuse  # a message: every create is refused with it (400), as by an admission webhook
        self.namespaces = namespaces
        self.options = (fail or {}, retry or set(), cached or set(), skip or set())
        self.workflows: dict[tuple[str, str], dict] = {}
        self.scripts: dict[tuple[str, str], Script] = {}
        self.ticks: dict[tuple[str, str], int] = {}
        self.logs: dict[str, list[str]] = {}
        self.created = 0

    def _namespace_missing(self, ns: str) -> tuple[int, dict] | None:
        if self.namespaces is None or ns in self.namespaces:
            return None
        return 404, {"code": 5, "message": f'namespaces "{ns}" not found'}

    # --- operations (by operationId) -------------------------------------------------------------------

    def op_WorkflowService_CreateWorkflow(self, pp: dict, query: dict, body: dict) -> tuple[int, Any]:
        return self._create(pp["namespace"], body["workflow"], cron=False)

    def op_CronWorkflowService_CreateCronWorkflow(self, pp: dict, query: dict, body: dict) -> tuple[int, Any]:
        return self._create(pp["namespace"], body["cronWorkflow"], cron=True)

    def _create(self, ns: str, wf: dict, cron: bool) -> tuple[int, Any]:
        missing = self._namespace_missing(ns)
        if missing:
            return missing
        if self.refuse:
            return 400, {"code": 3, "message": self.refuse}
        meta = wf.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            return 400, {"code": 3, "message": "the namespace of the object does not match the request's"}
        self.created += 1
        name = meta.get("name") or f"{meta.get('generateName', 'wf-')}{self.created:05x}"
        meta |= {"name": name, "namespace": ns, "uid": f"uid-{self.created}", "creationTimestamp": rfc3339(0)}
        meta.pop("generateName", None)
        self.workflows[(ns, name)] = wf
        if not cron:
            self.scripts[(ns, name)] = Script(wf, *self.options)
            self.ticks[(ns, name)] = -1
        return 200, wf

    def op_WorkflowService_GetWorkflow(self, pp: dict, query: dict, body: Any) -> tuple[int, Any]:
        key = (pp["namespace"], pp["name"])
        if key not in self.scripts:
            return self._namespace_missing(key[0]) or self._not_found("workflows", key[1])
        self.ticks[key] += 1
        wf = copy.deepcopy(self.workflows[key])
        wf["status"] = self._status(self.scripts[key], self.ticks[key])
        return 200, wf

    def op_CronWorkflowService_GetCronWorkflow(self, pp: dict, query: dict, body: Any) -> tuple[int, Any]:
        key = (pp["namespace"], pp["name"])
        if key not in self.workflows or key in self.scripts:
            return self._namespace_missing(key[0]) or self._not_found("cronworkflows", key[1])
        wf = copy.deepcopy(self.workflows[key])
        wf["status"] = {"active": [], "lastScheduledTime": rfc3339(60), "phase": "Active"}
        return 200, wf

    def op_WorkflowService_WorkflowLogs(self, pp: dict, query: dict, body: Any) -> tuple[int, Any]:
        key = (pp["namespace"], pp["name"])
        if key not in self.scripts:
            return self._namespace_missing(key[0]) or self._not_found("workflows", key[1])
        pods = query.get("podName", [])
        lines = []
        for pod in pods or list(self.logs):
            for content in self.logs.get(pod, []):
                lines.append({"result": {"content": content, "podName": pod}})
        op, _ = self.api.match("GET", f"/api/v1/workflows/{key[0]}/{key[1]}/log")
        for line in lines:
            self.violations += [f"stand-in log line: {p}" for p in self.api.answer(op, 200, line)]  # type: ignore[arg-type]
        import json

        return 200, "".join(json.dumps(line) + "\n" for line in lines)

    def _not_found(self, kind: str, name: str) -> tuple[int, dict]:
        return 404, {"code": 5, "message": f'{kind}.argoproj.io "{name}" not found'}

    # --- the scripted status ----------------------------------------------------------------------------

    def _status(self, script: Script, tick: int) -> dict:
        phase = script.phase(tick)
        status: dict[str, Any] = {"phase": phase, "startedAt": rfc3339(0)}
        if phase in ("Failed", "Succeeded"):
            status["finishedAt"] = rfc3339(script.last)
            failed = [t for t, o in script.outcome.items() if o == "Failed"]
            if failed:
                status["message"] = f"child '{self._id(script, f'{script.name}.{failed[0]}')}' failed"
        if tick == 0:
            return status
        nodes: dict[str, dict] = {}
        root = self._node(
            script, script.name, script.name, "DAG", script.entry, "Running" if tick < script.last else phase, 0, None
        )
        root["displayName"] = script.name
        nodes[root["id"]] = root
        for task in script.tasks:
            if script.start[task] <= tick:
                root["children"].append(self._task(script, task, tick, nodes))
        if phase in ("Failed", "Succeeded"):
            root["finishedAt"] = rfc3339(script.last)
        status["nodes"] = nodes
        return status

    def _id(self, script: Script, name: str) -> str:
        return script.name if name == script.name else f"{script.name}-{fnv32a(name)}"

    def _node(
        self, script: Script, name: str, display: str, kind: str, template: str, phase: str, start: int, end: int | None
    ) -> dict:
        node = {"id": self._id(script, name), "name": name, "displayName": display, "type": kind, "phase": phase}
        node |= {"templateName": template, "boundaryID": script.name, "children": [], "startedAt": rfc3339(start)}
        if end is not None:
            node["finishedAt"] = rfc3339(end)
        return node

    def _task(self, script: Script, task: str, tick: int, nodes: dict) -> str:
        t, name = script.tasks[task], f"{script.name}.{task}"
        start, end, outcome = script.start[task], script.end[task], script.outcome[task]
        if outcome in ("Omitted", "Skipped"):
            node = self._node(script, name, task, "Skipped", t["template"], outcome, start, end)
            node["message"] = (
                "omitted: depends condition not met" if outcome == "Omitted" else "when 'false' evaluated false"
            )
            nodes[node["id"]] = node
            return node["id"]
        items = script.items(task)
        if items is None:
            return self._instance(script, task, name, task, tick, nodes, None)
        done = tick >= end
        group = self._node(script, name, task, "TaskGroup", t["template"], "Running", start, end if done else None)
        for i, item in enumerate(items):
            shown = item if isinstance(item, str) else str(item)
            group["children"].append(
                self._instance(script, task, f"{name}({i}:{shown})", f"{task}({i}:{shown})", tick, nodes, i)
            )
        group["phase"] = self._ended(script, task, tick, None) if done else "Running"
        nodes[group["id"]] = group
        return group["id"]

    def _ended(self, script: Script, task: str, tick: int, index: int | None) -> str:
        if tick < script.end[task]:
            return "Running"
        if task not in script.fail:
            return "Succeeded"
        bad = script.fail[task]
        return "Failed" if bad is None or index is None or index in bad else "Succeeded"

    def _instance(
        self, script: Script, task: str, name: str, display: str, tick: int, nodes: dict, index: int | None
    ) -> str:
        t, start, end = script.tasks[task], script.start[task], script.end[task]
        phase = self._ended(script, task, tick, index)
        if task not in script.retry:
            node = self._pod(script, name, display, t["template"], phase, start, end if tick >= end else None, 1)
            if task in script.cached and phase == "Succeeded":
                node["memoizationStatus"] = {"hit": True, "key": f"{task}-key", "cacheName": "memo"}
            nodes[node["id"]] = node
            return node["id"]
        retry = self._node(script, name, display, "Retry", t["template"], phase, start, end if tick >= end else None)
        first = self._pod(
            script,
            f"{name}(0)",
            f"{display}(0)",
            t["template"],
            "Failed" if tick > start else "Running",
            start,
            start + 1 if tick > start else None,
            1,
        )
        first["message"] = "Error (exit code 1)"
        retry["children"].append(first["id"])
        nodes[first["id"]] = first
        if tick > start:
            second = self._pod(
                script, f"{name}(1)", f"{display}(1)", t["template"], phase, start + 1, end if tick >= end else None, 2
            )
            retry["children"].append(second["id"])
            nodes[second["id"]] = second
        nodes[retry["id"]] = retry
        return retry["id"]

    def _pod(
        self,
        script: Script,
        name: str,
        display: str,
        template: str,
        phase: str,
        start: int,
        end: int | None,
        attempt: int,
    ) -> dict:
        node = self._node(script, name, display, "Pod", template, phase, start, end)
        if phase == "Failed":
            node["message"] = "Error (exit code 1)"
        pod = f"{script.name}-{template}-{fnv32a(name)}"
        lines = [f"{display}: attempt {attempt} of template {template}"]
        lines += (
            ["Traceback (most recent call last):", "ValueError: scripted failure"] if phase == "Failed" else ["done"]
        )
        self.logs[pod] = lines
        return node
