"""Executor semantics with task steps: retries, failures, timeouts, fan-out/in, wait, min_success, when, priority."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.executor.executor_support import Project


def results(project: Project, step: str, key: str = "main") -> dict:
    found = sorted(project.path.glob(f".dmlc/runs/*/steps/{step}/{key}/result.json"))
    return json.loads(found[-1].read_text())


def test_exit_75_once_is_retried(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task flaky {{
    command = {project.h("flaky", "flaky")}
    outputs {{ v = "param" }}
    retry {{ limit = 2  on = "transient" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert project.count("flaky") == 2
    assert results(project, "flaky")["outputs"]["v"] == 2
    attempts = project.store().attempts(project.store().runs()[0]["id"])
    assert [(a["attempt"], a["exit_code"]) for a in attempts] == [(1, 75), (2, 0)]


def test_retry_class_failure_does_not_retry_transient_only(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task bad {{
    command = {project.h("fail", "bad")}
    retry {{ limit = 3  on = "transient" }}
  }}
}}""")
    code, _ = project.execute()
    assert code == 3
    assert project.count("bad") == 1  # exit 1 is a failure, not transient


def test_backoff_waits_between_attempts(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task bad {{
    command = {project.h("fail", "bad")}
    retry {{ limit = 2  backoff = 300ms  factor = 2  on = "failure" }}
  }}
}}""")
    code, _ = project.execute()
    assert code == 3
    t = project.times("bad")
    assert len(t) == 3
    assert t[1] - t[0] >= 0.3 and t[2] - t[1] >= 0.6


def test_failure_stops_dependants_and_independent_branch_finishes(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task bad {{
    command = {project.h("fail", "bad")}
    outputs {{ v = "param" }}
  }}
  task after_bad {{
    command = {project.h("ok", "after_bad", "${bad.v}")}
  }}
  task control {{
    after = [bad]
    command = {project.h("ok", "control")}
  }}
  task other {{
    command = {project.h("sleep", "other", "0.5")}
    outputs {{ v = "param" }}
  }}
  task other2 {{
    command = {project.h("num", "other2", "${other.v}")}
  }}
}}""")
    code, out = project.execute()
    assert code == 3
    assert project.count("bad") == 1
    assert project.count("after_bad") == 0 and project.count("control") == 0, out
    assert project.count("other") == 1 and project.count("other2") == 1
    assert "step `bad` failed: exit 1; log: " in out
    log = out.split("log: ")[1].split()[0].rstrip(";")
    assert "boom" in (project.path / log).read_text()


def test_timeout_kills_the_process_group(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task hang {{
    command = {project.h("spawn_and_hang", "hang")}
    timeout = 1s
  }}
}}""")
    start = time.time()
    code, out = project.execute()
    assert code == 3
    assert time.time() - start < 15
    assert "timed out" in out
    child = int((project.path / "child.pid").read_text())
    time.sleep(0.2)
    assert not _alive(child), "the step's child process survived the timeout"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_fan_out_five_fan_in_sums(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task sq {{
    for_each = [1, 2, 3, 4, 5]
    command = {project.h("square", "sq", "${each}")}
    outputs {{ v = "param" }}
  }}
  task total {{
    command = {project.h("sum", "total", "${sq[*].v}")}
    outputs {{ total = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert project.count("sq") == 5
    assert results(project, "total")["outputs"]["total"] == 55


def test_dynamic_for_each_from_an_output(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task gen {{
    command = {project.h("num", "gen", "[3, 4]")}
    outputs {{ v = "param" }}
  }}
  task sq {{
    for_each = gen.v
    command = {project.h("square", "sq", "${each}")}
    outputs {{ v = "param" }}
  }}
  task total {{
    command = {project.h("sum", "total", "${sq[*].v}")}
    outputs {{ total = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert results(project, "total")["outputs"]["total"] == 25


def test_wait_each_starts_consumer_before_slowest_sibling_finishes(project: Project) -> None:
    project.write(f"""
