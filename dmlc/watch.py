"""What a person sees of a run on any target (`dmlc status`, `dmlc submit --watch`, `status --watch`).

Takes successive `RunState`s (a target's report, polled) and gives the local view's look: one line per
step change (`[   4.20s] ✓ succeeded       train[0]`, plain, for pipes and CI), or a live table on a
TTY, and the same summary table and closing line as `dmlc run --local` (step, state, attempts,
time, note).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from dmlc.runs import RunRecord, RunState, StepState

SYMBOLS = {  # the local view's symbols (targets/local/progress.py), for the same states
    "started": "▶",
    "running": "▶",
    "succeeded": "✓",
    "cached": "≡",
    "failed": "✗",
    "skipped": "·",
    "retrying": "↻",
    "pending": " ",
    "scheduled": "◷",
    "upstream failed": "-",
    "serving": "◉",
}
QUIET = ("pending", "waiting", "ready")  # not yet started: no line until it starts
EVENT = {"running": "started"}  # a step's new state, as the event printed


class PlainRunView:
    """One line per step change, seconds since the watch began first."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.t0 = time.monotonic()
        self.seen: dict[str, tuple[str, int]] = {}
        self.run_state = ""

    def begin(self, record: RunRecord) -> None:
        self._line(f"watching {record.run} ({record.target}, pipeline {record.pipeline})")

    def update(self, state: RunState) -> None:
        if state.state != self.run_state and not state.over:
            self._run_line(state)
        for step in state.steps:
            before = self.seen.get(step.label)
            now = (step.state, step.attempts)
            if before == now or (before is None and step.state in QUIET):
                self.seen[step.label] = now
                continue
            self.seen[step.label] = now
            kind = EVENT.get(step.state, step.state)
            if before is not None and before[0] == step.state == "running":
                kind = "retrying"  # a new attempt of a running step
            detail = step.message if step.state in ("failed", "retrying", "skipped") else ""
            self.event(kind, step, detail)
        if state.state != self.run_state:  # the end of the run: after its last steps
            self._run_line(state)

    def _run_line(self, state: RunState) -> None:
        self.run_state = state.state
        self._line(f"[{self._clock()}] run {state.state}{_note(state.message)}")

    def event(self, kind: str, step: StepState, detail: str) -> None:
        self._line(f"[{self._clock()}] {SYMBOLS.get(kind, ' ')} {kind:<15} {step.label}{_note(detail)}")

    def _clock(self) -> str:
        return f"{time.monotonic() - self.t0:7.2f}s"

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def stop(self) -> None:
        pass

    def end(self, state: RunState) -> None:
        self.stop()
        summary(state, self.out)


class LiveRunView(PlainRunView):
    """A rich Live table redrawn at every poll (a TTY only); failures are also printed above it."""

    def __init__(self, out: TextIO | None = None) -> None:
        super().__init__(out)
        self.live: Any = None

    def begin(self, record: RunRecord) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.out)
        console.print(f"watching {record.run} ({record.target}, pipeline {record.pipeline})")
        self.live = Live(_table(None), console=console, refresh_per_second=4, transient=True)
        self.live.start()

    def update(self, state: RunState) -> None:
        self.run_state = state.state
        for step in state.steps:
            if step.state == "failed" and self.seen.get(step.label, ("",))[0] != "failed":
                self.live.console.print(f"{SYMBOLS['failed']} {step.label}: failed{_note(step.message)}")
            self.seen[step.label] = (step.state, step.attempts)
        self.live.update(_table(state))

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def make_view(out: TextIO | None = None) -> PlainRunView:
    stream = out or sys.stdout
    return LiveRunView(stream) if stream.isatty() else PlainRunView(stream)


def _note(text: str) -> str:
    return f"  {' '.join(text.split())[:200]}" if text else ""


def _took(step: StepState | RunState, clock: float | None = None) -> str:
    if not step.started:
        return ""
    end = step.ended or clock
    return f"{end - step.started:.1f}s" if end else ""


def _table(state: RunState | None, title: str | None = None) -> Any:
    from rich.table import Table

    table = Table(title=title, box=None, pad_edge=False, title_justify="left")
    for col in ("step", "state", "attempts", "time", "note"):
        table.add_column(col, overflow="fold")
    now = time.time()
    for step in state.steps if state else []:
        shown = f"{SYMBOLS.get(step.state, ' ')} {step.state}" if title is None else step.state
        table.add_row(step.label, shown, str(step.attempts or ""), _took(step, now), " ".join(step.message.split()))
    return table


def header(state: RunState) -> list[str]:
    rec = state.record
    where = f" at {rec.server}" if rec.server else ""
    space = f" (namespace {rec.namespace})" if rec.namespace else ""
    lines = [f"run {rec.run}  pipeline {rec.pipeline or '?'}  {rec.target}{where}{space}"]
    took = _took(state, time.time())
    lines.append(f"state {state.state}" + (f"  time {took}" if took else "") + _note(state.message))
    if rec.url:
        lines.append(f"{'view' if '://' in rec.url else 'folder'} {rec.url}")
    return lines


def summary(state: RunState, out: TextIO | None = None) -> None:
    """The closing table and line of a watched run (the local run's summary, for a remote one)."""
    from rich.console import Console

    stream = out or sys.stdout
    console = Console(file=stream, width=max(100, Console(file=stream).width), highlight=False)
    console.print(_table(state, "summary"))
    took = _took(state, time.time())
    console.print(f"run {state.record.run} {state.state}" + (f" in {took}" if took else "") + _note(state.message))


def show(state: RunState, out: TextIO | None = None) -> None:
    """`dmlc status RUN`: where and how the run is, then its steps."""
    from rich.console import Console

    stream = out or sys.stdout
    console = Console(file=stream, width=max(100, Console(file=stream).width), highlight=False)
    for line in header(state):
        console.print(line, markup=False)
    console.print(_table(state, "steps"))
