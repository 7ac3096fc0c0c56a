"""Argo target, stage 4 (emit) groundwork: where every step lives, what it reads and how Argo names it.

Takes a validated `Pipeline` and the `target argo { }` options; gives a `Plan`: Kubernetes names of
steps/templates, the loop bodies that `wait = "each"` creates, the volume that holds artifacts and the
per-instance directory layout on it, and `Input`s (one per distinct upstream value a step reads) with the
Argo expression that feeds each of them in the step's DAG scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dmlc.ir.effective import effective
from dmlc.ir.graph import dependencies, refs
from dmlc.ir.model import Pipeline, Serve, Step, Train
from dmlc.ir.types import Ref
from dmlc.k8s import k8s_name
from dmlc.semantics.objstore import items_as_segments

WORK_VOLUME = "dmlc-work"
WORK_MOUNT = "/dmlc/work"
REFS_DIR = "/dmlc/refs"
# With an object store, the output parameter naming the key prefix a memoized step's run wrote: Argo's
# cache restores output parameters (argo-workflows v4.1.2 workflow/controller/cache/configmap_cache.go,
# Entry.Outputs), so on a hit its readers download the objects of the run that wrote them.
STORE_PREFIX = "dmlc-store"


@dataclass(frozen=True)
class Input:
    """One upstream value a step reads: `ref.root`'s output `output`, all instances when `star`."""

    root: str
    output: str
    star: bool

    @property
    def param(self) -> str:
        return f"{self.root}-{self.output}" + ("-all" if self.star else "")


@dataclass
class Store:
    """The volume that holds artifacts (and param files) of every step instance."""

    volume: str
    mount: str


@dataclass
class Plan:
    pipeline: Pipeline
    options: Any
    steps: dict[str, Step] = field(default_factory=dict)  # effective steps
    names: dict[str, str] = field(default_factory=dict)  # step -> k8s name (task and template)
    body_of: dict[str, str] = field(default_factory=dict)  # step -> root of its wait=each loop body
    bodies: dict[str, list[str]] = field(default_factory=dict)  # loop root -> [root, members...]
    deps: dict[str, list[str]] = field(default_factory=dict)
    store: Store | None = None
    claims: dict[str, str] = field(default_factory=dict)  # volume -> PVC name
    mounts: dict[str, str] = field(default_factory=dict)  # volume -> mount path
    scratch: str | None = None  # the volume that is an emptyDir per pod (with an object store)
    refs_of: dict[str, list[tuple[Any, Ref]]] = field(default_factory=dict)  # step -> refs (walked once)
    _inputs: dict[str, list[Input]] = field(default_factory=dict)

    # -- names -----------------------------------------------------------------------------------
    def name(self, step: str) -> str:
        return self.names[step]

    @property
    def wf_name(self) -> str:
        return k8s_name(self.pipeline.pipeline)

    @property
    def exit_handler(self) -> str | None:
        """The `finally` step, run by the workflow's `spec.onExit` (there is at most one)."""
        return next((n for n, s in self.steps.items() if s.kind == "finally"), None)

    # -- scopes ----------------------------------------------------------------------------------
    def scope(self, step: str) -> str | None:
        return self.body_of.get(step)

    def passes(self, step: str) -> int:
        """How many times Argo substitutes the step's template: ProcessArgs' two passes (globals, then
        inputs), and, in a template with a retryStrategy, SubstituteParams' two again for each attempt
        (argo-workflows v4.1.2 operator.go executeTemplate). A TFJob's `restarts` are retries too."""
        eff = self.steps[step]
        restarts = eff.restarts if isinstance(eff, Train) and eff.distributed else 0
        return 4 if eff.retry is not None or restarts else 2

    def item_b64(self, step: str) -> bool:
        """Is the loop item handed to the template base64 (`sprig.b64enc(item)`, so that Argo never scans
        its text)? Not when the items are, or may be, maps: Argo's expressions then see `item` as a map of
        stringified fields (operator.go processItem, util/expand removeConflicts), and only the tag
        `{{item}}` gives the item's JSON text. A list from an output may hold maps."""
        items = self.steps[step].for_each
        if isinstance(items, Ref):
            if items.root != "params":
                return False
            items = self.pipeline.params.get(items.fields[0])
        return not (isinstance(items, list) and any(isinstance(i, dict) for i in items))

    def item_expr(self, step: str) -> str:
        """The loop item's text, as an expression of the step's template."""
        return "sprig.b64dec(inputs.parameters['item'])" if self.item_b64(step) else "inputs.parameters['item']"

    def fanned(self, step: str) -> bool:
        return self.steps[step].for_each is not None

    def star(self, consumer: str, ref: Ref) -> bool:
        """Does `consumer` read every instance of `ref.root` (a JSON list) or one?"""
        if ref.index == "*":
            return True
        if not self.fanned(ref.root):
            return False
        return self.scope(consumer) is None or self.scope(consumer) != self.scope(ref.root)

    def inputs(self, step: str) -> list[Input]:
        """Distinct step outputs the template of `step` reads (not `when`: that is evaluated by the DAG)."""
        if step not in self._inputs:
            seen: dict[Input, None] = {}
            for path, ref in self.refs_of[step]:
                if (
                    path[:1] in (("when",), ("for_each",))
                    or not ref.is_step
                    or ref.root not in self.steps
                    or not ref.output
                ):
                    continue
                seen[Input(ref.root, ref.output, self.star(step, ref))] = None
            stored = [Input(i.root, STORE_PREFIX, False) for i in seen if self.memo_store(i.root, i.output)]
            self._inputs[step] = list(seen) + list(dict.fromkeys(stored))
        return self._inputs[step]

    def memo_store(self, step: str, output: str | None = None) -> bool:
        """Does `step` hand its readers the key prefix it wrote (`STORE_PREFIX`)? A memoized step with
        artifacts, not fanned out and in no loop body (one prefix), when the pipeline has an object store."""
        eff = self.steps[step]
        kinds = eff.outputs()
        if self.pipeline.artifacts is None or eff.memoize is None or self.fanned(step) or self.scope(step) is not None:
            return False
        return kinds.get(output) == "artifact" if output else "artifact" in kinds.values()

    def output_kind(self, step: str, output: str) -> str:
        """json (a param file), path (an artifact on the volume) or text (a plain string, e.g. a URL)."""
        kind = self.steps[step].outputs().get(output)
        if kind == "artifact":
            return "path"
        return "text" if isinstance(self.steps[step], Serve) else "json"

    # -- layout ----------------------------------------------------------------------------------
    def instance_dir(self, step: str) -> str:
        """On the store volume (in the pod's own /tmp when no step has outputs: nothing to hand on); one
        folder per instance, for a loop's step and for a loop body's other members alike."""
        root = self.store.mount if self.store is not None else "/tmp"
        base = f"{root}/dmlc/{{{{workflow.name}}}}/{step}"
        if not self.fanned(step) and self.scope(step) is None:
            return base
        return f"{base}/{self.instance_segment(step)}"

    def instance_segment(self, step: str) -> str:
        """The item itself when every item is a distinct, path-safe string; else a digest of the node's
        name, which Argo makes unique per instance (`a(1:x)`, `a(2:x)`, `a(0:x).b`) and keeps across
        retries (`node.name`, set before the attempts: operator.go executeTemplate)."""
        if items_as_segments(self.steps[step].for_each):  # the rule the object store's keys share
            return "{{=sprig.b64dec(inputs.parameters['item'])}}"
        return "{{=sprig.trunc(12, sprig.sha1sum(node.name))}}"

    # -- gates: tasks dmlc adds so a workflow fails exactly when a local run does ----------------------
    def min_success_gate(self, step: str) -> str | None:
        """The task counting a fanned-out `min_success` step's instances (Argo cannot count them)."""
        eff = self.steps[step]
        return f"{self.name(step)}-min-success" if eff.min_success is not None and eff.for_each is not None else None

    def body_gate(self, root: str) -> str | None:
        """The task that fails the workflow when a per-instance step of a loop body failed (they run with
        `continueOn`, so that the loop's own outputs reach its readers as they do locally)."""
        return f"{self.name(root)}-each-ok" if len(self.bodies.get(root, ())) > 1 else None

    def gate_of(self, up: str) -> str | None:
        """The gate a reader of `up` from the main DAG waits on, if any."""
        scope = self.scope(up)
        if scope is not None and scope != up:
            return self.body_gate(scope)
        return self.min_success_gate(up)

    def outputs_dir(self, step: str) -> str:
        """Fresh for each attempt (`pod.name`), as locally: a retried step never sees what a failed
        attempt wrote. `work_dir` stays, for checkpoints."""
        return self.instance_dir(step) + "/outputs/{{pod.name}}"

    def work_dir(self, step: str) -> str:
        return self.instance_dir(step) + "/work"


