"""The scheduler (local executor, stage 4): run a pipeline's plan on this machine with cluster semantics.

Takes a validated `Pipeline`, a run folder, the cache and the metadata store; gives an exit code
(0 ok, 3 a step failed, 130 interrupted). Steps start as soon as they are ready, ordered by
`priority` then pipeline order, at most `scheduling.parallelism` steps at once (a distributed train
job is one step, as it is one TFJob on Argo) within the machine's process slots (2 per core) and
CPU/memory; a distributed train job takes all its slots at once (gang) or waits. `for_each` lists from outputs
are expanded when known; `wait = "each"` consumers pair with each upstream instance; `min_success`,
`when` and `after` follow DESIGN §2.4. Retries, timeouts, memoization and resume live here too.
"""

from __future__ import annotations

import contextlib
import heapq
import os
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmlc_targets.local import attempt, proc, records, secret_env
from dmlc_targets.local.cache import Cache, digest_path, digest_value
from dmlc_targets.local.plan import LocalPlan, parallelism
from dmlc_targets.local.rundir import RunDir
from dmlc_targets.local.scheduler import Scheduler
from dmlc_targets.local.state import (
    BACKOFF,
    CACHED,
    FAILED,
    READY,
    RUNNING,
    SUCCEEDED,
    Instance,
    StepRun,
)
from dmlc_targets.local.store import Store

from dmlc import memo
from dmlc.diagnostics.model import DmlError
from dmlc.semantics.outputs import OutputError, read_outputs
from dmlc.semantics.retry import STORE_ERROR
from dmlc.semantics.spec import command, instantiate
from dmlc.semantics.values import ResolveError

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 3, 130


@dataclass
class Options:
    no_cache: bool = False
    keep_serving: bool = False
    resume: bool = False
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)  # step -> env name -> value
    remote: Any = None  # objstore.Remote: the pipeline's artifact store, written beside the cache


