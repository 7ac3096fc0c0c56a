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

import hera.workflows.models as m
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
    return [s for s in plan.steps if plan.scope(s) is None or plan.scope(s) == s]


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


def _depends(plan: Plan, step: str, scope: str | None, is_loop_task: bool) -> str | None:
    """Argo's `depends`: a step that reads an upstream's outputs needs it Succeeded (a skipped upstream
    has no outputs, so the reader is not run: Omitted, as a local run skips it); `after` alone accepts
    Succeeded, Skipped or Daemoned (Argo's meaning of a bare name)."""
    kinds: dict[str, str] = {}
    for up, kind in _edge_kinds(plan, step, is_loop_task).items():
        if up == step or (is_loop_task and plan.scope(up) == step) or (scope is not None and plan.scope(up) != scope):
            continue  # itself, a member of its own body, or satisfied before the loop started
        task = _in_scope(plan, up, scope)
        gate = plan.body_gate(task) if scope is None and task != up else None
        if gate is not None:  # a per-instance step of a loop body: its failures are reported by the gate
            kinds[f"gate:{gate}"] = "data"
        if kinds.get(task) != "data":
            kinds[task] = kind
    terms = [f"{t[5:]}.Succeeded" if t.startswith("gate:") else _term(plan, t, k, scope) for t, k in kinds.items()]
    return " && ".join(terms) or None


def _term(plan: Plan, task: str, kind: str, scope: str | None) -> str:
    name = plan.name(task)
    gate = plan.min_success_gate(task) if scope is None else None
    if gate is not None:
        return f"{gate}.Succeeded"  # the gate counted the instances
    return f"{name}.Succeeded" if kind == "data" else name


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
        out.append(fast.Parameter(name="item", value="{{item}}" if looped else "{{inputs.parameters.item}}"))
    for inp in params:
        value = "{{" + placeholders.feed_var(plan, scope, inp, dotted=True) + "}}"
        out.append(fast.Parameter(name=inp.param, value=value))
    return fast.Arguments(parameters=out) if out else None


def _task(plan: Plan, step: str, scope: str | None) -> m.DAGTask:
    is_loop_task = scope is None and plan.scope(step) == step
    loop = _loop(plan, step, scope)
    params = body_inputs(plan, step) if is_loop_task else plan.inputs(step)
    eff = plan.steps[step]
    when = placeholders.when_expr(plan, step) if eff.when and not is_loop_task else None
    tolerant = (eff.min_success is not None and scope is None) or (scope is not None and step != scope)
    return fast.DAGTask(
        name=plan.name(step),
        template=body_template_name(plan, step) if is_loop_task else plan.name(step),
        arguments=_args(plan, step, scope, params, bool(loop)),
        depends=_depends(plan, step, scope, is_loop_task),
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
        inputs=fast.Inputs(parameters=params),
        dag=m.DAGTemplate(tasks=tasks),
        outputs=fast.Outputs(parameters=outputs) if outputs else None,
    )


def main_template(plan: Plan, name: str, gate_template: str) -> m.Template:
    tasks = []
    for step in ordered(plan, _members(plan, None), None):
        tasks.append(_task(plan, step, None))
        tasks += _gates(plan, step, gate_template)
    return m.Template(name=name, dag=m.DAGTemplate(tasks=tasks))


# -- gates -----------------------------------------------------------------------------------------
OK = "dmlc-ok"  # an output every instance of a gated step has: aggregated, it counts the successful ones
GATE_SCRIPT = (
    'n=$(printf %s "$0" | grep -oE "$1" | wc -l); '
    'if [ "$n" -lt "$2" ] || [ "$n" -gt "$3" ]; then echo "dmlc: $4 ($n found)" >&2; exit 1; fi'
)


def needs_gates(plan: Plan) -> bool:
    return any(plan.min_success_gate(s) or plan.body_gate(s) for s in plan.steps)


def gate_template(plan: Plan, name: str) -> m.Template:
    """One small container every gate task runs: count a pattern in a task's aggregated outputs."""
    args = [f"{{{{inputs.parameters.{p}}}}}" for p in ("values", "pattern", "min", "max", "message")]
    container = m.Container(image=plan.pipeline.image, command=["sh", "-c", GATE_SCRIPT], args=args)
    inputs = fast.Inputs(parameters=[fast.Parameter(name=p) for p in ("values", "pattern", "min", "max", "message")])
    metadata = fast.Metadata(labels={"dmlc.io/gate": "true"}, annotations=None)
    return m.Template(name=name, inputs=inputs, metadata=metadata, container=container)


def _gates(plan: Plan, step: str, template: str) -> list[m.DAGTask]:
    """The gate tasks after `step`'s task in the main DAG."""
    task = plan.name(step)
    out = []
    gate = plan.min_success_gate(step)
    if gate is not None:
        need = plan.steps[step].min_success
        message = f"fewer than {need} instances of step `{step}` succeeded (min_success = {need})"
        out.append(_gate_task(gate, template, f"({task}.Succeeded || {task}.Failed)", task, OK, need, 1 << 30, message))
    gate = plan.body_gate(step)
    if gate is not None:
        depends = f"({task}.Succeeded || {task}.Failed)" if plan.min_success_gate(step) else f"{task}.Succeeded"
        message = f"a per-instance step of the `{step}` loop failed"
        out.append(_gate_task(gate, template, depends, task, '"(Failed|Error)"', 0, 0, message))
    return out


def _gate_task(name: str, template: str, depends: str, task: str, pattern: str, low: int, high: int, message: str):
    values = {"values": f"{{{{tasks.{task}.outputs.parameters}}}}", "pattern": pattern, "min": str(low),
              "max": str(high), "message": message}  # fmt: skip
    params = [fast.Parameter(name=k, value=v) for k, v in values.items()]
    return fast.DAGTask(name=name, template=template, depends=depends, arguments=fast.Arguments(parameters=params))
