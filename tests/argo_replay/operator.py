"""Executing one template: inputs, memoization, retries (argo-workflows v4.1.2
`workflow/controller/operator.go` executeTemplate, processNodeRetries, buildRetryStrategyLocalScope;
`workflow/controller/cache/`; `docs/memoization.md`, `docs/retries.md`).

- Inputs: `common.ProcessArgs` (`template.py`) with the local tags `node.name`, `tasks.name` and, for a
  pod template without a retry strategy, `pod.name`. A failure makes an Error node ("Skipped" type).
- Memoization, before anything runs: the substituted `memoize.key` is looked up in the ConfigMap
  cache (`memo.py`; an invalid key is an Error); `maxAge` is a Go duration (`time.ParseDuration`:
  `24h`, not `1d`; a bad one is an Error "invalid maxAge: ..."). A fresh hit makes the node Succeeded
  with the cached outputs and runs nothing; a node that succeeds saves its outputs.
- Retries: the node becomes a Retry node with attempts `<name>(<n>)`, each substituted again with
  `retries`, `lastRetry.exitCode` ("0" before the first), `lastRetry.status`, `lastRetry.duration`,
  `lastRetry.message`, `pod.name`. After a failed attempt, in Go's order: backoff (`duration` x
  `factor`^(attempts-1), `cap`, `maxDuration`; a wait only happens when `limit` is set; the replay
  does not sleep, it records the wait and moves its clock), `retryPolicy` (Always, OnFailure (default
  without an expression), OnError, OnTransientError: only messages Argo's `util/errors/errors.go`
  deems transient, or matching the controller's TRANSIENT_ERROR_PATTERN), `limit` ("No more retries
  left"), `expression` on `retries`, `lastRetry.*` ("-1" exit code when there is none; durations in
  whole seconds, as stored timestamps are). The Retry node takes its last attempt's phase and outputs.
"""

from __future__ import annotations

import re
from typing import Any

from tests.argo_replay import gojson, metrics, pod, resource
from tests.argo_replay.dag import execute_dag
from tests.argo_replay.expr import ExprError, parse
from tests.argo_replay.exprenv import func_map
from tests.argo_replay.exprrun import evaluate
from tests.argo_replay.memo import MemoCache
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.template import ReplaceError, process_args, substitute_params

KINDS = ("container", "containerSet", "steps", "script", "resource", "dag", "suspend", "data", "http", "plugin")
POD_KINDS = ("container", "containerSet", "script", "resource", "data")
TRANSIENT = (
    "etcdserver: leader changed",
    "etcdserver: request timed out",
    "etcdserver: too many requests",
    "unexpected error when reading response body",
    "stream error when reading response body",
    "Connection closed by foreign host",
    "net/http: TLS handshake timeout",
    "i/o timeout",
    "connection timed out",
    "connection reset by peer",
    "http2: client connection lost",
    "http2: server sent GOAWAY and closed the connection",
    "request did not complete within requested timeout",
    "connect: connection refused",
    "invalid connection",
    "client rate limiter Wait returned an error",
    "upper: no more rows in",
)
MAX_ATTEMPTS = 50


def kind_of(tmpl: dict[str, Any]) -> str:
    return next((k for k in KINDS if tmpl.get(k) is not None), "")


def node_type(kind: str) -> str:
    return "Pod" if kind in POD_KINDS else {"dag": "DAG", "steps": "Steps", "suspend": "Suspend"}.get(kind, "Skipped")


def error_node(
    ctx: Ctx, name: str, template: str | None, boundary: str, message: str, node: Node | None = None
) -> Node:
    if node is not None:
        return ctx.finish(node, "Error", message)
    return ctx.new_node(name, "Skipped", template, boundary, "Error", message)


def _outputs_json(node: Node) -> dict[str, Any] | None:
    if node.outputs is None and node.exit_code is None:
        return None
    out: dict[str, Any] = {}
    if node.outputs is not None:
        out["parameters"] = [{"name": k, "value": v} for k, v in node.outputs.items()]
    if node.exit_code is not None:
        out["exitCode"] = node.exit_code
    return out


def save_memo(ctx: Ctx, node: Node) -> None:
    if node.memo and node.phase == "Succeeded" and not node.memoized:
        try:
            ctx.memo.save(node.memo[0], node.memo[1], node.id, _outputs_json(node))
        except ValueError as err:
            ctx.finish(node, "Error", str(err))