class Executor(Scheduler):
    """Runs the processes of a `Scheduler`'s ready instances and feeds their results back."""

    def __init__(self, plan: LocalPlan, rundir: RunDir, cache: Cache, store: Store, view: Any, opts: Options):
        super().__init__(plan, rundir, view, opts.resume)
        self.cache, self.store, self.opts = cache, store, opts
        self.run_id = rundir.run_id
        self.backoff: list[Instance] = []
        self.reaper = proc.Reaper()
        self.running: dict[int, Instance] = {}
        self.interrupted = False
        self.parallelism = parallelism(plan.pipeline)  # steps at once
        self.slot_cap = max(2 * (os.cpu_count() or 1), *(p.slots for p in plan.steps.values()))  # processes
        self.cpu_cap = (os.cpu_count() or 1) * 1000
        self.mem_cap = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        self.serving: list[tuple[Instance, Path]] = []

    # --- main loop ------------------------------------------------------------------------------

    def run(self) -> int:
        main = threading.current_thread() is threading.main_thread()  # only there can handlers be set
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            self._loop()
        except BaseException:  # a bug in here must not leave step processes running unsupervised
            for pid in list(self.running):
                proc.kill_group(pid)
            self._kill_strays()
            raise
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)
            self.reaper.close()
            with contextlib.suppress(DmlError):  # what the round recorded is kept; a store that fails is reported
                self.store.commit()
        return self._finish()

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.interrupted = True
        self.reaper.wake()

    def _loop(self) -> None:
        while True:
            self.store.begin()  # a round's records in one commit, made before waiting on anything
            while self._settle():
                pass
            if self.interrupted:
                self.store.commit()
                self._stop_all()
                return
            if all(s.outcome for s in self.steps.values()):
                self.store.commit()
                return
            if self._start_ready():
                continue  # a memo hit or a failed start may have made more steps ready
            self.store.commit()
            if not self.running and not self.backoff:
                raise RuntimeError("scheduler stalled: nothing running and nothing ready")
            self._wait(self._timeout())

    def _timeout(self) -> float | None:
        now = time.time()
        times = [i.proc.deadline for i in self.running.values() if i.proc and i.proc.deadline]
        times += [i.retry_at for i in self.backoff]
        return max(0.0, min(times) - now) if times else None

    def _wait(self, timeout: float | None) -> None:
        exits = self.reaper.wait(timeout)
        self.store.begin()
        for ex in exits:
            self._on_exit(ex)
        self._enforce_timeouts()
        self.store.commit()

    def _enforce_timeouts(self) -> None:
        now = time.time()
        for inst in self.running.values():
            p = inst.proc
            if p and p.deadline and now >= p.deadline and not p.timed_out:
                p.timed_out = True
                proc.kill_group(p.pid)  # the whole group: the step and whatever it started
                self._kill_strays(inst)

    # --- starting -------------------------------------------------------------------------------

    def _start_ready(self) -> bool:
        """Start what fits, best first; True when an instance changed state without starting a process."""
        now = time.time()
        for inst in [i for i in self.backoff if i.retry_at <= now]:
            self.backoff.remove(inst)
            self._enqueue(inst)
        settled = False
        passed_over = []
        while self.ready:
            entry = self.ready[0]
            inst = entry[2]
            if inst.state != READY:
                heapq.heappop(self.ready)
                continue
            plan = self.steps[inst.step].plan
            if self.running and len(self.running) >= self.parallelism:
                break
            if self._fits(plan):
                heapq.heappop(self.ready)
                self._start(inst)
                settled |= inst.state != RUNNING
            elif plan.slots > 1:
                break  # a gang waits for all its slots; smaller steps must not starve it
            else:
                passed_over.append(heapq.heappop(self.ready))  # too big for now: let smaller ones by
        for entry in passed_over:
            heapq.heappush(self.ready, entry)
        return settled

    def _fits(self, plan: Any) -> bool:
        if not self.running:
            return True  # an oversized step runs alone rather than never
        plans = [self.steps[i.step].plan for i in self.running.values()]
        slots = sum(p.slots for p in plans) + plan.slots
        cpu = sum(p.cpu for p in plans) + plan.cpu
        mem = sum(p.memory for p in plans) + plan.memory
        steps = len(self.running) + 1
        return steps <= self.parallelism and slots <= self.slot_cap and cpu <= self.cpu_cap and mem <= self.mem_cap

    def _start(self, inst: Instance) -> None:
        sr = self.steps[inst.step]
        try:
            spec = instantiate(sr.plan.spec, self.values.lookup(inst), item=inst.item, index=inst.index)
            inst.inputs = self.values.input_digests(inst)
        except ResolveError as exc:
            self._settle_instance(inst, FAILED, str(exc))
            return
        if inst.tries == 0 and self._memo_hit(sr, inst):
            return
        self._launch(sr, inst, spec)

    def _memo_hit(self, sr: StepRun, inst: Instance) -> bool:
        step = sr.plan.step
        if step.memoize is None:
            inst.cache = "off"
            return False
        if step.kind == "serve":  # a restored endpoint would point at servers stopped by the last run
            inst.cache = "off: a serve step always starts its servers"
            return False
        inst.recipe = memo.memo_recipe(self.pipeline, inst.step, inst.item, inst.inputs)
        code = self.code_digest(inst.step)
        if code:  # a local run's key holds the code it runs, as a cluster run's holds its image
            inst.recipe["code"] = code
        inst.memo_key = memo.memo_key(inst.recipe)
        if self.opts.no_cache:
            inst.cache = "miss: --no-cache"
            return False
        dest = self.rundir.instance(inst.step, inst.key) / "outputs"
        dest.parent.mkdir(parents=True, exist_ok=True)
        found = self.cache.restore(inst.memo_key, step.memoize.max_age, dest, kinds=dict(step.outputs()))
        inst.cache = found.reason
        if not found.hit or found.entry is None:
            return False
        entry = found.entry
        outputs = {n: (str(dest / n) if k == "artifact" else entry["values"][n]) for n, k in entry["kinds"].items()}
        now = time.time()
        inst.started = inst.ended = now
        failed = self._commit(inst, outputs, entry["digests"], cached=True)
        if failed is not None:
            self._settle_instance(inst, FAILED, failed)
            return True
        self._settle_instance(inst, CACHED, found.reason.removeprefix("hit: "))
        return True

    def _launch(self, sr: StepRun, inst: Instance, spec: dict[str, Any]) -> None:
        inst.tries += 1
        fresh = not self.resume and inst.attempt == 0
        inst.attempt = inst.attempt + 1 if inst.attempt else self.rundir.next_attempt(inst.step, inst.key, fresh)
        folder = self.rundir.attempt(inst.step, inst.key, inst.attempt)
        work = self.rundir.instance(inst.step, inst.key) / "work"  # kept across attempts: checkpoints
        spec = spec | {
            "outputs_dir": str(folder / "outputs"),
            "work_dir": str(work),
            "volumes": {n: str(self.rundir.volume(n)) for n in self.pipeline.volumes},
        }
        if command(spec) is None:
            work.mkdir(exist_ok=True)
        run = {"run_id": self.run_id, "key": inst.key, "attempt": str(inst.attempt)}
        secrets = self.opts.secrets.get(inst.step, {})
        launch = attempt.prepare(spec, run, folder, secrets, withheld=secret_env.names(self.opts.secrets))
        inst.log = str(folder / "log.txt")
        inst.started = time.time()
        try:
            masked = secret_env.values(self.opts.secrets)  # any step's log: a value can travel (files, outputs)
            p = proc.spawn(launch.argv, launch.env, Path(inst.log), self.reaper, masked)
        except OSError as exc:
            inst.state = RUNNING
            self._fail_attempt(inst, f"cannot start `{launch.argv[0]}`: {exc}", set())
            return
        timeout = sr.plan.step.timeout
        p.deadline = p.started + timeout if timeout else None
        inst.proc, inst.state = p, RUNNING
        self.running[p.pid] = inst
        self._record_attempt(inst, "running")
        self._record(inst)
        why = f"; cache {inst.cache}" if inst.cache.startswith("miss") else ""
        self.view.event("started", inst, f"attempt {inst.attempt}{why}")

    # --- completion -----------------------------------------------------------------------------

    def _on_exit(self, ex: proc.Exit) -> None:
        inst = self.running.pop(ex.pid, None)
        if inst is None or inst.proc is None:
            return
        plan = self.steps[inst.step].plan
        if plan.step.kind != "serve":
            proc.kill_group(ex.pid)  # like a container ending: nothing the step started outlives it
        inst.ended = ex.ended
        folder = Path(inst.log).parent
        if self.interrupted:
            self._record_attempt(inst, "interrupted", ex)
            self._settle_instance(inst, FAILED, "interrupted")
            return
        proc.drain(inst.proc, self.reaper)
        if ex.code == 0 and not inst.proc.timed_out:
            values, reason = _outputs(plan.step.outputs(), folder / "outputs")
            reason = reason or self._leak(inst, values, folder)
            if reason is None:
                self._record_attempt(inst, "succeeded", ex)
                reason = self._succeed(inst, values, folder)
                if reason is None:
                    return
                # the artifact store failed, not the step: Argo's node is then Error (its wait container
                # cannot save), which only `on = "any"` retries there too
                classes = {STORE_ERROR}
            else:
                classes = {"failure"}
        else:
            self._kill_strays(inst)  # a failed attempt leaves nothing behind for the retry to meet
            reason = proc.describe(ex, inst.proc.timed_out)
            classes = proc.failure_classes(ex, inst.proc.timed_out)
        self._record_attempt(inst, "failed", ex)
        self._fail_attempt(inst, reason, classes)

    def _leak(self, inst: Instance, values: dict[str, Any], folder: Path) -> str | None:
        """Why outputs (params and artifact files) holding a secret value of the run fail the step; what the
        step wrote is not kept."""
        leak = secret_env.leaked(values, secret_env.by_name(self.opts.secrets), folder / "outputs")
        if leak is None:
            return None
        shutil.rmtree(folder / "outputs", ignore_errors=True)
        return f"{leak}; outputs are written down, secrets never are"

    def _succeed(self, inst: Instance, values: dict[str, Any], folder: Path) -> str | None:
        """Promote and commit a finished attempt's outputs; why not, when the artifact store refused them."""
        declared = self.steps[inst.step].plan.step.outputs()
        final = self.rundir.promote(inst.step, inst.key, folder / "outputs")
        outputs = {n: (str(final / n) if declared[n] == "artifact" else v) for n, v in values.items()}
        digests = {
            n: digest_path(final / n) if declared[n] == "artifact" else digest_value(v) for n, v in outputs.items()
        }
        failed = self._commit(inst, outputs, digests, cached=False)
        if failed is not None:
            return failed
        if inst.memo_key and inst.recipe is not None:
            kinds = dict(declared)
            params = {n: v for n, v in outputs.items() if kinds[n] == "param"}
            meta = {"run": self.run_id, "pipeline": self.pipeline.pipeline, "step": inst.step, "instance": inst.key}
            meta |= {"kinds": kinds, "values": params, "digests": digests}
            self.cache.store(inst.memo_key, inst.recipe, final, meta)
        if self.steps[inst.step].plan.step.kind == "serve":
            self.serving.append((inst, folder))
            self.view.event("serving", inst, str(outputs.get("endpoint", "")))
        self._settle_instance(inst, SUCCEEDED, f"attempt {inst.attempt}")
        return None

    def _commit(self, inst: Instance, outputs: dict[str, Any], digests: dict[str, str], cached: bool) -> str | None:
        """Record an instance's outputs (uploaded first when the pipeline has an artifact store); nothing is
        recorded, and the reason is returned, when the store refuses them."""
        inst.outputs, inst.digests = outputs, digests
        result = {
            "outputs": outputs,
            "digests": digests,
            "cached": cached,
            "item": inst.item,
            "memo_key": inst.memo_key,
            "run_key": self.run_key(inst),
        }
        failed = self._upload(inst, outputs)  # before the commit: a run killed mid-upload redoes only this instance
        if failed is not None:
            return failed
        self.rundir.commit(inst.step, inst.key, result)
        folder = self.rundir.instance(inst.step, inst.key) / "outputs"
        rows = records.output_rows(self.steps[inst.step].plan.step, outputs, digests, folder)
        self.store.put_outputs(self.run_id, inst.step, inst.key, rows)
        self.store.put_inputs(self.run_id, inst.step, inst.key, inst.inputs)
        return None

    def _upload(self, inst: Instance, outputs: dict[str, Any]) -> str | None:
        if self.opts.remote is None:
            return None
        try:
            self.opts.remote.put_instance(self._where(inst), outputs)
        except DmlError as exc:  # DML212 / DML213: this instance fails, the run goes on (its `finally` too)
            return "; ".join(f"{d.message} ({d.code})" for d in exc.diagnostics)
        return None

    def refetch(self, inst: Instance) -> None:
        if self.opts.remote is not None:  # gone from the run folder: read back, checked against the digests
            self.opts.remote.get_instance(self._where(inst), inst.outputs, inst.digests, digest_path)

    def _where(self, inst: Instance) -> tuple[str, str, str, Any, Instance]:
        return self.pipeline.pipeline, self.run_id, inst.step, self.steps[inst.step].plan.step, inst

    def _fail_attempt(self, inst: Instance, reason: str, classes: set[str | int]) -> None:
        plan = self.steps[inst.step].plan
        retry = plan.step.retry
        if inst.tries < plan.attempts and proc.retries(plan.step, classes):
            delay = proc.backoff(retry, inst.tries)
            inst.state, inst.retry_at, inst.reason = BACKOFF, time.time() + delay, reason
            self.backoff.append(inst)
            self.view.event("retrying", inst, f"{reason}; retry {inst.tries}/{plan.attempts - 1} in {delay:g}s")
            self._record(inst)
            return
        self._settle_instance(inst, FAILED, reason)

    # --- records --------------------------------------------------------------------------------

    def _record(self, inst: Instance) -> None:
        self.store.put_step(records.step_row(self.run_id, inst))

    def _record_attempt(self, inst: Instance, outcome: str, ex: proc.Exit | None = None) -> None:
        self.store.put_attempt(records.attempt_row(self.run_id, inst, outcome, ex))

    # --- ending ---------------------------------------------------------------------------------

    def _stop_all(self) -> None:
        """Ctrl-C / SIGTERM: stop every running step group, give them 3 s, then kill."""
        for pid in list(self.running):
            proc.kill_group(pid, signal.SIGTERM)
        deadline = time.time() + 3
        while self.running and time.time() < deadline:
            self._wait(0.1)
        for pid in list(self.running):
            proc.kill_group(pid)
        while self.running:
            self._wait(1.0)

    def stop_serving(self) -> None:
        for inst, folder in self.serving:
            if inst.proc:
                proc.kill_group(inst.proc.pid, signal.SIGTERM)
            for group in proc.serve_groups(folder / "serve.pid"):
                proc.stop_group(group)

    def _kill_strays(self, inst: Instance | None = None) -> None:
        """Kill what a step started outside its process group (`setsid`, daemons, detached workers):
        those of one attempt (`inst`), or of the whole run but its kept servers."""
        if inst is not None:
            attempt = {"DMLC_STEP": inst.step, "DMLC_INSTANCE": inst.key, "DMLC_ATTEMPT": str(inst.attempt)}
            proc.kill_tagged(self.run_id, **attempt)
            return
        spare = set()
        if self.opts.keep_serving:
            spare = {g for i, folder in self.serving for g in proc.serve_groups(folder / "serve.pid")}
        proc.kill_tagged(self.run_id, spare)

    def _finish(self) -> int:
        if not self.opts.keep_serving:
            self.stop_serving()
            proc.wait_groups([g for _, folder in self.serving for g in proc.serve_groups(folder / "serve.pid")])
        self._kill_strays()
        if self.interrupted:
            return EXIT_INTERRUPTED
        failed = any(sr.outcome == "failed" for sr in self.steps.values())
        return EXIT_FAILED if failed else EXIT_OK


def _outputs(declared: dict[str, str], folder: Path) -> tuple[dict[str, Any], str | None]:
    """The values of a finished attempt's outputs, or why the attempt failed after all (DML206, missing)."""
    try:
        values, missing = read_outputs(declared, folder)
    except OutputError as exc:
        return {}, f"exit 0, but {exc}"
    if missing:
        return values, f"exit 0, but output(s) {', '.join(missing)} not written to $DMLC_OUTPUTS"
    return values, None
