"""Hypothesis strategies of whole pipelines (YAML form) made of small shell tasks, for property tests.

A pipeline is a chain of `task` steps over `sh -c` commands, each step free to: fan out over a static
list, a pipeline param or an earlier step's list output; read earlier outputs (`x.out`, `x[*].out`,
or per instance under `wait = "each"`); have `when`, `after`, `min_success`, `retry` and `env` with
references; fail on purpose for some items. Every step writes a deterministic text output from what it
read, so two executors that agree write the same outputs. Not every drawn pipeline is valid: callers
check it first (that is a property too: no crash either way).
"""

from __future__ import annotations

import os
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def generated_settings(ci_examples: int) -> settings:
    """CI runs `ci_examples` cases, the same ones every time (a red CI is a change, not bad luck);
    DMLC_HYPOTHESIS_EXAMPLES=N runs N fresh random cases locally."""
    wanted = os.environ.get("DMLC_HYPOTHESIS_EXAMPLES")
    return settings(
        max_examples=int(wanted) if wanted else ci_examples,
        derandomize=not wanted,
        database=None if not wanted else settings.default.database,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )


TEXTS = ["none", "none", "{{workflow.name}} }}", "{{=sprig.upper('x')}}\n\"q\""]
ITEMS = st.one_of(
    st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=3, unique=True),
    st.lists(st.integers(0, 9), min_size=1, max_size=3, unique=True),
)


@st.composite
def _fan_out(draw: st.DrawFn, i: int, lists: list[str]) -> Any:
    choice = draw(st.sampled_from(["none", "none", "static", "param", "output"]))
    if choice == "static":
        return draw(ITEMS)
    if choice == "param":
        return "${params.items}"
    if choice == "output" and lists:
        return "${" + draw(st.sampled_from(lists)) + ".list}"
    return None


def _script(fail_on: str | None, lists: bool) -> str:
    """Write `out` (what the step read: $1 and the item) and, for list producers, a JSON list `list`."""
    lines = ['printf "%s|%s" "$1" "$${DMLC_ITEM:-}" > "$DMLC_OUTPUTS/out"']
    if lists:
        lines.append('printf \'["x","y"]\' > "$DMLC_OUTPUTS/list"')
    if fail_on is not None:
        lines.insert(0, f'if [ "$${{DMLC_ITEM:-}}" = "{fail_on}" ]; then exit 3; fi')
    return "\n".join(lines)


@st.composite
def _step(draw: st.DrawFn, i: int, earlier: dict[str, dict[str, Any]], lists: list[str]) -> dict[str, Any]:
    step: dict[str, Any] = {"kind": "task", "outputs": {"out": "param"}}
    fan = draw(_fan_out(i, lists))
    if fan is not None:
        step["for_each"] = fan
    reads: list[str] = []
    for name in draw(st.lists(st.sampled_from(sorted(earlier)), max_size=2, unique=True)) if earlier else []:
        up = earlier[name]
        if "for_each" in up and draw(st.booleans()) and "for_each" not in step:
            step["wait"] = "each"
            reads.append("${" + name + ".out}")
        elif "for_each" in up:
            reads.append("${" + name + "[*].out}")
        else:
            reads.append("${" + name + ".out}")
    makes_list = draw(st.booleans())
    if makes_list:
        step["outputs"]["list"] = "param"
    fail_on = None
    if isinstance(step.get("for_each"), list) and draw(st.booleans()):
        fail_on = str(step["for_each"][-1])
        step["min_success"] = draw(st.integers(1, max(1, len(step["for_each"]) - 1)))
    text = draw(st.sampled_from(TEXTS))  # sometimes Argo's own syntax: it must reach the step literally
    step["command"] = ["sh", "-c", _script(fail_on, makes_list), "sh", " ".join(reads) or text]
    if earlier and draw(st.integers(0, 4)) == 0:
        step["after"] = [draw(st.sampled_from(sorted(earlier)))]
    if draw(st.integers(0, 4)) == 0:
        step["when"] = draw(st.sampled_from(["params.go", "not params.go", "params.n > 1"]))
    if draw(st.integers(0, 3)) == 0:
        step["env"] = {"LABEL": "v-${params.label}"}
    if draw(st.integers(0, 5)) == 0:
        on = draw(st.sampled_from(["any", "failure", "transient", (3,), (4,)]))  # a failing step exits 3
        step["retry"] = {"limit": 1, "on": list(on) if isinstance(on, tuple) else on}
    return step


@st.composite
def pipelines(draw: st.DrawFn, max_steps: int = 5) -> dict[str, Any]:
    steps: dict[str, dict[str, Any]] = {}
    lists: list[str] = []
    for i in range(draw(st.integers(1, max_steps))):
        step = draw(_step(i, steps, lists))
        steps[f"s{i}"] = step
        if "list" in step["outputs"] and "for_each" not in step:
            lists.append(f"s{i}")
    label = draw(st.sampled_from(TEXTS))
    params = {"items": ["p", "q"], "go": draw(st.booleans()), "n": draw(st.integers(0, 3)), "label": label}
    return {"pipeline": "gen", "params": params, "steps": steps}
