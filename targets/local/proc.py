"""Step processes (local executor, stage 4): spawn one attempt in its own process group, reap it, kill it.

Takes an argument list, environment and log path; gives a `Proc` whose exit arrives on a queue as
an `Exit` (status, CPU time and peak memory of that attempt from `os.wait4`'s rusage, so the numbers
belong to the attempt alone). `posix_spawn` with `setpgroup=0` puts each attempt in a new process
group, so a timeout or Ctrl-C kills the step and everything it started, and nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import queue
import selectors
import shutil
import signal
import sys
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmlc.semantics import retry as retry_rule


@dataclass
class Exit:
    pid: int
    code: int | None  # exit status, or None when killed by a signal
    signal: int | None
    cpu_s: float
    max_rss_kb: int
    ended: float


@dataclass
class Proc:
    pid: int
    started: float
    start_token: str  # /proc start time: tells our process from a later one that reused the pid
    deadline: float | None = None
    timed_out: bool = False
    killing_since: float | None = None
    pump: int | None = None  # the pid of the log's masking pump (a step with secrets)


@functools.lru_cache(maxsize=256)
def which(program: str, path: str) -> str:
    """The executable `program` names on `path` (cached: a fan-out runs one program N times)."""
    if os.sep in program:
        return program
    found = shutil.which(program, path=path)
    if found is None:
        raise FileNotFoundError(f"command `{program}` not found on PATH")
    return found


def spawn(argv: list[str], env: dict[str, str], log: Path, reaper: Reaper, redact: list[str] | None = None) -> Proc:
    """Start `argv` with stdout+stderr appended to `log`; `reaper.wait` reports its Exit. With `redact`
    (the values of the step's secrets) the output goes through a masking pump process (redact.py)."""
    pump = None
    if redact:
        fd, pump = _pump(log, redact)
    else:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, fd, 1),
            (os.POSIX_SPAWN_DUP2, fd, 2),
        ]
        program = which(argv[0], env.get("PATH", os.defpath))
        pid = os.posix_spawn(program, argv, env, file_actions=actions, setpgroup=0)
    finally:
        os.close(fd)
    proc = Proc(pid, time.time(), start_token(pid), pump=pump)
    reaper.watch(pid)
    return proc


def _pump(log: Path, values: list[str]) -> tuple[int, int]:
    """Start the masking pump on a new pipe: the pipe's write end (for the step) and the pump's pid.
    Its own process group, so a Ctrl-C for the executor does not cut a step's log short."""
    read, write = os.pipe()
    try:
        argv = [sys.executable, "-S", str(Path(__file__).with_name("redact.py")), str(log)]
        env = {"DMLC_REDACT": json.dumps(values)}
        pid = os.posix_spawn(sys.executable, argv, env, file_actions=[(os.POSIX_SPAWN_DUP2, read, 0)], setpgroup=0)
    except BaseException:
        os.close(write)
        raise
    finally:
        os.close(read)
    return write, pid


def drain(proc: Proc, reaper: Reaper, seconds: float = 2.0) -> None:
    """Wait up to `seconds` for a step's log pump to write everything (it ends when the last writer
    closes its pipe); one held open longer by something the step left running is reaped later."""
    if proc.pump is None:
        return
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if os.waitpid(proc.pump, os.WNOHANG)[0]:
            proc.pump = None
            return
        time.sleep(0.01)
    reaper.watch(proc.pump)
    proc.pump = None


def _exit(pid: int, status: int, usage: Any) -> Exit:
    code = os.waitstatus_to_exitcode(status)
    sig = -code if code < 0 else None
    cpu = usage.ru_utime + usage.ru_stime
    return Exit(pid, None if sig else code, sig, cpu, usage.ru_maxrss, time.time())


