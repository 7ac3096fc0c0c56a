"""Retry classes: which failures of an attempt `retry { on = "failure" | "transient" }` covers.

Takes how an attempt ended; gives its classes. One table for every target: the local executor applies
it to the process it watched, the Argo target writes it as a retry expression over the container's
exit code and message. A container shows a process killed by a signal as exit 128+signal, so a signal
death and those exit codes count alike here (a shell whose child was killed exits with them too):
- transient: timed out, killed by a signal, or exit 75 (EX_TEMPFAIL), 137 (SIGKILL: OOM, eviction)
  or 143 (SIGTERM);
- failure: any other end than exit 0 or a timeout (exit 75, 137 and 143 included).
"""

from __future__ import annotations

EXIT_TRANSIENT = 75  # EX_TEMPFAIL: the step asks to be retried
SIGNAL_EXITS = (137, 143)  # 128 + SIGKILL, 128 + SIGTERM
TRANSIENT_EXITS = (EXIT_TRANSIENT, *SIGNAL_EXITS)


def classes(code: int | None, signal: int | None, timed_out: bool) -> set[str]:
    """The classes of an attempt that ended with exit `code` or `signal` (or was stopped at its timeout)."""
    found = set()
    if timed_out or signal or code in TRANSIENT_EXITS:
        found.add("transient")
    if not timed_out and (signal or code not in (None, 0)):
        found.add("failure")
    return found
