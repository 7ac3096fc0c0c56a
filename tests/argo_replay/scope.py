"""What a DAG task can read: `tasks.*` of its ancestors, fan-out aggregation, loop items
(argo-workflows v4.1.2).

- `build` = `workflow/controller/dag.go` buildLocalScopeFromTask with `operator.go` buildLocalScope
  (`tasks.X.id`, `.status`, `.startedAt`, `.finishedAt`, `.exitCode`, `.outputs.result`,
  `.outputs.parameters.P`; a Retry node is read through its last attempt) and `scope.go`
  addSkippedNodeOutputsToScope (a Skipped/Omitted ancestor's declared outputs are its
  `valueFrom.default` or an absent optional: None, which a simple tag refuses and `??` replaces).
- `aggregate` = processAggregateNodeOutputs: only Succeeded children, ordered by loop index;
  `tasks.X.outputs.parameters` is the JSON list of their parameter maps, `tasks.X.outputs.parameters.P`
  the `aggregatedJSONValueList` (a list of the values, or of the parsed JSON when every value is a JSON
  object or list), `tasks.X.outputs.result` the list of results (each must be JSON).
- `expand` = dag.go expandTask and operator.go processItem: `withItems`, `withParam` (a JSON list;
  numbers keep their text), `withSequence`; children `task(i:desc)`; `{{item}}` / `{{item.key}}`
  substituted with every other tag required (unless the task's `when` is false).
- `outputs` = getTemplateOutputsFromScope and wfScope.resolveParameter for a DAG's outputs.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.expr import ExprError, parse
from tests.argo_replay.exprenv import func_map
from tests.argo_replay.exprrun import evaluate, go_sprint
from tests.argo_replay.govaluate import WhenError, should_execute
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.template import MATCH_ALL, ReplaceError, replace_text


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def last_attempt(ctx: Ctx, node: Node) -> Node:
    if node.type == "Retry" and not node.memoized and node.children:
        return ctx.nodes[node.children[-1]]
    return node


def put_node(ctx: Ctx, values: dict[str, Any], name: str, node: Node) -> None:
    node = last_attempt(ctx, node)
    values[f"tasks.{name}.id"] = node.id
    values[f"tasks.{name}.startedAt"] = _stamp(node.started)
    if node.finished:
        values[f"tasks.{name}.finishedAt"] = _stamp(node.finished)
    values[f"tasks.{name}.status"] = node.phase
    if node.result is not None:
        values[f"tasks.{name}.outputs.result"] = node.result
    if node.exit_code is not None:
        values[f"tasks.{name}.exitCode"] = node.exit_code
    for key, value in (node.outputs or {}).items():
        values[f"tasks.{name}.outputs.parameters.{key}"] = value


def put_skipped(ctx: Ctx, values: dict[str, Any], skipped: set[str], name: str, node: Node, template: str) -> None:
    if node.outputs is not None or node.phase not in ("Skipped", "Omitted"):
        return
    for p in ((ctx.templates.get(template) or {}).get("outputs") or {}).get("parameters") or []:
        key = f"tasks.{name}.outputs.parameters.{p['name']}"
        default = (p.get("valueFrom") or {}).get("default")
        values[key] = gojson.any_string(default) if default is not None else None
        if default is None:
            skipped.add(key)


def _loop_index(node: Node) -> int:
    return int(node.name.split("(")[-1].split(":", 1)[0])


def aggregated(values: list[str]) -> str:
    parsed = []
    for v in values:
        try:
            x = json.loads(v)
        except json.JSONDecodeError:
            return gojson.marshal(values)
        if not isinstance(x, (list, dict)):
            return gojson.marshal(values)
        parsed.append(x)
    return gojson.marshal(parsed)


def aggregate(values: dict[str, Any], name: str, children: list[Node]) -> None:
    children = sorted((c for c in children if not c.retried), key=_loop_index)
    if not children:
        return
    params, lists, results = [], {}, []
    for c in children:
        if c.phase != "Succeeded":
            continue
        if c.outputs:
            params.append(dict(c.outputs))
            for key, value in c.outputs.items():
                lists.setdefault(key, []).append(value)
        if c.result is not None:
            try:
                results.append(gojson.loads_raw(c.result))
            except json.JSONDecodeError as err:
                raise ReplaceError(f"unable to aggregate the result of {c.name}: {err}") from None
    values[f"tasks.{name}.outputs.result"] = gojson.marshal(results)
    values[f"tasks.{name}.outputs.parameters"] = gojson.marshal(params)
    for key, items in lists.items():
        values[f"tasks.{name}.outputs.parameters.{key}"] = aggregated(items)


def item_text(item: Any) -> str:
    """Item.String(): a string item unquoted, anything else its compact JSON (jsonutil.Fix'ed)."""
    text = gojson.marshal(item)
    text = text[1:-1] if text.startswith('"') else text
    return text.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u0026", "&")


def _items(task: dict[str, Any]) -> list[Any] | None:
    if task.get("withItems"):
        return list(task["withItems"])
    if task.get("withParam"):
        try:
            items = gojson.loads_raw(task["withParam"])
            if not isinstance(items, list):
                raise json.JSONDecodeError(
                    "json: cannot unmarshal into Go value of type []v1alpha1.Item", task["withParam"], 0
                )
            return items
        except json.JSONDecodeError as err:
            try:
                run = should_execute(task.get("when", ""))
            except WhenError:
                run = True
            if run:
                raise ReplaceError(
                    f"withParam value could not be parsed as a JSON list: {task['withParam'].strip()}: {err}"
                ) from None
            return []
    seq = task.get("withSequence")
    if seq is not None:
        start = int(gojson.any_string(seq.get("start", 0)))
        if seq.get("end") is not None:
            end = int(gojson.any_string(seq["end"]))
        elif seq.get("count") is not None:
            count = int(gojson.any_string(seq["count"]))
            if count == 0:
                return []
            end = start + count - 1
        else:
            raise ReplaceError("neither end nor count was specified in withSequence")
        step = 1 if start <= end else -1
        return [(seq.get("format") or "%d") % i for i in range(start, end + step, step)]
    return None


def expand(task: dict[str, Any], values: dict[str, Any]) -> list[tuple[str, dict[str, Any], Any, int | None]]:
    """expandTask: (task name, task, item, index) of every instance; one untouched task without a loop."""
    items = _items(task)
    if items is None:
        return [(task["name"], task, None, None)]
    text = gojson.marshal_ordered(task)
    out = []
    for i, item in enumerate(items):
        scope = dict(values)
        if isinstance(item, dict):
            vals = []
            for k, v in item.items():
                scope[f"item.{k}"] = item_text(v)
                vals.append(f"{k}:{item_text(v)}")
            scope["item"], desc = gojson.marshal(item), ",".join(sorted(vals))
        elif isinstance(item, list):
            scope["item"], desc = gojson.marshal(item), "[" + " ".join(item_text(x) for x in item) + "]"
        elif isinstance(item, str) and not isinstance(item, gojson.RawNumber):
            scope["item"], desc = item, item_text(item)
        else:  # a number or a boolean: its JSON text
            scope["item"] = desc = item_text(item)
        try:
            lenient = not should_execute(task.get("when", ""))
        except WhenError:
            lenient = False
        if lenient:
            done = replace_text(text, {k: v for k, v in scope.items() if v is not None}, None, True)
        else:
            done = replace_text(text, scope, MATCH_ALL, False)
        try:
            new = json.loads(done)
        except json.JSONDecodeError as err:
            raise ReplaceError(str(err)) from None
        name = f"{task['name']}({i}:{desc.replace('(', '').replace(')', '')})"
        out.append((name, {**new, "name": name, "template": task.get("template")}, item, i))
    return out


def resolve(value_from: dict[str, Any], values: dict[str, Any], skipped: set[str]) -> tuple[Any, bool]:
    """wfScope.resolveParameter: (value, from an absent optional); ReplaceError when it does not resolve."""
    if value_from.get("expression"):
        try:
            result = evaluate(parse(value_from["expression"]), func_map(values))
        except ExprError as err:
            raise ReplaceError(str(err)) from None
        if result is None:
            raise ReplaceError(f"failed to evaluate expression {json.dumps(value_from['expression'])}")
        return result, False
    if not value_from.get("parameter"):
        return "", False
    tag = value_from["parameter"].strip()
    tag = tag[2:] if tag.startswith("{{") else tag
    tag = (tag[:-2] if tag.endswith("}}") else tag).strip()
    if tag.startswith("="):
        try:
            result = evaluate(parse(tag[1:]), values)
        except ExprError:
            raise ReplaceError(f"Invalid expression: {json.dumps(tag[1:])}") from None
        if result is None:
            raise ReplaceError(f"Unable to resolve: {json.dumps(tag)}")
        return result, False
    if tag not in values:
        raise ReplaceError(f"Unable to resolve: {json.dumps(tag)}")
    return values[tag], tag in skipped


def outputs(tmpl: dict[str, Any], values: dict[str, Any], skipped: set[str]) -> dict[str, str] | None:
    """getTemplateOutputsFromScope for parameters; ReplaceError like the controller's."""
    params = (tmpl.get("outputs") or {}).get("parameters") or []
    if not params:
        return None
    out = {}
    for p in params:
        vf = p.get("valueFrom")
        if vf is None:
            raise ReplaceError("output parameters must have a valueFrom specified")
        default = vf.get("default")
        try:
            value, absent = resolve(vf, values, skipped)
            if absent and default is not None:
                value = gojson.any_string(default)
        except ReplaceError:
            if default is None:
                raise
            value = gojson.any_string(default)
        if value is None:
            raise ReplaceError(
                f'output parameter "{p["name"]}": {json.dumps(vf.get("parameter", ""))} is an absent optional '
                "(skipped/omitted node output with no default)"
            )
        out[p["name"]] = value if isinstance(value, str) else go_sprint(value)
    return out


def result_referenced(dag_tmpl: dict[str, Any], task: str) -> bool:
    """hasOutputResultRef: the DAG reads `tasks.<task>.outputs.result`."""
    text, name = gojson.marshal_ordered(dag_tmpl), re.escape(task)
    return bool(
        re.search(rf"tasks\.{name}\.outputs\.result", text)
        or re.search(rf"tasks\[['\"]{name}['\"]\]\.outputs.result", text)
    )
