"""Argo target, stage 4 (emit): the DAG templates wiring the step templates together.

Takes a `Plan`; gives the entrypoint DAG template and one nested DAG template per `wait = "each"` loop
body (the fanned-out step plus its per-instance consumers, fanned out as one unit), as hera models.
Fan-out becomes `withItems` / `withParam`, fan-in reads Argo's aggregated outputs, `when` an expression,
and the task list is ordered by step `priority` among steps that become ready together. Two things Argo
cannot say directly become *gate* tasks (a small shell check over a task's aggregated outputs, failing
the workflow exactly when a local run fails): "at least N instances succeeded" (`min_success`; the step
runs with `continueOn`), and "every per-instance step of a loop body succeeded" (they run with
`continueOn` inside the body, so the loop's own outputs still reach readers that wait for all of it).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

import hera.workflows.models as m
import networkx as nx
from dmlc_targets.argo import fast, placeholders
from dmlc_targets.argo.plan import Input, Plan

from dmlc.ir.graph import edges
from dmlc.ir.types import Ref


def body_template_name(plan: Plan, root: str) -> str:
    return f"{plan.name(root)}-each"


def _members(plan: Plan, scope: str | None) -> list[str]:
    """Steps that get a task in `scope`: a loop root stands for its whole body in the main DAG."""
    if scope is not None:
        return list(plan.bodies[scope])
    exit_handler = plan.exit_handler  # not in the DAG: the workflow's `onExit` runs it after the DAG
    return [s for s in plan.steps if (plan.scope(s) is None or plan.scope(s) == s) and s != exit_handler]


def ordered(plan: Plan, names: list[str], scope: str | None) -> list[str]:
    """Topological order; among steps ready together, higher `priority` first, then pipeline order."""
    chosen = set(names)
    position = {n: i for i, n in enumerate(plan.steps)}
    ups: dict[str, set[str]] = {}
    for n in names:
        loop_task = scope is None and plan.scope(n) == n
        found = {_in_scope(plan, u, scope) for u in (_deps(plan, n) if loop_task else plan.deps[n])}
        ups[n] = {u for u in found if u in chosen and u != n}
    downs: dict[str, list[str]] = {n: [] for n in names}
    for n, us in ups.items():
        for u in us:
            downs[u].append(n)
    waiting = {n: len(us) for n, us in ups.items()}
    ready = [(-(plan.steps[n].priority or 0), position[n], n) for n in names if not waiting[n]]
    heapq.heapify(ready)
    out: list[str] = []
    while ready:
        _, _, n = heapq.heappop(ready)
        out.append(n)
        for d in downs[n]:
            waiting[d] -= 1
            if not waiting[d]:
                heapq.heappush(ready, (-(plan.steps[d].priority or 0), position[d], d))
    return out


def _deps(plan: Plan, step: str) -> list[str]:
    """Upstreams of a task; a loop root's task in the main DAG waits for what its whole body needs."""
    if step in plan.bodies and plan.scope(step) == step:
        found: dict[str, None] = {}
        for member in plan.bodies[step]:
            for up in plan.deps[member]:
                if plan.scope(up) != step:
                    found[up] = None
        return list(found)
    return plan.deps[step]


def loop_cycles(plan: Plan) -> Iterator[tuple[str, str]]:
    """(member, upstream) pairs where a loop body needs a step that itself waits for the whole loop:
    the loop task and that step would wait for each other in the main DAG."""
    graph = nx.DiGraph()
    for step in plan.steps:
        for up in plan.deps[step]:
            graph.add_edge(_in_scope(plan, up, None), _in_scope(plan, step, None))
    for root, members in plan.bodies.items():
        for member in members:
            for up in plan.deps[member]:
                task = _in_scope(plan, up, None)
                if task != root and root in nx.ancestors(graph, task):
                    yield member, up


def _in_scope(plan: Plan, up: str, scope: str | None) -> str:
    """The task standing for `up` in `scope`: itself, or its loop task when it sits in a body."""
    up_scope = plan.scope(up)
    if scope is None and up_scope is not None:
        return up_scope
    return up


