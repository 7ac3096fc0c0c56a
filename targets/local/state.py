"""Executor state (local executor, stage 4): step instances, their states, and reference lookup over them.

Takes the plan and the finished instances; gives `Instance`/`StepRun` records and `Values`, which
answers a reference for one instance (`x.out`, `x[*].out`, `x[2].out`, the paired instance under
`wait = "each"`, `params.p`, `each.f`) with a value, or with the digest that goes into a memo key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dmlc_targets.local.cache import digest_value
from dmlc_targets.local.plan import StepPlan
from dmlc_targets.local.proc import Proc

from dmlc.ir.graph import refs
from dmlc.ir.types import Ref
from dmlc.semantics.values import ResolveError, dig

WAITING, READY, RUNNING, BACKOFF = "waiting", "ready", "running", "backoff"
SUCCEEDED, CACHED, FAILED, SKIPPED, UPSTREAM = "succeeded", "cached", "failed", "skipped", "upstream failed"
OK = (SUCCEEDED, CACHED)
TERMINAL = (SUCCEEDED, CACHED, FAILED, SKIPPED, UPSTREAM)


@dataclass
class Instance:
    step: str
    index: int | None
    item: Any = None
    state: str = WAITING
    tries: int = 0  # attempts made by this executor session (the retry budget)
    attempt: int = 0  # number of the current attempt folder (keeps counting across resumes)
    outputs: dict[str, Any] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    reason: str = ""
    cache: str = ""
    memo_key: str | None = None
    recipe: dict[str, Any] | None = None
    started: float | None = None
    ended: float | None = None
    retry_at: float = 0.0
    proc: Proc | None = None
    log: str = ""

    @property
    def key(self) -> str:
        return "main" if self.index is None else str(self.index)

    @property
    def label(self) -> str:
        return self.step if self.index is None else f"{self.step}[{self.index}]"

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


@dataclass
class StepRun:
    plan: StepPlan
    instances: list[Instance] | None = None  # None until the step is expanded
    outcome: str | None = None  # succeeded | failed | skipped, once every instance is terminal
    waiting: list[Instance] = field(default_factory=list)  # instances not yet ready nor settled
    done_count: int = 0  # instances in a terminal state

    def outcome_now(self) -> str:
        insts = self.instances or []
        ok = sum(i.state in OK for i in insts)
        bad = sum(i.state in (FAILED, UPSTREAM) for i in insts)
        if bad == 0:
            return "skipped" if insts and ok == 0 else "succeeded"
        min_success = self.plan.step.min_success
        if min_success is not None and ok >= min_success:
            return "succeeded"  # partial failure tolerated
        return "failed"


class Values:
    """Answers references for one instance from the state of the others."""

    def __init__(self, steps: dict[str, StepRun], params: dict[str, Any]) -> None:
        self.steps = steps
        self.params = params

    def lookup(self, inst: Instance) -> Any:
        return lambda ref: self.value(inst, ref)

    def value(self, inst: Instance, ref: Ref) -> Any:
        if ref.root == "params":
            if not ref.fields:
                return dict(self.params)
            if ref.fields[0] not in self.params:
                raise ResolveError(f"unknown parameter `{ref.fields[0]}`")
            return dig(self.params[ref.fields[0]], ref.fields[1:], ref.text)
        if ref.root == "each":
            return dig(inst.item, ref.fields, ref.text)
        if ref.root == "pipeline":
            return self.run_status(ref)
        chosen = self._select(inst, ref)
        if isinstance(chosen, list):
            return [self._out(i, ref) for i in chosen]
        return self._out(chosen, ref)

    def run_status(self, ref: Ref) -> Any:
        """`${pipeline.status}`: failed when a step (the exit handler aside) failed, as the run's exit code
        says; `${pipeline.failures}`: the steps that failed themselves (not those their failure stopped)."""
        others = [(n, sr) for n, sr in self.steps.items() if sr.plan.step.kind != "finally"]
        if ref.fields == ("status",):
            return "failed" if any(sr.outcome == "failed" for _, sr in others) else "succeeded"
        if ref.fields == ("failures",):
            failed = [(n, sr.instances or []) for n, sr in others if sr.outcome == "failed"]
            return [n for n, insts in failed if any(i.state == FAILED for i in insts)]
        raise ResolveError(f"`{ref.text}` is not a value of the run")

    def digest(self, inst: Instance, ref: Ref) -> str:
        if not ref.is_step:
            return digest_value(self.value(inst, ref))
        chosen = self._select(inst, ref)
        name = ref.output or ""
        if isinstance(chosen, list):
            return digest_value([i.digests.get(name) for i in chosen])
        return chosen.digests.get(name) or digest_value(self._out(chosen, ref))

    def input_digests(self, inst: Instance) -> dict[str, str]:
        """Digest of every value the instance reads (its `when` aside), keyed by reference text."""
        step = self.steps[inst.step].plan.step
        out: dict[str, str] = {}
        for path, ref in refs(step):
            if path[:1] != ("when",) and ref.text not in out:
                out[ref.text] = self.digest(inst, ref)
        return out

    def _select(self, inst: Instance, ref: Ref) -> Instance | list[Instance]:
        up = self.steps[ref.root]
        insts = up.instances or []
        if ref.index == "*":
            return [i for i in insts if i.state in OK]
        if isinstance(ref.index, int):
            return self._ok(insts, ref.index, ref)
        if up.plan.multi:
            if ref.root in self.steps[inst.step].plan.drivers and inst.index is not None:
                return self._ok(insts, inst.index, ref)
            return [i for i in insts if i.state in OK]
        return self._ok(insts, 0, ref)

    def _ok(self, insts: list[Instance], index: int, ref: Ref) -> Instance:
        if index >= len(insts):
            raise ResolveError(f"`{ref.text}`: `{ref.root}` has {len(insts)} instance(s)")
        chosen = insts[index]
        if chosen.state not in OK:
            raise ResolveError(f"`{ref.text}`: `{chosen.label}` did not succeed ({chosen.state})")
        return chosen

    def _out(self, inst: Instance, ref: Ref) -> Any:
        fields = ref.fields
        if not fields:
            return dict(inst.outputs)
        if fields[0] in inst.outputs:
            return dig(inst.outputs[fields[0]], fields[1:], ref.text)
        raise ResolveError(f"`{ref.text}`: `{inst.label}` has no output `{fields[0]}`")