def execute_template(
    ctx: Ctx,
    name: str,
    template: str,
    args: dict[str, Any],
    boundary: str,
    *,
    task: str | None = None,
    keep_result: bool = False,
) -> Node:
    raw = ctx.templates.get(template)
    if raw is None:
        return error_node(ctx, name, template, boundary, f"template {template} not found")
    kind = kind_of(raw)
    strategy = raw.get("retryStrategy") or ctx.spec.get("retryStrategy")
    local = {"node.name": name}
    if kind in POD_KINDS and strategy is None:
        local["pod.name"] = ctx.pod_name(name, template)
    if task is not None:
        local["tasks.name"] = task
    try:
        processed = process_args(raw, args, ctx.globals, local)
    except ReplaceError as err:
        return error_node(ctx, name, template, boundary, str(err))
    node = None
    memo = processed.get("memoize")
    if memo:
        key, config_map = memo.get("key", ""), ((memo.get("cache") or {}).get("configMap") or {}).get("name", "")
        try:
            entry = ctx.memo.load(config_map, key)
        except ValueError as err:
            return error_node(ctx, name, template, boundary, str(err))
        hit = bool(entry and entry.get("nodeID"))
        if memo.get("maxAge"):
            try:
                max_age = gojson.parse_duration(memo["maxAge"])
            except ValueError as err:
                return error_node(ctx, name, template, boundary, f"invalid maxAge: {err}")
            hit = hit and MemoCache.age(entry) <= max_age
        node = ctx.new_node(name, node_type(kind), template, boundary)
        node.memo = (config_map, key)
        if hit:
            outputs = (entry or {}).get("outputs") or {}
            node.memoized, node.exit_code = True, outputs.get("exitCode")
            node.outputs = (
                {p["name"]: p.get("value", "") for p in outputs.get("parameters") or []}
                if "parameters" in outputs
                else None
            )
            node.labels = dict((processed.get("metadata") or {}).get("labels") or {})
            return ctx.finish(node, "Succeeded")
    if strategy is not None:
        node = with_retries(ctx, node, name, processed, strategy, kind, boundary, template, keep_result)
        metrics.emit(ctx, node, processed)
        return node
    node = node or ctx.new_node(name, node_type(kind), template, boundary)
    run_kind(ctx, node, processed, kind, keep_result)
    save_memo(ctx, node)
    metrics.emit(ctx, node, processed)
    return node


def run_kind(ctx: Ctx, node: Node, tmpl: dict[str, Any], kind: str, keep_result: bool) -> None:
    node.labels = dict((tmpl.get("metadata") or {}).get("labels") or {})
    if kind in ("container", "script"):
        pod.run_container(ctx, node, tmpl, keep_result)
    elif kind == "resource":
        resource.run_resource(ctx, node, tmpl)
    elif kind == "dag":
        execute_dag(ctx, node, tmpl, execute_template)
    else:
        ctx.finish(node, "Error", f"not replayed: a {kind or 'typeless'} template")


def with_retries(
    ctx: Ctx,
    parent: Node | None,
    name: str,
    processed: dict[str, Any],
    strategy: dict[str, Any],
    kind: str,
    boundary: str,
    template: str,
    keep_result: bool,
) -> Node:
    parent = parent or ctx.new_node(name, "Retry", template, boundary, "Running")
    parent.labels = dict((processed.get("metadata") or {}).get("labels") or {})
    attempts: list[Node] = []
    while True:
        n, last = len(attempts), attempts[-1] if attempts else None
        child_name = f"{name}({n})"
        local = {
            "retries": str(n),
            "lastRetry.exitCode": "0",
            "lastRetry.duration": "0",
            "lastRetry.status": "",
            "lastRetry.message": "",
        }
        if kind in POD_KINDS:
            local["pod.name"] = ctx.pod_name(child_name, template)
        if last is not None:
            local.update(
                {
                    "lastRetry.exitCode": last.exit_code or "0",
                    "lastRetry.duration": _duration(last),
                    "lastRetry.status": last.phase,
                    "lastRetry.message": last.message,
                }
            )
        ctx.add_child(name, child_name)
        try:
            attempt = substitute_params(processed, ctx.globals, local)
            child = ctx.new_node(child_name, node_type(kind), template, boundary)
            child.retried, child.memo = True, parent.memo
            run_kind(ctx, child, attempt, kind, keep_result)
            save_memo(ctx, child)
        except ReplaceError as err:
            child = error_node(ctx, child_name, template, boundary, str(err))
            child.retried = True
        attempts.append(child)
        if len(attempts) >= MAX_ATTEMPTS and child.failed_or_error:
            ctx.finish(parent, child.phase, f"replay: stopped after {MAX_ATTEMPTS} attempts (Argo has no limit set)")
            break
        if decide(ctx, parent, attempts, strategy):
            break
    parent.attempts, parent.exit_code, parent.outputs = len(attempts), attempts[-1].exit_code, attempts[-1].outputs
    return parent