def _edge_kinds(plan: Plan, step: str, is_loop_task: bool) -> dict[str, str]:
    """upstream -> "data" | "control" for a task (a loop task: for every member of its body)."""
    members = plan.bodies[step] if is_loop_task else [step]
    found: dict[str, str] = {}
    for member in members:
        for up, kind in edges(plan.pipeline)[member].items():
            if found.get(up) != "data":
                found[up] = kind
    return found


def _depends(plan: Plan, step: str, scope: str | None, is_loop_task: bool) -> tuple[str | None, list[str]]:
    """Argo's `depends` and the tasks whose outputs are read (their status must be Succeeded).

    Every upstream is named bare (Argo: Succeeded, Skipped or Daemoned; Failed too with continueOn),
    so a failed upstream leaves the step Omitted; a step that reads a *skipped* upstream's outputs is
    itself Skipped by a `when` on that upstream's status, so that a step ordered only `after` it still
    runs, exactly as a local run skips readers and runs `after`-only steps of a skipped step."""
    kinds: dict[str, str] = {}
    for up, kind in _edge_kinds(plan, step, is_loop_task).items():
        if up == step or (is_loop_task and plan.scope(up) == step) or (scope is not None and plan.scope(up) != scope):
            continue  # itself, a member of its own body, or satisfied before the loop started
        task = _in_scope(plan, up, scope)
        gate = plan.body_gate(task) if scope is None and task != up else None
        if gate is not None and kinds.get(f"gate:{gate}") != "data":  # a per-instance step of a loop
            kinds[f"gate:{gate}"] = kind  # body: the gate reports its failures
        if kinds.get(task) != "data":
            kinds[task] = kind
    named = {_argo_name(plan, t, scope): (t, k) for t, k in kinds.items()}
    guards = [_guard(plan, name, task, scope) for name, (task, kind) in named.items() if kind == "data"]
    return " && ".join(named) or None, guards


def _guard(plan: Plan, name: str, task: str, scope: str | None) -> str:
    """The upstream task `name` (standing for step `task`) ran and has outputs to read: Succeeded, and for
    a fan-out at least one instance that succeeded (a group whose instances were all skipped by their
    `when` is Succeeded to Argo, with no outputs). One of its outputs is present in the aggregate exactly
    then (argo-workflows v4 operator.go processAggregateNodeOutputs; the empty aggregate is the text `[]`)."""
    ran = f"tasks['{name}'].status == 'Succeeded'"
    if task.startswith("gate:") or name != plan.name(task) or plan.steps[task].for_each is None or scope == task:
        return ran
    outputs = list(plan.steps[task].outputs())
    output = f"{task}-{outputs[0]}" if plan.scope(task) == task else outputs[0]  # a loop body exports `<root>-<out>`
    return f"({ran} && toJson(tasks['{name}'].outputs.parameters) contains '\"{output}\"')"


def _argo_name(plan: Plan, task: str, scope: str | None) -> str:
    """The Argo task standing for `task`: a gate when one counts its instances (or its loop's steps)."""
    if task.startswith("gate:"):
        return task[5:]
    gate = plan.min_success_gate(task) if scope is None else None
    return gate or plan.name(task)


def _when(guards: list[str], condition: str | None) -> str | None:
    """The task's `when`: the tasks it reads from succeeded (were not skipped), and its own condition."""
    parts = guards + ([f"({condition})"] if condition else [])
    return "{{=" + " && ".join(parts) + "}}" if parts else None


def _loop(plan: Plan, step: str, scope: str | None) -> dict:
    """withItems / withParam of a fanned-out step's task (none inside its own body)."""
    eff = plan.steps[step]
    if eff.for_each is None or (scope is not None and scope == step):
        return {}
    if isinstance(eff.for_each, Ref):
        ref = eff.for_each
        if ref.root == "params":
            return {"with_param": f"{{{{workflow.parameters.{ref.fields[0]}}}}}"}
        inp = Input(ref.root, ref.output or "", plan.star(step, ref))
        return {"with_param": "{{" + placeholders.feed_var(plan, scope, inp, dotted=True) + "}}"}
    return {"with_items": [fast.Item(v) for v in eff.for_each]}


