"""The workflow's exit handler (`spec.onExit`), run after the entrypoint as argo-workflows v4.1.2 does
(`workflow/controller/operator.go` operate):

- `workflow.status` is the entry node's phase as a workflow phase: Succeeded, Failed or Error (Skipped
  and Omitted give Succeeded); `workflow.failures` is the JSON of every Failed / Error node
  (`failedNodeStatus`: displayName, message, templateName, phase, podName, finishedAt), quoted with
  `strconv.Quote`. Both are set once the entry node is fulfilled, before the handler runs.
- The handler is the template `spec.onExit` run as node `<workflow>.onExit` with `spec.arguments`.
- The workflow's phase: the entry's when it failed (Failed / Error); when it succeeded, the handler's
  Failed or Error fails it (markWorkflowFailed / markWorkflowError with the handler's message).
"""

from __future__ import annotations

import time
from typing import Any

from tests.argo_replay import gojson
from tests.argo_replay.model import Ctx, Node

STATUS = {"Skipped": "Succeeded", "Omitted": "Succeeded"}


def _failures(ctx: Ctx) -> str:
    failed = [
        {
            "displayName": n.task_path.rsplit(".", 1)[-1] or n.name,
            "message": n.message,
            "templateName": n.template or "",
            "phase": n.phase,
            "podName": ctx.pod_name(n.name, n.template or ""),
            "finishedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(n.finished)) if n.finished else None,
        }
        for n in ctx.nodes.values()
        if n.failed_or_error
    ]
    return '"' + gojson.quote(gojson.marshal_ordered(failed or None)) + '"'  # Go stores strconv.Quote(json)


def run_on_exit(ctx: Ctx, name: str, spec: dict[str, Any], entry: Node, execute: Any) -> Node | None:
    """The onExit node, or None without a handler (or while the entry is unfinished: Argo waits)."""
    handler = spec.get("onExit")
    if not handler or not entry.fulfilled:
        return None
    ctx.globals["workflow.status"] = STATUS.get(entry.phase, entry.phase)
    ctx.globals["workflow.failures"] = _failures(ctx)
    return execute(ctx, f"{name}.onExit", handler, spec.get("arguments") or {}, "")


def final_phase(phase: str, message: str, exit_node: Node | None) -> tuple[str, str]:
    """The workflow's phase and message once the handler ran."""
    if exit_node is not None and phase == "Succeeded" and exit_node.failed_or_error:
        return exit_node.phase, exit_node.message
    if exit_node is not None and phase == "Succeeded" and not exit_node.fulfilled:
        return "Running", f"onExit: {exit_node.message}"
    return phase, message
