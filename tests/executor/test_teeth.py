"""Tests with teeth: fast behaviour tests that fail when the semantics they guard are mutated.

Four areas, each pinned by observable behaviour of `dmlc run --local` with plain `sh` command tasks
(no TensorFlow, no Python start-up per step where it can be avoided):

1. the memo key of a fan-out is per instance (its item, its inputs, the user's `memoize.key`);
2. `after` on a skipped step still runs, a data dependant of a skipped step is skipped;
3. pipeline `defaults` (retry, timeout, resources, memoize) and `image` fill in what a step does not
   set, and never override what it does set (at run time and in the compiled local / Argo output);
4. readiness and start order: every upstream ended, `scheduling.parallelism`, `priority`, then
   pipeline order, then item index, and `wait = "each"` pairing.

Ordering is observed through one append-only file (`log.txt`) the steps write `start X` / `end X`
lines to, so most assertions compare line positions rather than clock readings. Where a test needs
two steps to run at the same time, each waits for the other's marker file (a barrier with a
generous time-out) instead of relying on short sleeps.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml

from dmlc.driver import compile_file, load
from tests.executor.executor_support import Project

# --- helpers ----------------------------------------------------------------------------------


def sh(script: str) -> str:
    """A `command = [...]` running `script` with `sh -c` (single quotes only: no escaping needed)."""
    assert '"' not in script and "\\" not in script, script
    return f'["sh", "-c", "{script}"]'


def span(seconds: float = 0) -> str:
    """Log `start STEP/INSTANCE`, sleep, log `end STEP/INSTANCE`."""
    me = "$DMLC_STEP/$DMLC_INSTANCE"
    nap = f" sleep {seconds};" if seconds else ""
    return f"echo start {me} >> log.txt;{nap} echo end {me} >> log.txt"


def barrier(me: str, other: str, limit_s: int = 8) -> str:
    """Mark `me` present, wait (up to `limit_s`) for `other`; output v = seen | timeout."""
    tries = limit_s * 10
    return (
        f"touch {me}.here; i=0; while [ ! -e {other}.here ] && [ $i -lt {tries} ]; do sleep 0.1; i=$((i+1)); done; "
        f"if [ -e {other}.here ]; then echo seen > $DMLC_OUTPUTS/v; else echo timeout > $DMLC_OUTPUTS/v; fi"
    )


def log(project: Project) -> list[str]:
    file = project.path / "log.txt"
    return file.read_text().splitlines() if file.exists() else []


def lines(project: Project, name: str) -> list[str]:
    file = project.path / name
    return file.read_text().split() if file.exists() else []


def latest_run(project: Project) -> Path:
    return Path(project.store().runs()[0]["run_dir"])


def result(project: Project, step: str, key: str = "main") -> dict[str, Any]:
    """result.json of one instance in the latest run."""
    return json.loads((latest_run(project) / "steps" / step / key / "result.json").read_text())


def states(project: Project) -> dict[str, str]:
    """`step/instance` -> state, in the latest run."""
    store = project.store()
    run = store.runs()[0]["id"]
    return {f"{row['step']}/{row['instance']}": row["state"] for row in store.steps(run)}


def assert_after(order: list[str], consumer: str, producer: str) -> None:
    assert f"start {consumer}" in order and f"end {producer}" in order, order
    first, last = order.index(f"start {consumer}"), order.index(f"end {producer}")
    assert first > last, f"{consumer} started before {producer} ended: {order}"


def assert_serial(order: list[str]) -> None:
    """Every `start X` is directly followed by its `end X`: nothing else ran meanwhile."""
    assert len(order) % 2 == 0, order
    for begin, end in zip(order[::2], order[1::2], strict=True):
        assert begin.startswith("start ") and end == "end " + begin.removeprefix("start "), order


# --- 1. the memo key of a fan-out ---------------------------------------------------------------

ITEM_OUT = "echo $DMLC_ITEM >> ran.txt; echo $DMLC_ITEM > $DMLC_OUTPUTS/out; echo item-$DMLC_ITEM > $DMLC_OUTPUTS/data"
FAN_MEMO = f"""
pipeline m {{
  task a {{
    for_each = [10, 20, 30]
    command = {sh(ITEM_OUT)}
    outputs {{ out = "param"  data = "artifact" }}
    memoize {{ }}
  }}
}}"""


def test_fan_out_memo_hits_per_instance_and_restores_its_own_outputs(project: Project) -> None:
    # The command reads its item from $DMLC_ITEM, not from `${each}`: the item reaches the key only
    # through the recipe's `item`, not through an input digest.
    project.write(FAN_MEMO)
    code, out = project.execute()
    assert code == 0, out
    assert sorted(lines(project, "ran.txt")) == ["10", "20", "30"]
    code, out = project.execute()
    assert code == 0, out
    assert sorted(lines(project, "ran.txt")) == ["10", "20", "30"], "a memoized instance ran again"
    assert states(project) == {"a/0": "cached", "a/1": "cached", "a/2": "cached"}
    for index, item in enumerate([10, 20, 30]):
        restored = result(project, "a", str(index))
        assert restored["cached"] and restored["item"] == item
        assert restored["outputs"]["out"] == item, f"a[{index}] restored another instance's output"
        assert Path(restored["outputs"]["data"]).read_text().strip() == f"item-{item}"
    keys = {result(project, "a", str(i))["memo_key"] for i in range(3)}
    assert len(keys) == 3, "instances share a memo key"


def test_changed_upstream_output_misses_only_the_instances_that_read_it(project: Project) -> None:
    for item, text in ((1, "alpha"), (2, "beta"), (3, "gamma")):
        (project.path / f"in{item}.txt").write_text(text + "\n")
    project.write(f"""