def _args(plan: Plan, step: str, scope: str | None, params: list[Input], looped: bool) -> m.Arguments | None:
    out = []
    if plan.fanned(step):
        # base64, like every value: an item from an output may hold `{{` (templates decode it)
        looped_item = "{{=sprig.b64enc(item)}}" if plan.item_b64(step) else "{{item}}"
        item = looped_item if looped else "{{inputs.parameters.item}}"
        out.append(fast.Parameter(name="item", value=item))
    for inp in params:
        out.append(fast.Parameter(name=inp.param, value=placeholders.feed_value(plan, scope, inp)))
    return fast.Arguments(parameters=out) if out else None


def _task_when(plan: Plan, step: str, scope: str | None) -> tuple[str | None, str | None]:
    """The task's `depends` and its `when` (in its own loop body, the loop task in the main DAG took it)."""
    is_loop_task = scope is None and plan.scope(step) == step
    in_own_body = scope is not None and scope == step
    eff = plan.steps[step]
    condition = placeholders.when_expr(plan, step, is_loop_task) if eff.when and not in_own_body else None
    depends, guards = _depends(plan, step, scope, is_loop_task)
    return depends, _when(guards, condition)


def _task(plan: Plan, step: str, scope: str | None) -> m.DAGTask:
    is_loop_task = scope is None and plan.scope(step) == step
    loop = _loop(plan, step, scope)
    params = body_inputs(plan, step) if is_loop_task else plan.inputs(step)
    eff = plan.steps[step]
    tolerant = (eff.min_success is not None and scope is None) or (scope is not None and step != scope)
    depends, when = _task_when(plan, step, scope)
    return fast.DAGTask(
        name=plan.name(step),
        template=body_template_name(plan, step) if is_loop_task else plan.name(step),
        arguments=_args(plan, step, scope, params, bool(loop)),
        depends=depends,
        when=when,
        continue_on=m.ContinueOn(failed=True) if tolerant else None,
        **loop,
    )


def body_inputs(plan: Plan, root: str) -> list[Input]:
    """What a loop body receives from the main DAG: outputs of steps outside it, read inside."""
    found: dict[Input, None] = {}
    for member in plan.bodies[root]:
        for inp in [*plan.inputs(member), *placeholders.when_inputs(plan, member)]:
            if plan.scope(inp.root) != root:
                found[inp] = None
    return list(found)


def body_template(plan: Plan, root: str) -> m.Template:
    params = [fast.Parameter(name="item")] + [fast.Parameter(name=i.param) for i in body_inputs(plan, root)]
    tasks = [_task(plan, s, root) for s in ordered(plan, plan.bodies[root], root)]
    exported = {
        f"{root}-{out}": f"tasks.{plan.name(root)}.outputs.parameters.{out}" for out in plan.steps[root].outputs()
    }
    if plan.min_success_gate(root):
        exported[OK] = f"tasks.{plan.name(root)}.outputs.parameters.{OK}"
    exported |= {f"{plan.name(m_)}-status": f"tasks.{plan.name(m_)}.status" for m_ in plan.bodies[root][1:]}
    outputs = [
        fast.Parameter(name=name, value_from=fast.ValueFrom(parameter=f"{{{{{var}}}}}"))
        for name, var in exported.items()
    ]
    return m.Template(
        name=body_template_name(plan, root),
        metadata=fast.Metadata(labels={"dmlc.io/step": root, "dmlc.io/loop": "true"}, annotations=None),
        inputs=fast.Inputs(parameters=params),
        dag=m.DAGTemplate(tasks=tasks, target=_body_target(plan, root)),
        outputs=fast.Outputs(parameters=outputs) if outputs else None,
    )


def _body_target(plan: Plan, root: str) -> str | None:
    """The body's target tasks: its leaves, and its root. The other members run with continueOn (the
    gate reports their failures); a member left out because the root failed would inherit the root's
    Failed and be forgiven by it (v4.1.2 dag.go assessDAGPhase), so the root must decide as a target."""
    members = plan.bodies[root]
    if len(members) == 1:
        return None
    needed = {up for m_ in members for up in plan.deps[m_]}
    return " ".join(plan.name(s) for s in members if s == root or s not in needed)


def main_template(plan: Plan, name: str, gate_template: str) -> m.Template:
    return m.Template(name=name, dag=m.DAGTemplate(tasks=list(main_tasks(plan, gate_template))))