def _duration(node: Node) -> str:
    return gojson.format_g(float(int(node.finished) - int(node.started))) if node.finished else "0"


def _int_or_string(value: Any, what: str) -> int | None:
    if value is None:
        return None
    try:
        return int(gojson.any_string(value))
    except ValueError:
        raise ReplaceError(f'{what}: invalid value "{value}"') from None


def decide(ctx: Ctx, parent: Node, attempts: list[Node], strategy: dict[str, Any]) -> bool:
    """processNodeRetries after an attempt: True when the Retry node is finished."""
    last = attempts[-1]
    if not last.fulfilled:  # an attempt Argo would never finish (Running)
        parent.phase, parent.message = last.phase, last.message
        return True
    if not last.failed_or_error:
        ctx.finish(parent, "Succeeded")
        return True
    try:
        limit = _int_or_string(strategy.get("limit"), "limit")
        backoff = strategy.get("backoff")
        if backoff:
            max_deadline = None
            if backoff.get("maxDuration"):
                max_deadline = attempts[0].started + gojson.parse_string_duration(backoff["maxDuration"])
                if ctx.now() > max_deadline:
                    return bool(ctx.finish(parent, last.phase, "Max duration limit exceeded"))
            if not backoff.get("duration"):
                return bool(ctx.finish(parent, "Error", "no base duration specified for retryStrategy"))
            wait = gojson.parse_string_duration(gojson.any_string(backoff["duration"]))
            factor = _int_or_string(backoff.get("factor"), "factor")
            if factor and factor > 0:
                wait *= factor ** (len(attempts) - 1)
            if backoff.get("cap"):
                wait = min(wait, gojson.parse_string_duration(backoff["cap"]))
            until = last.finished + wait
            if max_deadline is not None and until > max_deadline:
                return bool(ctx.finish(parent, last.phase, "Backoff would exceed max duration limit"))
            if limit is not None and len(attempts) <= limit and ctx.now() < until:
                parent.waits.append(wait)  # Argo requeues after the backoff; the replay moves its clock
                ctx.clock += until - ctx.now()
    except (ValueError, ReplaceError) as err:
        return bool(ctx.finish(parent, "Error", str(err)))
    policy = strategy.get("retryPolicy") or ("OnFailure" if not strategy.get("expression") else "Always")
    if policy == "OnTransientError":
        transient = any(s in last.message for s in TRANSIENT)
        if ctx.transient_pattern:
            transient = transient or re.search(ctx.transient_pattern, last.message) is not None
        on_failed = on_error = transient
    elif policy in ("Always", "OnError", "OnFailure"):
        on_failed, on_error = policy != "OnError", policy != "OnFailure"
    else:
        return bool(ctx.finish(parent, "Error", f"{policy} is not a valid RetryPolicy"))
    if (last.phase == "Failed" and not on_failed) or (last.phase == "Error" and not on_error):
        return bool(ctx.finish(parent, last.phase, last.message))
    if limit is not None and len(attempts) > limit:
        return bool(ctx.finish(parent, last.phase, "No more retries left"))
    if strategy.get("expression"):
        scope = {
            "retries": str(len(attempts) - 1),
            "lastRetry.exitCode": last.exit_code or "-1",
            "lastRetry.status": last.phase,
            "lastRetry.duration": _duration(last),
            "lastRetry.message": last.message,
        }
        try:
            ok = evaluate(parse(strategy["expression"]), func_map(scope))
        except ExprError as err:
            return bool(ctx.finish(parent, "Error", f"unable to evaluate expression '{strategy['expression']}': {err}"))
        if not isinstance(ok, bool):
            return bool(ctx.finish(parent, "Error", f"unable to cast expression result '{ok}' to bool"))
        if not ok:
            return bool(ctx.finish(parent, last.phase, "retryStrategy.expression evaluated to false"))
    return False
