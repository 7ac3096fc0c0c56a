"""DAG templates (argo-workflows v4.1.2 `workflow/controller/dag.go`, `workflow/common/ancestry.go`,
`workflow/controller/steps.go` shouldExecute, `docs/enhanced-depends-logic.md`).

- Dependencies (ancestry.go GetTaskDependencies): names found in `depends` (or `dependencies`, each
  `(X.Succeeded || X.Skipped || X.Daemoned)`) by Argo's regex; a bare name `X` is expanded the same
  way plus `|| X.Errored` / `|| X.Failed` when X has `continueOn.error` / `.failed` (expandDependency).
- A task is considered once all its dependencies are fulfilled; its `depends` is evaluated by expr with
  each dependency's TaskResults (Succeeded, Failed, Errored, Skipped, Omitted, Daemoned, AnySucceeded,
  AllFailed; `-` in names becomes `_`); false makes it Omitted.
- resolveDependencyReferences: `when` is substituted first (tags of `tasks.*` must resolve) and, when
  govaluate says false, the task is not otherwise resolved; then the task is substituted with strict
  `tasks`/`steps` tags, after arguments that purely reference an absent optional are replaced by
  Argo's sentinel. A reference that cannot resolve is requeued by the controller for ever: the replay
  records it and the DAG stays Running.
- Fan-out (`scope.expand`) makes a TaskGroup node whose children are the instances; an instance whose
  `when` is false is Skipped; the group is Succeeded unless a child Failed/Errored (its phase then).
  An empty fan-out is one Skipped node ("Skipped, empty params").
- Node graph and DAG phase: `graph.py`. Replay order: the ready tasks start as a wave, one after
  the other; the DAG phase is assessed between waves, so with failFast no task starts after a wave
  with a failure.
- A succeeded DAG takes its `outputs` from its tasks (`scope.outputs`).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from typing import Any

from tests.argo_replay import gojson, scope
from tests.argo_replay.expr import ExprError, parse
from tests.argo_replay.exprrun import evaluate
from tests.argo_replay.govaluate import WhenError, should_execute
from tests.argo_replay.graph import assess, outbound
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.template import ABSENT, ReplaceError, replace_strict

TASK_NAME = re.compile(r"([a-zA-Z0-9][-a-zA-Z0-9]*?\.[A-Z][a-zA-Z]+)|([a-zA-Z0-9][-a-zA-Z0-9]*)")


def _expand_dependency(name: str, task: dict[str, Any]) -> str:
    results = ["Succeeded", "Skipped", "Daemoned"]
    cont = task.get("continueOn") or {}
    results += ["Errored"] * bool(cont.get("error")) + ["Failed"] * bool(cont.get("failed"))
    return "(" + " || ".join(f"{name}.{r}" for r in results) + ")"


class Dag:
    def __init__(self, ctx: Ctx, node: Node, tmpl: dict[str, Any], execute: Callable[..., Node]) -> None:
        self.ctx, self.node, self.tmpl, self.execute = ctx, node, tmpl, execute
        self.tasks = {t["name"]: t for t in tmpl["dag"].get("tasks") or []}
        self.deps: dict[str, list[str]] = {}
        self.logic: dict[str, str] = {}
        for name, task in self.tasks.items():
            logic = task.get("depends") or " && ".join(
                _expand_dependency(d, self._task(d)) for d in task.get("dependencies") or []
            )
            deps, bare = {}, []
            for m in TASK_NAME.finditer(logic):
                deps[(m.group(1) or m.group(2)).split(".")[0]] = True
                if m.group(2):
                    bare.append(m)
            for m in reversed(bare):
                logic = logic[: m.start()] + _expand_dependency(m.group(2), self._task(m.group(2))) + logic[m.end() :]
            self.deps[name], self.logic[name] = list(deps), logic
        self.blocked: set[str] = set()

    def _task(self, name: str) -> dict[str, Any]:
        if name not in self.tasks:
            raise ReplaceError(f"target {name} does not exist")
        return self.tasks[name]

    def task_node(self, name: str) -> Node | None:
        return self.ctx.get(f"{self.node.name}.{name}")

    def ready(self, name: str) -> bool:
        return all((n := self.task_node(d)) is not None and n.fulfilled for d in self.deps[name])

    def connect(self, name: str, child: str, group: Node | None = None) -> None:
        if not self.deps[name] or group is not None:
            self.ctx.add_child(group.name if group else self.node.name, child)
            return
        for dep in self.deps[name]:
            for out in outbound(self.ctx, self.task_node(dep).id):
                self.ctx.add_child(self.ctx.nodes[out].name, child)

    def leaf(self, name: str, phase: str, message: str) -> None:
        node_name = f"{self.node.name}.{name}"
        self.connect(name, node_name)
        self.ctx.new_node(node_name, "Skipped", self.tasks[name].get("template"), self.node.id, phase, message)

    def ancestry(self, name: str) -> list[str]:
        out: list[str] = []

        def walk(task: str) -> None:
            for dep in self.deps[task]:
                if dep not in out:
                    walk(dep)
                    if dep not in out:
                        out.append(dep)

        walk(name)
        return out

    def scope(self, name: str) -> tuple[dict[str, Any], set[str]]:
        values: dict[str, Any] = {
            f"inputs.parameters.{p['name']}": gojson.any_string(p.get("value"))
            for p in (self.tmpl.get("inputs") or {}).get("parameters") or []
        }
        skipped: set[str] = set()
        for anc in self.ancestry(name):
            node = self.task_node(anc)
            if node.type == "TaskGroup":
                kids = [
                    n
                    for n in self.ctx.nodes.values()
                    if n.boundary == self.node.id and n.name.startswith(node.name + "(")
                ]
                scope.aggregate(values, anc, kids)
            scope.put_node(self.ctx, values, anc, node)
            scope.put_skipped(self.ctx, values, skipped, anc, node, self.tasks[anc].get("template", ""))
        return values, skipped

    def depends(self, name: str) -> bool:
        env = {}
        for dep in self.deps[name]:
            node = self.task_node(dep)
            kids = [self.ctx.nodes[c] for c in node.children] if node.type == "TaskGroup" else []
            env[dep.replace("-", "_")] = {
                "Succeeded": node.phase == "Succeeded",
                "Failed": node.phase == "Failed",
                "Errored": node.phase == "Error",
                "Skipped": node.phase == "Skipped",
                "Omitted": node.phase == "Omitted",
                "Daemoned": False,
                "AnySucceeded": any(k.phase == "Succeeded" for k in kids),
                "AllFailed": bool(kids) and all(k.phase == "Failed" for k in kids),
            }
        logic = self.logic[name].replace("-", "_")
        try:
            result = evaluate(parse(logic), env)
        except ExprError as err:
            raise ReplaceError(f"unable to evaluate expression '{logic}': {err}") from None
        if not isinstance(result, bool):
            raise ReplaceError(
                f"unable to evaluate expression '{logic}': unable to cast expression result '{result}' to bool"
            )
        return result

    def resolve(self, name: str) -> dict[str, Any]:
        """resolveDependencyReferences; ReplaceError (missing: requeued for ever)."""
        task = copy.deepcopy(self.tasks[name])
        values, skipped = self.scope(name)
        merged = {**self.ctx.globals, **values}
        if task.get("when"):
            when = json.loads(replace_strict(gojson.marshal(task["when"]), merged, ["tasks", "steps"]))
            try:
                if not should_execute(when):
                    return {**task, "when": when}
            except WhenError:
                if not (task.get("withItems") or task.get("withParam") or task.get("withSequence") is not None):
                    raise
        for p in (task.get("arguments") or {}).get("parameters") or []:
            v = p.get("value")
            if (
                isinstance(v, str)
                and v.startswith("{{")
                and v.endswith("}}")
                and "{{" not in v[2:-2]
                and "}}" not in v[2:-2]
                and v[2:-2].strip() in skipped
            ):
                p["value"] = ABSENT
        return json.loads(replace_strict(gojson.marshal_ordered(task), merged, ["tasks", "steps"]))

    def run_task(self, name: str) -> None:
        task, node_name = self.tasks[name], f"{self.node.name}.{name}"
        if task.get("templateRef") or task.get("inline"):
            return self.leaf(name, "Error", "not replayed: templateRef / inline templates")
        try:
            if self.logic[name] and not self.depends(name):
                return self.leaf(name, "Omitted", "omitted: depends condition not met")
            resolved = self.resolve(name)
            expanded = scope.expand(resolved, {**self.ctx.globals, **self.scope(name)[0]})
        except (ReplaceError, WhenError) as err:
            if isinstance(err, ReplaceError) and err.missing:
                self.ctx.hangs.append(f"{node_name}: Argo requeues the task for ever: {err}")
                self.blocked.add(name)
                return None
            return self.leaf(name, "Error", str(err))
        fanned = bool(task.get("withItems") or task.get("withParam") or task.get("withSequence") is not None)
        group = None
        if fanned:
            if not expanded:
                return self.leaf(name, "Skipped", "Skipped, empty params")
            self.connect(name, node_name)
            group = self.ctx.new_node(node_name, "TaskGroup", task.get("template"), self.node.id, "Running")
        keep = scope.result_referenced(self.tmpl, name)
        for child_name, t, item, index in expanded:
            full = f"{self.node.name}.{child_name}"
            self.connect(name, full, group)
            try:
                run, message = should_execute(t.get("when", "")), f"when '{t.get('when')}' evaluated false"
            except WhenError as err:
                run, message = None, str(err)
            if not run:
                phase = "Error" if run is None else "Skipped"
                node = self.ctx.new_node(full, "Skipped", t.get("template"), self.node.id, phase, message)
            else:
                node = self.execute(
                    self.ctx,
                    full,
                    t.get("template", ""),
                    t.get("arguments") or {},
                    self.node.id,
                    task=child_name,
                    keep_result=keep,
                )
            if fanned:
                node.item, node.index = item, index
        if group is not None:
            kids = [self.ctx.nodes[c] for c in group.children]
            bad = [k.phase for k in kids if k.failed_or_error]
            if all(k.fulfilled for k in kids):
                self.ctx.finish(group, bad[-1] if bad else "Succeeded")
        return None


def execute_dag(ctx: Ctx, node: Node, tmpl: dict[str, Any], execute: Callable[..., Node]) -> None:
    """Run a DAG template as `node`; `execute` is operator.execute_template (for its tasks)."""
    try:
        d = Dag(ctx, node, tmpl, execute)
    except ReplaceError as err:
        ctx.finish(node, "Error", str(err))
        return
    target = tmpl["dag"].get("target")
    targets = target.split(" ") if target else sorted(n for n in d.tasks if not any(n in d.deps[m] for m in d.tasks))
    fail_fast = tmpl["dag"].get("failFast", True) is not False
    node.phase = "Running"
    while assess(ctx, node, d.tasks, targets, fail_fast) not in ("Failed", "Error") or not fail_fast:
        wave = [n for n in d.tasks if d.task_node(n) is None and n not in d.blocked and d.ready(n)]
        if not wave:
            break
        for name in wave:
            d.run_task(name)
    phase = assess(ctx, node, d.tasks, targets, fail_fast)
    if phase == "Running":
        node.message = "replay: the DAG never completes (a task waits for ever)"
        return
    node.outbound = [o for t in targets if (n := d.task_node(t)) is not None for o in outbound(ctx, n.id)]
    if phase != "Succeeded":
        ctx.finish(node, phase)
        return
    values: dict[str, Any] = {
        f"inputs.parameters.{p['name']}": gojson.any_string(p.get("value"))
        for p in (tmpl.get("inputs") or {}).get("parameters") or []
    }
    skipped: set[str] = set()
    try:
        for name, task in d.tasks.items():
            tnode = d.task_node(name)
            if tnode is None:
                continue
            if tnode.type == "TaskGroup":
                scope.aggregate(values, name, [ctx.nodes[c] for c in tnode.children])
            scope.put_node(ctx, values, name, tnode)
            scope.put_skipped(ctx, values, skipped, name, tnode, task.get("template", ""))
        node.outputs = scope.outputs(tmpl, values, skipped)
    except ReplaceError as err:
        ctx.finish(node, "Error", str(err))
        return
    ctx.finish(node, "Succeeded")