def _bodies(pipeline: Pipeline, deps: dict[str, list[str]]) -> dict[str, str]:
    """step -> loop root: a `wait = "each"` consumer joins the loop body of the fanned-out step it reads."""
    body_of: dict[str, str] = {}
    for name in pipeline.steps:  # pipeline order is a topological order for joins along a chain
        step = pipeline.steps[name]
        if step.wait != "each":
            continue
        for up in deps[name]:
            root = body_of.get(up) or (up if pipeline.steps[up].for_each is not None else None)
            if root is not None:
                body_of[name] = root
                body_of.setdefault(root, root)
                break
    return body_of


def make_plan(pipeline: Pipeline, options: Any) -> Plan:
    plan = Plan(pipeline, options)
    plan.steps = {name: effective(pipeline, name) for name in pipeline.steps}
    plan.names = {name: k8s_name(name) for name in pipeline.steps}
    plan.refs_of = {name: refs(step) for name, step in pipeline.steps.items()}
    plan.deps = dependencies(pipeline)
    plan.body_of = _bodies(pipeline, plan.deps)
    for step, root in plan.body_of.items():
        plan.bodies.setdefault(root, [])
        if step != root:
            plan.bodies[root].append(step)
    plan.bodies = {root: [root, *members] for root, members in plan.bodies.items()}
    _volumes(plan)
    return plan


def needs_store(pipeline: Pipeline) -> bool:
    return any(step.outputs() for step in pipeline.steps.values())


def _volumes(plan: Plan) -> None:
    pipeline = plan.pipeline
    for name, vol in pipeline.volumes.items():
        plan.claims[name] = k8s_name(f"{pipeline.pipeline}-{name}")
        plan.mounts[name] = vol.mount
    if pipeline.artifacts is not None:  # artifacts go to the object store; scratch space is each pod's own
        plan.mounts[WORK_VOLUME] = WORK_MOUNT
        plan.scratch = WORK_VOLUME
        plan.store = Store(WORK_VOLUME, WORK_MOUNT)
    elif pipeline.volumes:
        first = next(iter(pipeline.volumes))
        plan.store = Store(first, pipeline.volumes[first].mount)
    elif needs_store(pipeline):
        plan.claims[WORK_VOLUME] = k8s_name(f"{pipeline.pipeline}-{WORK_VOLUME}")
        plan.mounts[WORK_VOLUME] = WORK_MOUNT
        plan.store = Store(WORK_VOLUME, WORK_MOUNT)
