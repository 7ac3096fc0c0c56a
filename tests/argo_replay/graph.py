"""The node graph of a DAG and its phase (argo-workflows v4.1.2 `workflow/controller/operator.go`
getOutboundNodes, `workflow/controller/dag.go` assessDAGPhase, `phase_node.go`).

- Outbound nodes: a pod or Skipped-type node is its own; a TaskGroup's are its children's (itself when
  it has none); a Retry node's is its last attempt; a DAG's are its target tasks' (itself on a
  memoization hit). A task node becomes a child of each outbound node of its dependencies (a root
  task a child of the DAG node, a fan-out instance a child of its TaskGroup).
- Phase: a BFS from the DAG node's children, each reached node carrying the branch phase (the last
  completed phase on the way; a node reached with a new phase is visited again), gives every target
  task its phase, Failed/Error winning for an omitted target reached by several branches. A target
  not reached yet, or an unfulfilled node on the way, keeps the DAG Running. A Failed/Error target
  fails the DAG unless its own `continueOn` covers that phase; with `failFast` (default) the first
  such target decides, without it every target must be reached first.
"""

from __future__ import annotations

from typing import Any

from tests.argo_replay.model import Ctx, Node


def outbound(ctx: Ctx, node_id: str) -> list[str]:
    """getOutboundNodes."""
    node = ctx.nodes[node_id]
    if node.type in ("Skipped", "Suspend", "HTTP", "Plugin", "Pod"):
        return [node.id]
    if node.type == "TaskGroup":
        return [x for c in node.children for x in outbound(ctx, c)] if node.children else [node.id]
    if node.type == "Retry" and node.children:
        return [node.children[-1]]
    if node.type in ("DAG", "Steps") and node.memoized:
        return [node.id]
    return [x for o in node.outbound for x in outbound(ctx, o)]


def assess(ctx: Ctx, boundary: Node, tasks: dict[str, dict[str, Any]], targets: list[str], fail_fast: bool) -> str:
    """assessDAGPhase: Running while a target is not reached or a reached node is not fulfilled."""
    phases = {}
    for t in targets:
        phases[ctx.node_id(f"{boundary.name}.{t}")] = ""
    queue, seen = [(c, "Succeeded") for c in boundary.children], set()
    while queue:
        node_id, branch = queue.pop(0)
        if (node_id, branch) in seen:
            continue
        seen.add((node_id, branch))
        node = ctx.nodes.get(node_id)
        if node is None or not node.fulfilled:
            return "Running"
        if node.phase in ("Succeeded", "Failed", "Error"):
            branch = node.phase
        if node_id in phases and phases[node_id] not in ("Failed", "Error"):
            phases[node_id] = branch
        kids = node.children
        if node.type == "Retry":
            kids = [k for c in reversed(node.children) for k in ctx.nodes[c].children]
        queue.extend((k, branch) for k in kids if (k, branch) not in seen)
    result = "Succeeded"
    for t in targets:
        phase = phases[ctx.node_id(f"{boundary.name}.{t}")]
        if phase == "":
            result = "Running"
            if not fail_fast:
                break
        elif phase in ("Failed", "Error"):
            if (tasks[t].get("continueOn") or {}).get("failed" if phase == "Failed" else "error"):
                continue
            result = phase
            if fail_fast:
                break
    return result