def main_tasks(plan: Plan, gate_template: str) -> Iterator[m.DAGTask]:
    """The entrypoint DAG's tasks, built one at a time."""
    for step in ordered(plan, _members(plan, None), None):
        yield _task(plan, step, None)
        yield from _gates(plan, step, gate_template)


# -- gates -----------------------------------------------------------------------------------------
OK = "dmlc-ok"  # an output every instance of a gated step has: aggregated, it counts the successful ones
# $0: base64 of toJson(tasks['x'].outputs.parameters), the aggregated outputs by name (base64, so that
# no output text is scanned by Argo in the gate's template); $1 picks dmlc's own entries (a user's value
# is a JSON string inside it: its quotes are escaped, so it cannot match), $2 is counted in them.
GATE_PARAMS = ("values", "entries", "pattern", "min", "max", "message")
GATE_SCRIPT = (
    'n=$(printf %s "$0" | base64 -d | grep -oE "$1" | grep -oE "$2" | wc -l); '
    'if [ "$n" -lt "$3" ] || [ "$n" -gt "$4" ]; then echo "dmlc: $5 ($n found)" >&2; exit 1; fi'
)
OK_ENTRIES = f'"{OK}":"\\[[^]]*\\]"'  # "dmlc-ok":"[\"1\",\"1\"]": one 1 per successful instance
STATUS_ENTRIES = '"[^"]+-status":"\\[[^]]*\\]"'  # a body member's statuses


def needs_gates(plan: Plan) -> bool:
    return any(plan.min_success_gate(s) or plan.body_gate(s) for s in plan.steps)


def gate_template(plan: Plan, name: str) -> m.Template:
    """One small container every gate task runs: count a pattern in a task's aggregated outputs."""
    args = [f"{{{{inputs.parameters.{p}}}}}" for p in GATE_PARAMS]
    container = m.Container(image=plan.pipeline.image, command=["sh", "-c", GATE_SCRIPT], args=args)
    inputs = fast.Inputs(parameters=[fast.Parameter(name=p) for p in GATE_PARAMS])
    metadata = fast.Metadata(labels={"dmlc.io/gate": "true"}, annotations=None)
    return m.Template(name=name, inputs=inputs, metadata=metadata, container=container)


def _gates(plan: Plan, step: str, template: str) -> list[m.DAGTask]:
    """The gate tasks after `step`'s task in the main DAG."""
    task = plan.name(step)
    if plan.min_success_gate(step) is None and plan.body_gate(step) is None:
        return []  # most steps: no gate, and no need to work out the task's `when` again
    _, when = _task_when(plan, step, None)
    out = []
    gate = plan.min_success_gate(step)
    if gate is not None:
        need = plan.steps[step].min_success
        message = f"fewer than {need} instances of step `{step}` succeeded (min_success = {need})"
        out.append(_gate_task(gate, template, (task, when), (OK_ENTRIES, "1"), need, 1 << 30, message))
    gate = plan.body_gate(step)
    if gate is not None:
        message = f"a per-instance step of the `{step}` loop failed"
        out.append(_gate_task(gate, template, (task, when), (STATUS_ENTRIES, "Failed|Error"), 0, 0, message))
    return out


def _gate_task(name: str, template: str, task_when: tuple[str, str | None], patterns: tuple[str, str], low: int,
               high: int, message: str):  # fmt: skip
    """A gate runs after `task` ended however (it has continueOn when it may fail), unless the task was
    skipped (then the gate is skipped too, and what reads through it). A loop task whose `when` is false
    is a TaskGroup of Skipped children, Succeeded to Argo (v4.1.2 dag.go completableTaskGroupPhase): the
    gate repeats the task's `when` to see it."""
    task, task_when = task_when
    values = {"values": f"{{{{=sprig.b64enc(toJson(tasks['{task}'].outputs.parameters))}}}}",
              "entries": patterns[0], "pattern": patterns[1], "min": str(low), "max": str(high),
              "message": message}  # fmt: skip
    params = [fast.Parameter(name=k, value=v) for k, v in values.items()]
    own = [f"({task_when[3:-2]})"] if task_when else []
    when = "{{=" + " && ".join([f"tasks['{task}'].status != 'Skipped'", *own]) + "}}"
    return fast.DAGTask(
        name=name, template=template, depends=task, when=when, arguments=fast.Arguments(parameters=params)
    )