class Reaper:
    """Waits for step processes: a pidfd per child in one selector (Linux >= 5.3), so the main loop needs
    no thread per step; elsewhere a thread per child. `wake()` (from a signal handler) ends a wait early."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.done: queue.Queue[Exit] = queue.Queue()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, None)

    def watch(self, pid: int) -> None:
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            threading.Thread(target=self._reap_blocking, args=(pid,), daemon=True).start()
            return
        self.sel.register(fd, selectors.EVENT_READ, pid)

    def _reap_blocking(self, pid: int) -> None:
        _, status, usage = os.wait4(pid, 0)
        self.done.put(_exit(pid, status, usage))
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self.wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full: a wake-up is already pending

    def wait(self, timeout: float | None) -> list[Exit]:
        """Exits that happened, waiting up to `timeout` seconds (None: until something happens)."""
        out: list[Exit] = []
        for key, _ in self.sel.select(timeout):
            if key.data is None:
                with contextlib.suppress(BlockingIOError):
                    os.read(self.wake_r, 4096)
                continue
            got, status, usage = os.wait4(key.data, os.WNOHANG)
            if got:
                self.sel.unregister(key.fd)
                os.close(key.fd)
                out.append(_exit(got, status, usage))
        while not self.done.empty():
            out.append(self.done.get_nowait())
        return out

    def close(self) -> None:
        for key in list(self.sel.get_map().values()):
            self.sel.unregister(key.fd)
            os.close(key.fd)
        os.close(self.wake_w)
        self.sel.close()


def start_token(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat); one raw read,
    as this runs once per attempt."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        try:
            stat = os.read(fd, 4096)
        finally:
            os.close(fd)
        return stat.rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def tagged(run_id: str, **match: str) -> list[int]:
    """Processes whose environment says they belong to run `run_id` (and to `match`, e.g. DMLC_STEP=...).

    Every attempt's environment carries DMLC_RUN_ID, DMLC_STEP, DMLC_INSTANCE and DMLC_ATTEMPT, and its
    children inherit them, also a child that left the step's process group (`setsid`, a daemon): the
    group kill misses those, this finds them. One read of /proc, so it runs at a timeout and at the
    end of a run, not after every step. A process that clears its own environment is not found."""
    want = {b"DMLC_RUN_ID=" + run_id.encode(), *(f"{k}={v}".encode() for k, v in match.items())}
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                env = set(f.read().split(b"\0"))
        except OSError:  # gone, or not ours to read
            continue
        if want <= env:
            found.append(int(entry.name))
    return found


def kill_tagged(run_id: str, spare_groups: Collection[int] = (), **match: str) -> int:
    """SIGKILL the processes `tagged` finds (outside `spare_groups`); how many there were."""
    pids = [p for p in tagged(run_id, **match) if _pgid(p) not in spare_groups]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def alive(pid: int | None, token: str | None) -> bool:
    """Whether `pid` is still the process that recorded `token` (its start time)."""
    return bool(pid and token and start_token(pid) == token)


def kill_stale(pid: int, token: str) -> bool:
    """Kill the group of an attempt left running by an executor that died, if it is still that process."""
    if not token or start_token(pid) != token:
        return False
    return kill_group(pid)


def describe(exit: Exit, timed_out: bool) -> str:
    if timed_out:
        return "timed out"
    if exit.signal:
        try:
            name = signal.Signals(exit.signal).name
        except ValueError:
            name = f"signal {exit.signal}"
        return f"killed by {name}"
    return f"exit {exit.code}"


def failure_classes(exit: Exit, timed_out: bool) -> set[retry_rule.Mark]:
    """What `retry.on` can name of a failed attempt (dmlc.semantics.retry): its classes, `transient`
    and/or `failure`, and, unless it timed out, its exit status (a signal N as 128+N)."""
    return retry_rule.marks(exit.code, exit.signal, timed_out)


def retries(step: Any, classes: set[retry_rule.Mark]) -> bool:
    """Whether the step's retry policy covers a failure with these marks."""
    if not classes:
        return False
    if step.retry is None:
        return step.kind == "train" and getattr(step, "restarts", 0) > 0  # restarts: any failure of the job
    return retry_rule.covers(step.retry.on, classes)


def backoff(retry: Any, tries: int) -> float:
    """Seconds before retry number `tries`: backoff * factor^(tries-1), capped at max_backoff."""
    if retry is None or not retry.backoff:
        return 0.0
    delay = retry.backoff * (retry.factor or 1) ** (tries - 1)
    return min(delay, retry.max_backoff) if retry.max_backoff else delay


def serve_groups(path: Path) -> list[int]:
    """Process groups a serve step left running: `{"pgids": [...]}` written by the runtime."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [int(g) for g in data.get("pgids", []) if isinstance(g, int)]


def wait_groups(groups: list[int], seconds: float = 3.0) -> None:
    """Give stopped process groups `seconds` to exit (servers finishing their requests)."""
    deadline = time.monotonic() + seconds
    for group in groups:
        while time.monotonic() < deadline and kill_group(group, 0):
            time.sleep(0.05)


def stop_group(group: int) -> None:
    if group > 1 and group != os.getpgrp():  # never our own group
        kill_group(group, signal.SIGTERM)
