"""Placement and wiring of the KFP target (stage 4, before emit): IR -> where each task sits, what it reads.

Takes a validated `Pipeline`; gives, without importing kfp, for every step: its *scope* (the nest of
`dsl.ParallelFor` / `dsl.If` groups it must be created in), its *bindings* (one component input per
reference: artifact, collected artifacts, JSON param, pipeline param) and the type of each output.
KFP only lets a task read a task of its own group or of an enclosing one, so a step's scope is the
deepest scope among the producers it reads directly, plus its own loop and condition. A layout
KFP cannot express (two unrelated loops feeding one step per instance) is reported by `check`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dmlc.ir.effective import effective
from dmlc.ir.graph import dependencies, refs, topological_order
from dmlc.ir.model import Pipeline, Serve, Step, Train
from dmlc.ir.types import Ref
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics.handover import binding_key

Frame = tuple[str, str]  # ("loop", step) | ("if", step)
Scope = tuple[Frame, ...]
PARAM_TYPES = {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "dict"}


class PlacementError(Exception):
    """A step whose producers sit in groups KFP cannot combine; `path` is the attribute to blame."""

    def __init__(self, step: str, path: tuple[str | int, ...], message: str, help: str = "") -> None:
        super().__init__(message)
        self.step, self.path = step, path
        self.help = help or "read the fanned-out step with `[*]` (all instances) or split the loop body"


@dataclass
class Binding:
    input: str  # component input name
    kind: str  # components.INPUT_TYPES key
    source: Ref | None = None  # producer reference (None for pipeline params)
    collected: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"input": self.input, "kind": self.kind}


@dataclass
class StepPlan:
    name: str
    step: Step
    scope: Scope = ()
    bindings: dict[str, Binding] = field(default_factory=dict)  # binding key -> binding
    when_bindings: dict[str, Binding] = field(default_factory=dict)
    upstream: list[str] = field(default_factory=list)

    @property
    def launched(self) -> bool:
        """Runs as a Kubernetes object the task creates and waits for (TFJob / InferenceService)."""
        return isinstance(self.step, Serve) or is_distributed(self.step)


METRICS_OUTPUT = "dmlc_metrics"  # the `Output[Metrics]` of a step that reports metrics (the shim fills it)
CONFUSION_OUTPUT = "dmlc_confusion"  # the `Output[ClassificationMetrics]` of an evaluate step


def is_distributed(step: Step) -> bool:
    return isinstance(step, Train) and step.distributed


def list_outputs(pipeline: Pipeline) -> set[tuple[str, str]]:
    """(step, output) pairs used as a dynamic `for_each`: they become list-typed KFP outputs."""
    out = set()
    for step in pipeline.steps.values():
        if isinstance(step.for_each, Ref) and step.for_each.is_step and step.for_each.output:
            out.add((step.for_each.root, step.for_each.output))
    return out


def output_kinds(pipeline: Pipeline, name: str, lists: set[tuple[str, str]]) -> dict[str, str]:
    """Output name -> components.OUTPUT_TYPES key."""
    kinds = {}
    for output, kind in pipeline.steps[name].outputs().items():
        kinds[output] = "list" if (name, output) in lists else kind
    if ui_metrics.reports(pipeline.steps[name]):  # the numbers, for KFP's UI (the shim fills it)
        kinds[METRICS_OUTPUT] = "metrics"
    if ui_metrics.classifies(pipeline.steps[name]):  # evaluate's confusion matrix
        kinds[CONFUSION_OUTPUT] = "classification"
    return kinds


def _collected(pipeline: Pipeline, plans: dict[str, StepPlan], consumer: str, ref: Ref) -> bool:
    """Does `consumer` read every instance of `ref.root`? `x[*]`, or a per-instance (`wait = "each"`)
    step read by a step that is not itself per-instance: that is the list of them, as locally."""
    if ref.index is not None:
        return True
    if pipeline.steps[ref.root].for_each is not None:
        return False  # the validator asks for `[*]` unless the consumer pairs with it
    loops = [frame for frame in plans[ref.root].scope if frame[0] == "loop"]
    return bool(loops) and pipeline.steps[consumer].wait != "each"


def _binding(pipeline: Pipeline, ref: Ref, lists: set[tuple[str, str]], collected: bool) -> tuple[str, Binding]:
    if ref.root == "params":
        value = pipeline.params.get(ref.fields[0])
        kind = PARAM_TYPES.get(type(value), "str")
        return binding_key(ref), Binding(f"params__{ref.fields[0]}", kind)
    output = ref.output or ""
    kind = pipeline.steps[ref.root].outputs()[output]
    if (ref.root, output) in lists:
        kind = "list"
    elif kind == "param":
        kind = "json"
    if collected:
        kind = "artifacts" if kind == "artifact" else "jsons"
    infix = "__all__" if collected else "__"
    key = binding_key(ref)  # as the reference is written: the shim looks it up the same way
    source = Ref(ref.root, "*" if collected else None, (output,))
    return key, Binding(f"{ref.root}{infix}{output}", kind, source, collected)


def bindings_of(
    pipeline: Pipeline, plans: dict[str, StepPlan], name: str, when: bool, lists: set[tuple[str, str]]
) -> dict[str, Binding]:
    found: dict[str, Binding] = {}
    for path, ref in refs(pipeline.steps[name]):
        if (path[:1] == ("when",)) != when or ref.root in ("each", "pipeline") or path[:1] == ("for_each",):
            continue  # `for_each` reaches the runtime as written (as locally); the loop hands over the item;
            # `${pipeline.*}` is read from the exit task's PipelineTaskFinalStatus
        collected = ref.root != "params" and _collected(pipeline, plans, name, ref)
        key, binding = _binding(pipeline, ref, lists, collected)
        found.setdefault(key, binding)
    return _distinct(dict(sorted(found.items())))


def _distinct(bindings: dict[str, Binding]) -> dict[str, Binding]:
    """Names are `<step>__<output>`, and names may hold `__` themselves: `a.b__c` and `a__b.c` would share
    one input. A later reference whose name is taken gets a numbered one (deterministic: sorted keys)."""
    taken: set[str] = set()
    for binding in bindings.values():
        base, n = binding.input, 1
        while binding.input in taken:
            n += 1
            binding.input = f"{base}_{n}"
        taken.add(binding.input)
    return bindings


def _needed_prefix(plans: dict[str, StepPlan], ref_root: str, collected: bool) -> Scope:
    """The scope a consumer must be in to read `ref_root` (directly, or collected from outside its loop)."""
    scope = plans[ref_root].scope
    loops = [i for i, frame in enumerate(scope) if frame[0] == "loop"]
    if collected and loops:
        return scope[: loops[-1]]
    return scope


def _scope(pipeline: Pipeline, name: str, plans: dict[str, StepPlan]) -> Scope:
    step = pipeline.steps[name]
    needs: list[tuple[Scope, tuple[str | int, ...]]] = []
    for path, ref in refs(step):
        if ref.is_step and ref.root in pipeline.steps and ref.root != name:
            if path[:1] == ("for_each",) and ref.index is None and _collected(pipeline, plans, name, ref):
                message = f"a `for_each` over an output of the per-instance step `{ref.root}` outside its loop"
                raise PlacementError(name, path, message, f'set `wait = "each"` on `{name}` too')
            needs.append((_needed_prefix(plans, ref.root, _collected(pipeline, plans, name, ref)), path))
    # `after` is ordering only: the step runs even when `up` was skipped (as locally); kfp's `.after()`
    # reaches into a loop, but not into a `dsl.If` the step is not in (checked below)
    deepest: Scope = ()
    for scope, path in sorted(needs, key=lambda n: len(n[0])):
        if scope[: len(deepest)] != deepest:
            where = ("wait",) if step.wait else path
            raise PlacementError(name, where, f"`{name}` reads steps inside different KFP groups ({_show(scope)})")
        deepest = scope
    for i, up in enumerate(step.after):
        missing = [f for f in plans[up].scope if f[0] == "if" and f not in deepest]
        if missing:
            message = f"KFP would skip `{name}` whenever `{up}` is skipped (by `when` of `{missing[0][1]}`)"
            help_ = f"give `{name}` the same `when`, or drop `{up}` from `after`"
            raise PlacementError(name, ("after", i), message, help_)
    own: Scope = (("loop", name),) if step.for_each is not None else ()
    return deepest + own + ((("if", name),) if step.when else ())


def _show(scope: Scope) -> str:
    return " > ".join(f"{kind} {step}" for kind, step in scope) or "the pipeline"


def plan(pipeline: Pipeline) -> dict[str, StepPlan]:
    """Every step's plan, in topological order; raises PlacementError."""
    deps, lists = dependencies(pipeline), list_outputs(pipeline)
    plans: dict[str, StepPlan] = {}
    for name in topological_order(pipeline):
        step = effective(pipeline, name)
        plans[name] = StepPlan(name, step, upstream=deps[name])
        plans[name].scope = _scope(pipeline, name, plans)
        plans[name].bindings = bindings_of(pipeline, plans, name, False, lists)
        plans[name].when_bindings = bindings_of(pipeline, plans, name, True, lists)
    return plans


