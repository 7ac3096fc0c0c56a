"""Pipeline state (local executor, stage 4): which instances exist, which are ready, how each step ended.

Takes the plan and the results the `Executor` reports; gives the instances of each step once its
upstreams allow (`for_each` lists resolved when known, one instance per paired upstream instance
under `wait = "each"`), readiness (`when` evaluated, `after` and data edges honoured), skips and
upstream failures, and each step's outcome (`min_success` tolerating failed instances). No processes
here: the `Executor` subclass starts them.
"""

from __future__ import annotations

import heapq
import itertools
from pathlib import Path
from typing import Any

from dmlc_targets.local.plan import LocalPlan
from dmlc_targets.local.rundir import RunDir
from dmlc_targets.local.state import (
    CACHED,
    FAILED,
    OK,
    READY,
    SKIPPED,
    SUCCEEDED,
    TERMINAL,
    UPSTREAM,
    WAITING,
    Instance,
    StepRun,
    Values,
)

from dmlc import build, memo
from dmlc.semantics import when
from dmlc.semantics.values import ResolveError, resolve


class Scheduler:
    def __init__(self, plan: LocalPlan, rundir: RunDir, view: Any, resume: bool) -> None:
        self.pipeline, self.rundir, self.view, self.resume = plan.pipeline, rundir, view, resume
        self.steps = {name: StepRun(step_plan) for name, step_plan in plan.steps.items()}
        self.values = Values(self.steps, plan.pipeline.params)
        self.ready: list[tuple[tuple[int, int, int], int, Instance]] = []  # heap: priority, pipeline order, index
        self._seq = itertools.count()
        self._spec_digests: dict[str, str] = {}
        self._code: dict[str, str | None] = {}
        self.source = plan.source_name
        self._order = {name: i for i, name in enumerate(self.steps)}
        self._dependents: dict[str, list[str]] = {name: [] for name in self.steps}
        for name, sr in self.steps.items():
            for dep in sr.plan.deps:
                self._dependents[dep].append(name)
        self._dirty: set[str] = set(self.steps)  # steps to look at again: all at first, then what events touch

    def instances(self) -> list[Instance]:
        return [i for sr in self.steps.values() for i in sr.instances or []]

    def _record(self, inst: Instance) -> None:
        """Subclasses write the instance to the metadata store."""

    def _settle(self) -> bool:
        """Expansion, readiness and step completion of the steps an event touched (an instance of theirs
        or of an upstream ended), in pipeline order, until nothing more changes; True if anything did.
        Incremental: a run of N steps costs O(N + edges) visits in all, not O(N) per event."""
        changed = False
        while self._dirty:
            batch = sorted(self._dirty, key=self._order.__getitem__)
            self._dirty.clear()
            for name in batch:
                changed |= self._settle_step(self.steps[name])
        return changed

    def _settle_step(self, sr: StepRun) -> bool:
        changed = False
        if sr.instances is None:
            changed |= self._try_expand(sr)
        if sr.instances is not None and sr.outcome is None:
            if sr.waiting:
                for inst in sr.waiting:
                    changed |= self._try_ready(sr, inst)
                sr.waiting = [i for i in sr.waiting if i.state == WAITING]
            changed |= self._try_finish(sr)
        return changed

    def _touch(self, step: str) -> None:
        """An instance of `step` ended: it and the steps that read it are looked at again."""
        self._dirty.add(step)
        self._dirty.update(self._dependents[step])

    def _enqueue(self, inst: Instance) -> None:
        inst.state = READY
        plan = self.steps[inst.step].plan
        key = (-(plan.step.priority or 0), plan.order, inst.index or 0)
        heapq.heappush(self.ready, (key, next(self._seq), inst))

    # --- expansion and readiness ----------------------------------------------------------------

    def _try_expand(self, sr: StepRun) -> bool:
        plan = sr.plan
        others = [d for d in plan.deps if d not in plan.drivers]
        if any(self.steps[d].outcome is None for d in others):
            return False
        if any(self.steps[d].instances is None for d in plan.drivers):
            return False
        blocked = self._blocked(sr, others)
        if blocked:
            state, reason = blocked
            sr.instances = [Instance(plan.name, None, state=state, reason=reason)]
            sr.done_count = 1
            self._announce(sr.instances[0])
            return True
        try:
            sr.instances = [Instance(plan.name, i, item) for i, item in self._items(sr)]
        except ResolveError as exc:
            sr.instances = [Instance(plan.name, None, state=FAILED, reason=str(exc))]
            self._announce(sr.instances[0])
        sr.waiting = [i for i in sr.instances if i.state == WAITING]
        sr.done_count = sum(i.done for i in sr.instances)
        return True

    def _blocked(self, sr: StepRun, deps: list[str]) -> tuple[str, str] | None:
        if sr.plan.step.kind == "finally":
            return None  # the exit handler runs whatever the other steps did (they failed, were skipped)
        for dep in deps:
            outcome = self.steps[dep].outcome
            if outcome == "failed":
                return UPSTREAM, f"upstream `{dep}` failed"
            if outcome == "skipped" and dep in sr.plan.data_deps:
                return SKIPPED, f"upstream `{dep}` was skipped, so its outputs do not exist"
        return None

    def _items(self, sr: StepRun) -> list[tuple[int | None, Any]]:
        plan = sr.plan
        if plan.step.for_each is not None:
            for_each = plan.step.model_dump(mode="json", include={"for_each"})["for_each"]
            items = resolve(for_each, self.values.lookup(Instance(plan.name, None)))
            if not isinstance(items, list):
                raise ResolveError(f"`for_each` must be a list, got {type(items).__name__}: {items!r}")
            return list(enumerate(items))
        if plan.drivers:
            driver = self.steps[plan.drivers[0]].instances or []
            return [(i.index if i.index is not None else n, None) for n, i in enumerate(driver)]
        return [(None, None)]

    def _restore(self, inst: Instance) -> bool:
        """An instance committed by an earlier session of this run is done (resume), unless what it
        would run changed since: its step was edited, its item, or the digest of an input."""
        again = self.steps[inst.step].plan.step.kind == "finally"  # it reports this session's status
        result = self.rundir.result(inst.step, inst.key) if self.resume and not again else None
        if result is None:
            return False
        inst.inputs = self.values.input_digests(inst)
        if result.get("run_key") != self.run_key(inst):
            self.view.event("changed", inst, "changed since the earlier session: run again")
            return False
        inst.state = CACHED if result.get("cached") else SUCCEEDED
        inst.outputs, inst.digests = result["outputs"], result["digests"]
        self.refetch(inst)
        inst.cache, inst.reason = "resumed", "finished before the resume"
        self.steps[inst.step].done_count += 1
        self._touch(inst.step)
        self.view.event("resumed", inst, "")
        return True

    def refetch(self, inst: Instance) -> None:
        """Hook: bring back artifacts of a resumed instance that are gone from the run folder (the executor
        reads them from the artifact store)."""

    def run_key(self, inst: Instance) -> str:
        """What decides an instance's result: its step's spec digest, the digest of the user code it runs,
        its item and its input digests."""
        spec = self._spec_digests.get(inst.step)
        if spec is None:
            spec = self._spec_digests[inst.step] = memo.spec_digest(self.pipeline, inst.step)
        key = {"spec": spec, "item": inst.item, "inputs": dict(sorted(inst.inputs.items()))}
        code = self.code_digest(inst.step)
        return memo.memo_key(key | {"code": code} if code else key)

    def code_digest(self, step: str) -> str | None:
        """The digest of the user code `step` runs (`run =`, a custom model) from the pipeline's folder,
        read once per run: edited code is new work for `--resume` and the cache alike."""
        if step not in self._code:
            root = Path(self.source).resolve().parent
            self._code[step] = build.code_digest(self.pipeline, step, root)
        return self._code[step]

    def _try_ready(self, sr: StepRun, inst: Instance) -> bool:
        for driver in sr.plan.drivers:
            paired = (self.steps[driver].instances or [])[inst.index or 0]
            if not paired.done:
                return False
            if paired.state not in OK:
                state = SKIPPED if paired.state == SKIPPED else UPSTREAM
                return self._settle_instance(inst, state, f"`{paired.label}` {paired.state}")
        condition = sr.plan.step.when
        if condition is not None:
            try:
                holds = when.holds(condition, self.values.lookup(inst))
            except ResolveError as exc:
                return self._settle_instance(inst, FAILED, str(exc))
            if not holds:
                return self._settle_instance(inst, SKIPPED, f"when `{condition}` is false")
        try:
            if self._restore(inst):
                return True
        except ResolveError as exc:
            return self._settle_instance(inst, FAILED, str(exc))
        self._enqueue(inst)
        return True

    def _settle_instance(self, inst: Instance, state: str, reason: str) -> bool:
        """Set a state, count the instance as finished the first time it reaches a terminal state."""
        if not inst.done and state in TERMINAL:
            self.steps[inst.step].done_count += 1
            self._touch(inst.step)
        inst.state, inst.reason = state, reason
        self._announce(inst)
        return True

    def _announce(self, inst: Instance) -> None:
        self.view.event(inst.state, inst, inst.reason)
        self._record(inst)

    def _try_finish(self, sr: StepRun) -> bool:
        if sr.done_count < len(sr.instances or []):
            return False
        if sr.plan.drivers and all(self.steps[d].outcome == "succeeded" for d in sr.plan.drivers):
            for inst in sr.instances or []:  # its pair failed, but `min_success` tolerated that
                if inst.state == UPSTREAM:
                    self._settle_instance(inst, SKIPPED, f"{inst.reason} (tolerated by min_success)")
        sr.outcome = sr.outcome_now()
        self._touch(sr.plan.name)
        return True
