"""Template-level Prometheus metrics: what the controller emits for a template's node (argo-workflows v4.1).

Takes the replay's context, a node and its processed template; records each gauge the controller would
set in `ctx.gauges` ((name, labels) -> value) and each emission error in `ctx.metric_errors` (the
workflow's MetricsError condition). Rules:

- when (`workflow/controller/operator.go` executeTemplate): once a node is fulfilled during this
  operation; for a Retry node, from the retry node with the last attempt's outputs (Argo also emits
  for each attempt fulfilled before the retry node is: a gauge is Set, so the replay keeps only the
  last); a memoization hit is created fulfilled and `handleNodeFulfilled` emits nothing for it;
- the scope (`workflow/controller/steps.go` prepareDefaultMetricScope, prepareMetricScope): the global
  parameters, `duration`, `status` (the node's phase), `retries`, `inputs.parameters.*`,
  `outputs.parameters.*`, `outputs.result`, `exitCode`;
- computeMetrics (`operator.go`): no `help` is an error; the metric, marshalled to JSON, is substituted
  with unresolved tags refused (an output a failed node never had is an error, before `when`), then its
  `when` is evaluated (govaluate), then the value is substituted again and parsed as a float
  (`workflow/metrics/metrics_custom.go` UpsertCustomMetric: strconv.ParseFloat; `IsValidMetricName`
  first, `workflow/metrics/util.go`). A gauge is set (operation Set), one value per label set.
"""

from __future__ import annotations

import json
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.govaluate import WhenError, should_execute
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.template import ReplaceError, replace

NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def emit(ctx: Ctx, node: Node, tmpl: dict[str, Any]) -> None:
    """The node's template metrics, if it is fulfilled and its template has any."""
    metrics = (tmpl.get("metrics") or {}).get("prometheus") or []
    if not metrics or not node.fulfilled or node.memoized:
        return
    scope = _scope(ctx, node, tmpl)
    for metric in metrics:
        error = _gauge(ctx, metric, scope)
        if error:
            ctx.metric_errors.append(error)


def _scope(ctx: Ctx, node: Node, tmpl: dict[str, Any]) -> dict[str, Any]:
    scope: dict[str, Any] = dict(ctx.globals)
    scope |= {"duration": f"{max(node.finished - node.started, 0.0):f}", "status": node.phase}
    scope |= {"resourcesDuration.cpu": "0", "resourcesDuration.memory": "0"}
    if node.children:
        scope["retries"] = str(len(node.children) - 1)
    for param in (tmpl.get("inputs") or {}).get("parameters") or []:
        scope[f"inputs.parameters.{param['name']}"] = gojson.any_string(param.get("value", ""))
    if node.result is not None:
        scope["outputs.result"] = node.result
    if node.exit_code is not None:
        scope["exitCode"] = node.exit_code
    for name, value in (node.outputs or {}).items():
        scope[f"outputs.parameters.{name}"] = value
    return scope


def _gauge(ctx: Ctx, metric: dict[str, Any], scope: dict[str, Any]) -> str | None:
    """Set one gauge; an error message instead when the controller would report one."""
    name = metric.get("name", "")
    if not metric.get("help"):
        return f"metric '{name}' must contain a help string under 'help: ' field"
    try:
        done = json.loads(replace(gojson.marshal_ordered(metric), scope, allow_unresolved=False))
    except ReplaceError as err:
        return f"unable to substitute parameters for metric '{name}': {err}"
    try:
        if not should_execute(done.get("when", "")):
            return None
    except WhenError as err:
        return f"unable to compute 'when' clause for metric: {err}"
    if "gauge" not in done:
        return f"not replayed: metric '{name}' is not a gauge"
    if not done["name"] or done["name"][0].isdigit() or not set(done["name"]) <= NAME_CHARS:
        return f"could not construct metric '{name}': metric name is invalid"
    try:
        value = float(done["gauge"]["value"])  # strconv.ParseFloat: also NaN, +Inf, -Inf
    except ValueError as err:
        return f"could not construct metric '{name}': {err}"
    labels = tuple(sorted((label["key"], label["value"]) for label in done.get("labels") or []))
    ctx.gauges[(done["name"], labels)] = value
    return None