pipeline t {{
  scheduling {{ parallelism = 4 }}
  task work {{
    for_each = [0.05, 2.5]
    command = {project.h("sleep", "work", "${each}")}
    outputs {{ v = "param" }}
  }}
  task post {{
    wait = "each"
    command = {project.h("num", "post", "${work.v}")}
    outputs {{ v = "param" }}
  }}
  task all {{
    command = {project.h("sum", "all", "${post.v}")}
    outputs {{ total = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    first_post = min(project.times("post"))
    slow_end = json.loads((project.path / ".dmlc").glob("runs/*/steps/work/1/result.json").__next__().read_text())
    assert slow_end["outputs"]["v"] == 2.5
    work_start = max(project.times("work"))  # the slow one started last or together
    assert first_post < work_start + 2.0, "the consumer waited for the slowest sibling"
    assert results(project, "all")["outputs"]["total"] == 2.55
    assert results(project, "post", "0")["outputs"]["v"] == 0.05


def test_min_success_two_of_three_proceeds(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task work {{
    for_each = [1, 2, 3]
    min_success = 2
    command = {project.h("fail_on", "work", "${each}", "2")}
    outputs {{ v = "param" }}
  }}
  task total {{
    command = {project.h("sum", "total", "${work[*].v}")}
    outputs {{ total = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert results(project, "total")["outputs"]["total"] == 4


def test_min_success_not_reached_fails(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task work {{
    for_each = [1, 2, 3]
    min_success = 3
    command = {project.h("fail_on", "work", "${each}", "2")}
    outputs {{ v = "param" }}
  }}
  task total {{
    command = {project.h("sum", "total", "${work[*].v}")}
  }}
}}""")
    code, out = project.execute()
    assert code == 3
    assert project.count("total") == 0
    assert "work[1]" in out


def test_when_false_skips_and_true_runs(project: Project) -> None:
    metrics = '{\\"accuracy\\": 0.9}'
    project.write(f"""
pipeline t {{
  params {{ deploy = false }}
  task score {{
    command = {project.h("metrics", "score", metrics)}
    outputs {{ metrics = "param" }}
  }}
  task ship {{
    when = "params.deploy == true"
    command = {project.h("ok", "ship")}
    outputs {{ v = "param" }}
  }}
  task good {{
    when = "score.accuracy >= 0.8 and not params.deploy"
    command = {project.h("ok", "good")}
  }}
  task after_ship {{
    command = {project.h("ok", "after_ship", "${ship.v}")}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    assert project.count("ship") == 0 and project.count("after_ship") == 0
    assert project.count("good") == 1
    assert "skipped" in out


def test_parallelism_one_starts_higher_priority_first(project: Project) -> None:
    project.write(f"""
pipeline t {{
  scheduling {{ parallelism = 1 }}
  task low {{
    priority = 1
    command = {project.h("ok", "low")}
  }}
  task high {{
    priority = 9
    command = {project.h("ok", "high")}
  }}
  task mid {{
    priority = 5
    command = {project.h("ok", "mid")}
  }}
  task plain {{
    command = {project.h("ok", "plain")}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    starts = {name: project.times(name)[0] for name in ("low", "high", "mid", "plain")}
    assert sorted(starts, key=starts.get) == ["high", "mid", "low", "plain"]
    runs = project.store().attempts(project.store().runs()[0]["id"])
    spans = sorted((a["started"], a["ended"]) for a in runs)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:], strict=False)), "more than one step ran at once"


def test_artifact_outputs_are_paths_and_digested(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task make {{
    command = {project.h("artifact", "make", "hello")}
    outputs {{ data = "artifact" }}
  }}
  task use {{
    command = {project.h("read", "use", "${make.data}")}
    outputs {{ v = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 0, out
    made = results(project, "make")
    assert os.path.isdir(made["outputs"]["data"]) and made["digests"]["data"].startswith("sha256:")
    assert results(project, "use")["outputs"]["v"] == "hello"


def test_missing_declared_output_fails(project: Project) -> None:
    project.write(f"""
pipeline t {{
  task lazy {{
    command = {project.h("fail_on", "lazy", "1", "2")}
    outputs {{ other = "param" }}
  }}
}}""")
    code, out = project.execute()
    assert code == 3
    assert "not written" in out


def test_yaml_twin_runs_the_same(project: Project) -> None:
    helper = str(project.path / "h.py")
    project.write(
        f"""pipeline: y
params: {{n: 4}}
steps:
  sq:
    kind: task
    for_each: [1, 2]
    command: [python, {helper}, square, sq, "${{each}}"]
    outputs: {{v: param}}
  total:
    kind: task
    command: [python, {helper}, sum, total, "${{sq[*].v}}"]
    outputs: {{total: param}}
""",
        "p.yaml",
    )
    code, out = project.execute("p.yaml")
    assert code == 0, out
    assert results(project, "total")["outputs"]["total"] == 5