@dataclass
class KfpPlan:
    """What the KFP check gives its emit: the pipeline, every step's plan, and the warnings to print."""

    pipeline: Pipeline
    steps: dict[str, StepPlan]
    options: Any
    warnings: list[Any] = field(default_factory=list)


@dataclass
class Group:
    """A node of the group tree: the steps created directly in it and its child groups, in creation order."""

    frame: Frame | None
    items: list[Any] = field(default_factory=list)  # str (a step) or Group


def tree(pipeline: Pipeline, plans: dict[str, StepPlan]) -> Group:
    """Nest steps by scope and order each level so every producer is created before its readers."""
    root = Group(None)
    groups: dict[Scope, Group] = {(): root}
    members: dict[Scope, list[str]] = {}
    for name, p in plans.items():
        for depth in range(1, len(p.scope) + 1):
            prefix = p.scope[:depth]
            if prefix not in groups:
                groups[prefix] = Group(prefix[-1])
                members.setdefault(prefix[:-1], []).append(prefix)  # type: ignore[arg-type]
        members.setdefault(p.scope, []).append(name)  # type: ignore[arg-type]
    position = {name: i for i, name in enumerate(pipeline.steps)}
    for scope, group in groups.items():
        group.items = _ordered(scope, members.get(scope, []), plans, groups, position)
    return root


