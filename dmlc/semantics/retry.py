"""Retry rules: which failures of an attempt `retry { on = ... }` covers.

Takes how an attempt ended; gives what `on` can name of it. One rule for every target: the local
executor applies it to the process it watched, the Argo target writes it as a retry expression over
the container's exit code and message, the KFP launcher applies it to a TFJob's pods. A container shows
a process killed by a signal as exit 128+signal, so a signal death and those exit codes count alike
here (a shell whose child was killed exits with them too). `on` is a class or a list of exit codes:
- transient: timed out, killed by a signal, or exit 75 (EX_TEMPFAIL), 137 (SIGKILL: OOM, eviction)
  or 143 (SIGTERM);
- failure: any other end than exit 0 or a timeout (exit 75, 137 and 143 included);
- [75, 137]: the attempt ended with one of these exit statuses (1..255; a signal N as 128+N). An
  attempt stopped at its timeout names no code: the kill that stopped it is the executor's, not the
  step's exit (a pod killed at its deadline shows 137 or 143, whichever signal ended it);
- any: every failure.
"""

from __future__ import annotations

from collections.abc import Iterable

EXIT_TRANSIENT = 75  # EX_TEMPFAIL: the step asks to be retried
SIGNAL_EXITS = (137, 143)  # 128 + SIGKILL, 128 + SIGTERM
TRANSIENT_EXITS = (EXIT_TRANSIENT, *SIGNAL_EXITS)
EXIT_CODES = (1, 255)  # what a list may hold: a failure's exit status (0 is success; a status is one byte)
CLASSES = ("any", "failure", "transient")

Mark = str | int  # a class, or an exit status

# the mark of an attempt whose process succeeded but whose outputs could not be saved (an artifact store
# that failed): Argo's node is then Error with exit code 0, which only `on = "any"` retries
STORE_ERROR = "error"


def classes(code: int | None, signal: int | None, timed_out: bool) -> set[str]:
    """The classes of an attempt that ended with exit `code` or `signal` (or was stopped at its timeout)."""
    found = set()
    if timed_out or signal or code in TRANSIENT_EXITS:
        found.add("transient")
    if not timed_out and (signal or code not in (None, 0)):
        found.add("failure")
    return found


def exit_status(code: int | None, signal: int | None) -> int | None:
    """The status a container runtime reports: the exit code, or 128+N for a death by signal N."""
    return 128 + signal if signal else code


def marks(code: int | None, signal: int | None, timed_out: bool) -> set[Mark]:
    """What `on` can name of a failed attempt: its classes and, unless it timed out, its exit status."""
    found: set[Mark] = set(classes(code, signal, timed_out))
    status = exit_status(code, signal)
    if not timed_out and status not in (None, 0):
        found.add(status)
    return found


def covers(on: str | list[int], found: Iterable[Mark]) -> bool:
    """Whether `retry.on` covers an attempt that failed with these marks (none: it did not fail)."""
    found = set(found)
    if not found:
        return False
    if isinstance(on, str):
        return on == "any" or on in found
    return any(code in found for code in on)


def by_codes(on: str | list[int]) -> bool:
    return not isinstance(on, str)


def describe(on: str | list[int]) -> str:
    """`"transient"` or `exit codes 3, 75`, for messages."""
    if isinstance(on, str):
        return f'"{on}"'
    return ("exit code " if len(on) == 1 else "exit codes ") + ", ".join(map(str, on))
