"""The local launcher of a distributed `train` step (allreduce / parameter_server without TF_CONFIG).

It plays the part of the Kubeflow training operator on one machine: picks free localhost ports, starts
one subprocess per task (`workers`, plus a chief and `ps` for parameter_server), each with its own
TF_CONFIG and in its own process group, streams their logs with a `[worker 1]` prefix, and supervises.
When a process dies, every process of the job is killed and the job restarts from its last checkpoint
(BackupAndRestore), up to `restarts` times. With `elastic {min_workers, max_workers}` the restarted job
runs with the workers that survived, kept within those bounds (a lost slot is not refilled unless the
minimum demands it).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlc.ir.model import Train
from dmlc.runtime import callbacks as cb
from dmlc.runtime.step_io import TransientError, UserError, spec_json
from dmlc.semantics.spec import StepSpec

POLL_S = 0.2
EXIT_ORPHANED = 3
GRACE_S = 3.0


@dataclass
class Task:
    task_type: str
    index: int
    proc: subprocess.Popen

    @property
    def label(self) -> str:
        return f"{self.task_type} {self.index}"


def launch(spec: StepSpec) -> None:
    """Run the whole job locally; returns when the chief has written the outputs."""
    cfg: Train = spec.config(Train)
    strategy = cfg.strategy
    workers, elastic = initial_workers(cfg)
    ps = cfg.ps if strategy == "parameter_server" else 0
    restarts = cfg.restarts
    spec_path = spec.work_dir / "launcher" / "spec.json"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(spec_json(spec))
    cb.reset_log_if_fresh(spec.work_dir, cb.checkpoint_root(spec))
    for attempt in range(restarts + 1):
        print(f"launcher: attempt {attempt}: {strategy} with {workers} worker(s)" + (f" + {ps} ps" if ps else ""))
        failed = run_cluster(spec_path, strategy, workers, ps, attempt)
        if not failed:
            return
        lost = sum(1 for t in failed if t.task_type == "worker")
        if any(t.proc.returncode == 1 for t in failed):
            raise UserError(f"train {failed[0].label} stopped on a user error (see its log above)")
        if attempt == restarts:
            break
        workers = next_workers(workers, lost, elastic)
        print(f"launcher: {', '.join(t.label for t in failed)} failed; restarting from the last checkpoint")
    raise TransientError(f"distributed training failed after {restarts} restart(s)")


def initial_workers(cfg: Train) -> tuple[int, tuple[int, int] | None]:
    """Workers of the first attempt, and the elastic bounds (validated by the IR: min <= max)."""
    if cfg.elastic is None:
        return cfg.workers, None
    low, high = cfg.elastic.min_workers, cfg.elastic.max_workers
    return min(max(cfg.workers, low), high), (low, high)


def next_workers(workers: int, lost: int, elastic: tuple[int, int] | None) -> int:
    """Same size without elastic; else the survivors, clamped to [min_workers, max_workers]."""
    if elastic is None:
        return workers
    low, high = elastic
    return min(max(workers - lost, low), high)


def free_ports(count: int) -> list[int]:
    """Ports the OS considers free now (sockets held open together so they differ)."""
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


def cluster_spec(strategy: str, workers: int, ps: int) -> dict[str, list[str]]:
    roles = [("worker", workers)] if strategy == "allreduce" else [("chief", 1), ("worker", workers), ("ps", ps)]
    ports = iter(free_ports(sum(n for _, n in roles)))
    return {role: [f"127.0.0.1:{next(ports)}" for _ in range(n)] for role, n in roles}


def run_cluster(spec_path: Path, strategy: str, workers: int, ps: int, attempt: int) -> list[Task]:
    """Start every task, wait for the job; the failed tasks (empty on success)."""
    cluster = cluster_spec(strategy, workers, ps)
    tasks: list[Task] = []
    previous = signal.signal(signal.SIGTERM, _raise_exit)
    try:
        for task_type, addresses in cluster.items():
            for index in range(len(addresses)):
                tasks.append(start_task(spec_path, cluster, task_type, index, attempt))
        return supervise(tasks, strategy)
    finally:
        stop_all(tasks)
        signal.signal(signal.SIGTERM, previous)


def _raise_exit(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # so `finally` kills the workers when the executor stops us


def start_task(spec_path: Path, cluster: dict, task_type: str, index: int, attempt: int) -> Task:
    env = dict(os.environ)
    env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": task_type, "index": index}})
    env["DMLC_TRAIN_ATTEMPT"] = str(attempt)
    env["DMLC_LAUNCHER_PID"] = str(os.getpid())
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, "-m", "dmlc.runtime", "train", "--spec", str(spec_path)]
    argv += ["--role", task_type, "--task-index", str(index)]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, text=True
    )
    task = Task(task_type, index, proc)
    threading.Thread(target=_stream, args=(task,), daemon=True).start()
    return task


def watch_launcher() -> None:
    """In a launched task: exit when the launcher is gone (SIGKILLed launchers cannot clean up, and
    the tasks live in their own process groups, so nothing else would stop a ps server)."""
    launcher = int(os.environ.get("DMLC_LAUNCHER_PID") or 0)
    if not launcher:
        return

    def watch() -> None:
        while os.getppid() == launcher:
            time.sleep(1.0)
        os._exit(EXIT_ORPHANED)

    threading.Thread(target=watch, daemon=True, name="dmlc-launcher-watch").start()


def _stream(task: Task) -> None:
    assert task.proc.stdout is not None
    for line in task.proc.stdout:
        sys.stdout.write(f"[{task.label}] {line}")
        sys.stdout.flush()


def supervise(tasks: list[Task], strategy: str) -> list[Task]:
    """Wait until the job succeeds (every worker, or the PS chief, exits 0) or a task fails."""
    chief = tasks[0]  # worker 0 for allreduce, the chief for parameter_server
    while True:
        time.sleep(POLL_S)
        codes = {id(t): t.proc.poll() for t in tasks}
        # parameter_server workers and ps serve forever: any exit of theirs is a failure
        failed = [t for t in tasks if codes[id(t)] not in (None, 0) or (codes[id(t)] == 0 and _serves(t, strategy))]
        if failed:
            return failed
        if strategy == "parameter_server" and codes[id(chief)] == 0:
            return []
        if all(code == 0 for code in codes.values()):
            return []


def _serves(task: Task, strategy: str) -> bool:
    return strategy == "parameter_server" and task.task_type != "chief"


def stop_all(tasks: list[Task]) -> None:
    """SIGTERM every process group, then SIGKILL what is left after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [t for t in tasks if t.proc.poll() is None]
        for task in alive:
            try:
                os.killpg(task.proc.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + GRACE_S
        while alive and time.monotonic() < deadline:
            alive = [t for t in alive if t.proc.poll() is None]
            time.sleep(0.05)
    for task in tasks:
        task.proc.wait()