def _ordered(scope: Scope, items: list[Any], plans: dict[str, StepPlan], groups: dict, position: dict) -> list[Any]:
    """Topological order of one level's items (steps and sub-groups), ties by pipeline order."""
    from graphlib import CycleError, TopologicalSorter

    def item_of(step: str) -> Any:
        s = plans[step].scope
        return step if s == scope else s[: len(scope) + 1]

    members, inside = set(items), {}  # item -> the steps in it, in plan order (linear, not per item)
    for name, p in plans.items():
        if p.scope[: len(scope)] == scope and item_of(name) in members:
            inside.setdefault(item_of(name), []).append(name)

    def steps_in(item: Any) -> list[str]:
        return inside.get(item, [])

    graph: dict[Any, set[Any]] = {}
    for item in items:
        inner = steps_in(item)
        ups = {u for s in inner for u in plans[s].upstream if plans[u].scope[: len(scope)] == scope}
        graph[item] = {item_of(u) for u in ups if u not in inner and item_of(u) in members}
    first = {item: min(position[s] for s in steps_in(item)) for item in items}
    sorter = TopologicalSorter(graph)
    try:
        sorter.prepare()
    except CycleError as exc:
        inner = steps_in(exc.args[1][0])
        step = next((s for s in inner if plans[s].step.wait), inner[0])
        raise PlacementError(
            step, ("wait",), "a loop body would have to run both before and after another step"
        ) from None
    out: list[Any] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=first.__getitem__)
        out += [item if isinstance(item, str) else groups[item] for item in ready]
        sorter.done(*ready)
    return out
