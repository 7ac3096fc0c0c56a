"""Progress views (local executor, stage 4): what a user sees while `dmlc run --local` works.

Takes executor events (`started`, `succeeded`, `failed`, `retrying`, `cached`, `skipped`, ...) and
gives either plain line-per-event logs (not a TTY: CI, pipes, tests) or a rich live table (a TTY:
step, state, attempt, elapsed, note), and the final summary table either way.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

SYMBOLS = {
    "started": "▶",
    "succeeded": "✓",
    "cached": "≡",
    "resumed": "↺",
    "failed": "✗",
    "upstream failed": "-",
    "skipped": "·",
    "retrying": "↻",
    "serving": "◉",
}


LIVE_ROWS = 30


class PlainView:
    """One line per event, elapsed seconds first: easy to grep and to read in CI logs."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout
        self.t0 = time.monotonic()

    def begin(self, executor: Any, header: str) -> None:
        self._line(header)

    def event(self, kind: str, inst: Any, detail: str) -> None:
        note = f"  {detail}" if detail else ""
        self._line(f"[{time.monotonic() - self.t0:7.2f}s] {SYMBOLS.get(kind, ' ')} {kind:<15} {inst.label}{note}")

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def end(self) -> None:
        pass


class LiveView(PlainView):
    """A rich Live table redrawn on every event (a TTY only)."""

    def __init__(self, out: TextIO | None = None) -> None:
        super().__init__(out)
        self.executor: Any = None
        self.live: Any = None

    def begin(self, executor: Any, header: str) -> None:
        from rich.console import Console
        from rich.live import Live

        self.executor = executor
        self.console = Console(file=self.out)
        self.console.print(header)
        self.live = Live(self._table(), console=self.console, refresh_per_second=8, transient=True)
        self.live.start()

    def event(self, kind: str, inst: Any, detail: str) -> None:
        if kind in ("failed", "retrying", "serving") and self.live is not None:
            self.live.console.print(f"{SYMBOLS.get(kind, ' ')} {inst.label}: {kind} {detail}")
        if self.live is not None:
            self.live.update(self._table())

    def _table(self) -> Any:
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for col in ("step", "state", "attempt", "elapsed", "note"):
            table.add_column(col)
        now = time.time()
        instances = self.executor.instances() if self.executor else []
        if len(instances) > LIVE_ROWS:  # a wide run: what is moving or broken, and a count of the rest
            counts: dict[str, int] = {}
            for inst in instances:
                counts[inst.state] = counts.get(inst.state, 0) + 1
            table.caption = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
            instances = [i for i in instances if i.state in ("running", "backoff", "failed")][:LIVE_ROWS]
        for inst in instances:
            elapsed = f"{(inst.ended or now) - inst.started:.1f}s" if inst.started else ""
            state = f"{SYMBOLS.get(inst.state, ' ')} {inst.state}"
            table.add_row(inst.label, state, str(inst.attempt or ""), elapsed, inst.reason[:60])
        return table

    def end(self) -> None:
        if self.live is not None:
            self.live.stop()


def make_view(out: TextIO | None = None) -> PlainView:
    stream = out or sys.stdout
    return LiveView(stream) if stream.isatty() else PlainView(stream)


GROUP_OVER = 12  # a fan-out wider than this is one summary row (its failures are still listed)


def summary(instances: list[Any], out: TextIO | None = None) -> None:
    """The final table: a row per instance (a row per step for wide fan-outs) with state, attempts, time;
    an instance is named by its item where that is a short name (`model[mlp]`). Plain text columns: a
    rich Table took 2 s for 1,000 steps (bench/bench_local.py), this takes milliseconds."""
    from dmlc_targets.local.readout import labels

    names = labels((i.step, i.key, i.item) for i in instances)
    rows = [["step", "state", "attempts", "time", "cache", "note"]]
    for group in _groups(instances):
        one = group[0]
        rows.append(_row(one, names[one.step, one.key]) if len(group) <= GROUP_OVER else _group_row(group))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    lines = ["summary"] + [
        "  ".join([*(v.ljust(w) for v, w in zip(r[:-1], widths, strict=True)), r[-1]]).rstrip() for r in rows
    ]
    (out or sys.stdout).write("\n".join(lines) + "\n")


def _groups(instances: list[Any]) -> list[list[Any]]:
    by_step: dict[str, list[Any]] = {}
    for inst in instances:
        by_step.setdefault(inst.step, []).append(inst)
    out: list[list[Any]] = []
    for group in by_step.values():
        out += [group] if len(group) > GROUP_OVER else [[i] for i in group]
    return out


def _row(inst: Any, label: str) -> list[str]:
    took = f"{inst.ended - inst.started:.2f}s" if inst.started and inst.ended else ""
    cache = inst.cache.split(":")[0]  # hit | miss | off | resumed; the why is in the note or `runs show`
    return [label, inst.state, str(inst.attempt or ""), took, cache, inst.reason]


def _counts(values: list[str]) -> str:
    found: dict[str, int] = {}
    for v in values:
        found[v] = found.get(v, 0) + 1
    return ", ".join(f"{n} {v}" for v, n in found.items() if v)


def _group_row(group: list[Any]) -> list[str]:
    starts = [i.started for i in group if i.started]
    ends = [i.ended for i in group if i.ended]
    took = f"{max(ends) - min(starts):.2f}s" if starts and ends else ""
    label = f"{group[0].step}[0..{len(group) - 1}]"
    attempts = str(sum(i.attempt for i in group))
    note = next((f"{i.label}: {i.reason}" for i in group if i.state == "failed"), "")
    return [
        label,
        _counts([i.state for i in group]),
        attempts,
        took,
        _counts([i.cache.split(":")[0] for i in group]),
        note,
    ]
