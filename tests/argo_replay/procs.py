"""Local processes standing in for containers: each in its own process group, all stopped at the end.

A container's exit code is the process's; a process killed by signal N exits 128+N, as a container
runtime reports it. Stopping is Kubernetes' SIGTERM, a grace period, then SIGKILL, sent to the whole
process group, so a hung step (or a server) never outlives the replay; a process that left its group
(a server daemonized into its own session) is found by a mark in its environment (Linux /proc).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exit_code(proc: subprocess.Popen) -> int | None:
    code = proc.poll()
    if code is None:
        return None
    return 128 - code if code < 0 else code


MARK = "ARGO_REPLAY_SESSION"


class Procs:
    """Every process a replay started, marked in its environment so that one that left its process
    group (a daemon in a new session) is found and stopped too."""

    def __init__(self) -> None:
        self.running: list[subprocess.Popen] = []
        self.token = f"{os.getpid()}-{uuid.uuid4().hex}"

    def start(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out, open(log.with_suffix(".err"), "ab") as err:
            proc = subprocess.Popen(
                argv,
                env={**env, MARK: self.token},
                cwd=cwd,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.running.append(proc)
        return proc

    def wait(self, proc: subprocess.Popen, seconds: float) -> int | None:
        """The exit code, or None when the process still runs after `seconds`."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=max(seconds, 0.0))
        return exit_code(proc)

    def stop(self, proc: subprocess.Popen, grace: float = 2.0) -> int:
        if proc.poll() is None:
            self._signal(proc, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        self._signal(proc, signal.SIGKILL)  # the group may hold children after the leader exits
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        if proc in self.running:
            self.running.remove(proc)
        return exit_code(proc) or 0

    def stop_all(self) -> None:
        for proc in list(self.running):
            self.stop(proc)
        deadline = time.time() + 5.0
        while (pids := self.marked()) and time.time() < deadline:  # SIGKILL is delivered asynchronously
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def marked(self) -> list[int]:
        """Live processes whose environment carries this replay's mark."""
        needle = f"{MARK}={self.token}".encode()
        found = []
        for entry in Path("/proc").glob("[0-9]*"):
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
        return found

    @staticmethod
    def _signal(proc: subprocess.Popen, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)


def sleep_until(deadline: float, step: float = 0.1) -> None:
    time.sleep(max(0.0, min(step, deadline - time.time())))
