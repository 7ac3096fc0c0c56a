"""The plots of a run report (local executor, `dmlc runs report`), drawn by matplotlib as inline SVG.

Takes plain numbers: the attempts of each instance (start, end, outcome) for the timeline, a metric's
per-epoch values by instance (`model[mlp]` -> [(epoch, value)]), a metric's value by instance; gives
SVG text to put straight into the HTML page: text as SVG text (no embedded fonts), ids salted per
figure so several plots share one page, no date stamp. matplotlib is optional (`dmlc[report]`):
`available()` tells; the page says how to get the plots when it is missing.
"""

from __future__ import annotations

import io
import itertools
import re
from typing import Any

OUTCOME_COLOURS = {
    "succeeded": "#2e7d32",
    "cached": "#1565c0",
    "failed": "#c62828",
    "timed out": "#c62828",
    "retrying": "#ef6c00",
    "lost (executor died)": "#6d4c41",
    "running": "#f9a825",
}
_salt = itertools.count()


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def svg_of(fig: Any, title: str) -> str:
    """The figure as an <svg> element: no XML prolog, an accessible title, ids unique on the page."""
    import matplotlib

    buf = io.StringIO()
    rc = {"svg.fonttype": "none", "svg.hashsalt": f"dmlc-{next(_salt)}", "font.family": "sans-serif"}
    with matplotlib.rc_context(rc):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    return re.sub(r"<svg ", f'<svg role="img" aria-label="{_attr(title)}" ', text, count=1)


def _attr(text: str) -> str:
    from html import escape

    return escape(text, quote=True)


def timeline_svg(bars: list[tuple[str, float, float, str, int]]) -> str:
    """One row per instance (top to bottom in the order given), a bar per attempt from its start to its
    end in seconds since the run started, coloured by its outcome and marked with its number."""
    rows = list(dict.fromkeys(label for label, *_ in bars))
    fig, ax = _figure(8.5, 0.9 + 0.32 * len(rows))
    least = 0.006 * max((end for _, _, end, _, _ in bars), default=1.0)  # a cached instance stays visible
    for label, start, end, outcome, attempt in bars:
        y = rows.index(label)
        colour = OUTCOME_COLOURS.get(outcome, "#757575")
        ax.barh(y, max(end - start, least), left=start, height=0.6, color=colour, alpha=0.85)
        if attempt > 1:
            ax.text(end, y, f" #{attempt}", va="center", fontsize=7, color=colour)
    ax.set_yticks(range(len(rows)), rows, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the run started")
    ax.grid(axis="x", alpha=0.3)
    seen = sorted({o for *_, o, _ in bars})
    handles = [_patch(OUTCOME_COLOURS.get(o, "#757575"), o) for o in seen]
    ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return svg_of(fig, "timeline of the steps")


def _patch(colour: str, label: str) -> Any:
    from matplotlib.patches import Patch

    return Patch(color=colour, label=label)


def epoch_svg(metric: str, series: dict[str, list[tuple[int, float]]]) -> str:
    """A line per instance: `metric` at each epoch."""
    fig, ax = _figure(5.6, 3.4)
    for label, points in series.items():
        epochs, values = zip(*sorted(points), strict=True)
        ax.plot(epochs, values, marker="o", markersize=3.5, label=label)
    ax.set_title(f"{metric} per epoch")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return svg_of(fig, f"{metric} per epoch")


def instances_svg(metric: str, values: dict[str, float]) -> str:
    """A bar per instance: its value of `metric`."""
    labels = list(values)
    fig, ax = _figure(5.6, 0.9 + 0.34 * len(labels))
    ax.barh(range(len(labels)), [values[k] for k in labels], color="#5c6bc0", height=0.6)
    for y, k in enumerate(labels):
        ax.text(values[k], y, f" {values[k]:.4g}", va="center", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(f"{metric} by instance")
    ax.margins(x=0.18)
    ax.grid(axis="x", alpha=0.3)
    return svg_of(fig, f"{metric} by instance")