pipeline m {{
  task src {{
    for_each = [1, 2, 3]
    command = {sh("cat in$DMLC_ITEM.txt > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task use {{
    wait = "each"
    command = {sh("echo ${src.v} >> used.txt; echo got-${src.v} > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
    memoize {{ }}
  }}
}}""")
    # `use` instances have no item (paired with `src`): only their inputs tell them apart.
    assert project.execute()[0] == 0
    code, out = project.execute()
    assert code == 0, out
    assert sorted(lines(project, "used.txt")) == ["alpha", "beta", "gamma"], "an unchanged input missed"
    assert [result(project, "use", str(i))["outputs"]["v"] for i in range(3)] == ["got-alpha", "got-beta", "got-gamma"]

    (project.path / "in2.txt").write_text("BETA\n")
    code, out = project.execute()
    assert code == 0, out
    assert sorted(lines(project, "used.txt")) == ["BETA", "alpha", "beta", "gamma"]
    now = states(project)
    assert (now["use/0"], now["use/1"], now["use/2"]) == ("cached", "succeeded", "cached")
    assert [result(project, "use", str(i))["outputs"]["v"] for i in range(3)] == ["got-alpha", "got-BETA", "got-gamma"]


def test_changed_memoize_key_is_a_miss(project: Project) -> None:
    def write(key: str) -> None:
        project.write(f"""
pipeline m {{
  task k {{
    command = {sh("echo x >> ran.txt; echo v > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
    memoize {{ key = "{key}" }}
  }}
}}""")

    write("one")
    assert project.execute()[0] == 0
    assert project.execute()[0] == 0
    assert len(lines(project, "ran.txt")) == 1  # same key: a hit
    write("two")
    code, out = project.execute()
    assert code == 0, out
    assert len(lines(project, "ran.txt")) == 2, "a changed `memoize.key` was a hit"
    assert states(project) == {"k/main": "succeeded"}


# --- 2. `after` on a skipped step -------------------------------------------------------------


def test_after_only_dependant_of_a_skipped_step_runs_and_data_dependant_is_skipped(project: Project) -> None:
    project.write(f"""
pipeline s {{
  params {{ go = false }}
  task gated {{
    when = "params.go == true"
    command = {sh("echo gated >> ran.txt; echo 1 > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task ordered {{
    after = [gated]
    command = {sh("echo ordered >> ran.txt; echo 2 > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task reader {{
    command = {sh("echo reader-${gated.v} >> ran.txt; echo 3 > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task next {{
    command = {sh("echo next-${ordered.v} >> ran.txt")}
  }}
  task behind_reader {{
    after = [reader]
    command = {sh("echo behind_reader >> ran.txt")}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert sorted(lines(project, "ran.txt")) == ["behind_reader", "next-2", "ordered"]
    assert states(project) == {
        "gated/main": "skipped",
        "ordered/main": "succeeded",
        "reader/main": "skipped",
        "next/main": "succeeded",
        "behind_reader/main": "succeeded",
    }


# --- 3. pipeline defaults ---------------------------------------------------------------------

# Exit 75 on the first attempt, succeed (v = attempt number) from the second on.
FLAKY = (
    "n=$(cat {name}.count 2>/dev/null || echo 0); n=$((n+1)); echo $n > {name}.count; "
    "[ $n -ge 2 ] || exit 75; echo $n > $DMLC_OUTPUTS/v"
)


def test_default_retry_applies_and_a_step_own_retry_wins(project: Project) -> None:
    project.write(f"""
pipeline d {{
  defaults {{ retry {{ limit = 2 }} }}
  task flaky {{
    command = {sh(FLAKY.format(name="flaky"))}
    outputs {{ v = "param" }}
  }}
  task stubborn {{
    retry {{ limit = 0 }}
    command = {sh(FLAKY.format(name="stubborn"))}
    outputs {{ v = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 3, out
    now = states(project)
    assert now["flaky/main"] == "succeeded", "the default retry did not apply"
    assert result(project, "flaky")["outputs"]["v"] == 2
    assert now["stubborn/main"] == "failed", "the default retry overrode the step's own `retry`"
    assert (project.path / "stubborn.count").read_text().strip() == "1"


def test_default_timeout_applies_and_a_step_own_timeout_wins(project: Project) -> None:
    project.write(f"""
pipeline d {{
  defaults {{ timeout = 1s }}
  task hang {{
    command = {sh("sleep 5; echo done > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task patient {{
    timeout = 60s
    command = {sh("sleep 2; echo done > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 3, out
    now = states(project)
    assert now["hang/main"] == "failed" and "timed out" in out, "the default timeout did not apply"
    assert now["patient/main"] == "succeeded", "the default timeout overrode the step's own `timeout`"


def test_default_resources_apply_and_a_step_own_resources_win(project: Project) -> None:
    # Each `big` step requests the whole machine (by default): they cannot overlap although
    # parallelism allows it. The `small` steps ask for little and must run together (barrier).
    cores = os.cpu_count() or 1
    project.write(f"""
pipeline d {{
  scheduling {{ parallelism = 8 }}
  defaults {{ resources {{ cpu = {cores} }} }}
  task big1 {{ command = {sh(span(0.4))} }}
  task big2 {{ command = {sh(span(0.4))} }}
  task small1 {{
    resources {{ cpu = 100m }}
    command = {sh(barrier("small1", "small2"))}
    outputs {{ v = "param" }}
  }}
  task small2 {{
    resources {{ cpu = 100m }}
    command = {sh(barrier("small2", "small1"))}
    outputs {{ v = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert_serial(log(project))  # the default resources applied
    assert result(project, "small1")["outputs"]["v"] == "seen", "the default overrode a step's own resources"
    assert result(project, "small2")["outputs"]["v"] == "seen"


def test_default_memoize_makes_a_second_run_a_hit(project: Project) -> None:
    project.write(f"""
pipeline d {{
  defaults {{ memoize {{ }} }}
  task once {{
    command = {sh("echo x >> ran.txt; echo v > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
}}""")
    assert project.execute()[0] == 0
    code, out = project.execute()
    assert code == 0, out
    assert len(lines(project, "ran.txt")) == 1, "the default memoize did not apply"
    assert states(project) == {"once/main": "cached"}


DEFAULTS_PIPELINE = """
pipeline d {
  image = "registry.example/base:1"
  defaults {
    retry { limit = 4 }
    timeout = 7s
    resources { cpu = 500m  memory = 64Mi }
    memoize { max_age = 1h }
  }
  task plain {
    command = ["true"]
    outputs { v = "param" }
  }
  task own {
    image = "registry.example/own:2"
    retry { limit = 1 }
    timeout = 30s
    resources { cpu = 2 }
    memoize { max_age = 2h }
    command = ["true"]
    outputs { v = "param" }
  }
}"""


def test_compiled_local_plan_shows_defaults_folded_in(project: Project) -> None:
    file = project.write(DEFAULTS_PIPELINE)
    plan = json.loads(compile_file(str(file), "local"))
    plain = plan["steps"]["plain"]["spec"]["attrs"]
    assert plain["image"] == "registry.example/base:1"
    assert plain["retry"]["limit"] == 4 and plan["steps"]["plain"]["attempts"] == 5
    assert plain["timeout"] == "7s"
    assert plain["resources"] == {"cpu": "500m", "memory": "64Mi", "gpu": None}
    assert plain["memoize"] == {"key": None, "max_age": "1h"}
    own = plan["steps"]["own"]["spec"]["attrs"]
    assert own["image"] == "registry.example/own:2"
    assert own["retry"]["limit"] == 1 and plan["steps"]["own"]["attempts"] == 2
    assert own["timeout"] == "30s"
    assert own["resources"] == {"cpu": "2", "memory": "64Mi", "gpu": None}  # resources merge field by field
    assert own["memoize"] == {"key": None, "max_age": "2h"}


def test_compiled_argo_workflow_shows_defaults_folded_in(project: Project) -> None:
    file = project.write(DEFAULTS_PIPELINE)
    workflow = yaml.safe_load(compile_file(str(file), "argo"))
    templates = {t["name"]: t for t in workflow["spec"]["templates"]}
    plain, own = templates["plain"], templates["own"]
    assert plain["retryStrategy"]["limit"] == 4 and own["retryStrategy"]["limit"] == 1
    assert plain["activeDeadlineSeconds"] == 7 and own["activeDeadlineSeconds"] == 30
    assert plain["container"]["resources"]["requests"] == {"cpu": "500m", "memory": "64Mi"}
    assert own["container"]["resources"]["requests"] == {"cpu": "2", "memory": "64Mi"}
    assert plain["container"]["image"] == "registry.example/base:1"
    assert own["container"]["image"] == "registry.example/own:2"
    assert plain["memoize"]["maxAge"] == "1h" and own["memoize"]["maxAge"] == "2h"


# --- 4. scheduler readiness and start order -----------------------------------------------------


FAN_SLEEP = (
    "echo start fan/$DMLC_INSTANCE >> log.txt; sleep $DMLC_ITEM; echo end fan/$DMLC_INSTANCE >> log.txt; "
    "echo $DMLC_ITEM > $DMLC_OUTPUTS/v"
)


def test_a_consumer_starts_only_after_every_upstream_ended(project: Project) -> None:
    project.write(f"""
pipeline r {{
  scheduling {{ parallelism = 8 }}
  task fast {{
    command = {sh(span() + "; echo 1 > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task slow {{
    command = {sh(span(1.2) + "; echo 2 > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
  task fan {{
    for_each = [0, 1.2]
    command = {sh(FAN_SLEEP)}
    outputs {{ v = "param" }}
  }}
  task ordered {{
    after = [fast, slow]
    command = {sh(span())}
  }}
  task data {{
    command = {sh("echo ${fast.v} ${slow.v} > got.txt; " + span())}
  }}
  task fanin {{
    command = {sh("echo ${fan[*].v} > fanin.txt; " + span())}
  }}
  task fanin_after {{
    after = [fan]
    command = {sh(span())}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    order = log(project)
    for consumer in ("ordered/main", "data/main"):
        assert_after(order, consumer, "fast/main")
        assert_after(order, consumer, "slow/main")
    for consumer in ("fanin/main", "fanin_after/main"):
        assert_after(order, consumer, "fan/0")
        assert_after(order, consumer, "fan/1")
    assert lines(project, "got.txt") == ["1", "2"]
    assert json.loads((project.path / "fanin.txt").read_text()) == [0, 1.2]


def test_parallelism_one_runs_one_at_a_time_by_priority_then_pipeline_order_then_index(project: Project) -> None:
    # `gate` (highest priority) runs first; `x` becomes ready only when it ends, after `y` has been
    # waiting: `x` still goes first, because it comes first in the pipeline.
    project.write(f"""
pipeline o {{
  scheduling {{ parallelism = 1 }}
  task gate {{
    priority = 20
    command = {sh(span(0.2))}
  }}
  task x {{
    after = [gate]
    command = {sh(span(0.1))}
  }}
  task y {{ command = {sh(span(0.1))} }}
  task low {{
    priority = 1
    command = {sh(span(0.1))}
  }}
  task high {{
    priority = 9
    command = {sh(span(0.1))}
  }}
  task fan {{
    for_each = ["a", "b", "c"]
    command = {sh(span(0.1))}
  }}
  task mid {{
    priority = 5
    command = {sh(span(0.1))}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    order = log(project)
    assert_serial(order)
    started = [line.removeprefix("start ") for line in order[::2]]
    assert started == ["gate/main", "high/main", "mid/main", "low/main", "x/main", "y/main", "fan/0", "fan/1", "fan/2"]


WORK_EACH = "if [ $DMLC_ITEM = 1 ]; then " + barrier("work1", "post0") + "; else echo quick > $DMLC_OUTPUTS/v; fi"


def test_wait_each_consumer_starts_as_soon_as_its_own_instance_ends(project: Project) -> None:
    # work[1] cannot end before post[0] has started (it waits for post[0]'s marker), so post[0]
    # must start while its sibling is still running; a fan-in would wait for work[1] and time out.
    project.write(f"""
pipeline w {{
  scheduling {{ parallelism = 4 }}
  task work {{
    for_each = [0, 1]
    command = {sh(WORK_EACH)}
    outputs {{ v = "param" }}
  }}
  task post {{
    wait = "each"
    command = {sh("touch post$DMLC_INSTANCE.here; echo ${work.v}-$DMLC_INSTANCE > $DMLC_OUTPUTS/v")}
    outputs {{ v = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert result(project, "work", "1")["outputs"]["v"] == "seen", "post[0] waited for work[1]"
    assert result(project, "post", "0")["outputs"]["v"] == "quick-0"
    assert result(project, "post", "1")["outputs"]["v"] == "seen-1"


class StartRecorder:
    """An `Executor` for `text` whose `_start` only marks the instance running and records it.

    A distributed train step would need TensorFlow to run, so the gang tests drive the executor's
    start decision (`_start_ready`) directly instead of running the pipeline.
    """

    def __init__(self, project: Project, text: str) -> None:
        from dmlc_targets.local.cache import Cache
        from dmlc_targets.local.executor import Executor, Options
        from dmlc_targets.local.plan import LocalPlan, build
        from dmlc_targets.local.rundir import RunDir
        from dmlc_targets.local.store import Store

        file = project.write(text)
        pipeline = load(str(file)).pipeline
        self.plan = LocalPlan(pipeline, build(pipeline), str(file))
        root = project.path / ".dmlc"
        root.mkdir(exist_ok=True)
        view = type("View", (), {"event": lambda self, *args: None})()
        store = Store(root / "metadata.db")
        self.ex = Executor(self.plan, RunDir(root, "r"), Cache(root / "cache"), store, view, Options())
        self.ex._start = self._start  # type: ignore[method-assign]
        self.started: list[str] = []

    def _start(self, inst: Any) -> None:
        from dmlc_targets.local.state import RUNNING

        inst.state = RUNNING
        self.ex.running[1000 + len(self.started)] = inst
        self.started.append(inst.label)

    def ready(self, *names: str) -> None:
        from dmlc_targets.local.state import Instance

        for name in names:
            self.ex._enqueue(Instance(name, None))

    def close(self) -> None:
        self.ex.reaper.close()


GANG = """
pipeline g {{
  scheduling {{ parallelism = {parallelism} }}
  ingest data {{ dataset = "digits" }}
  train gang {{
    data = data.dataset
    strategy = "allreduce"
    workers = {workers}
    priority = 5
  }}
  task busy {{ command = ["true"] }}
  task small {{ command = ["true"] }}
}}"""


def test_a_gang_waits_for_all_its_slots_and_smaller_steps_do_not_jump_ahead(project: Project) -> None:
    # The gang has as many workers as the machine has process slots (2 per core; `parallelism`
    # allows as many steps): while a 1-slot task runs, the gang must wait, and the lower-priority
    # task behind it must not start either; once the task ends, the gang starts and fills the machine.
    from dmlc_targets.local.state import RUNNING, Instance

    slots = 2 * (os.cpu_count() or 1)
    rec = StartRecorder(project, GANG.format(parallelism=slots, workers=slots))
    try:
        assert rec.plan.steps["gang"].slots == slots
        rec.ex.running[1] = Instance("busy", None, state=RUNNING)
        rec.ready("gang", "small")
        rec.ex._start_ready()
        assert rec.started == [], "a gang started without all its slots, or a smaller step jumped ahead of it"
        del rec.ex.running[1]
        rec.ex._start_ready()
        assert rec.started == ["gang"]
    finally:
        rec.close()


def test_a_gang_counts_as_one_step_toward_parallelism(project: Project) -> None:
    # `parallelism` counts steps (a TFJob is one node of an Argo workflow): with parallelism 2, a
    # 2-worker gang and one 1-slot task run together when the machine has the 3 process slots.
    rec = StartRecorder(project, GANG.format(parallelism=2, workers=2))
    try:
        rec.ready("gang", "small")
        rec.ex._start_ready()
        fits = 2 * (os.cpu_count() or 1) >= 3
        assert rec.started == (["gang", "small"] if fits else ["gang"])
    finally:
        rec.close()
