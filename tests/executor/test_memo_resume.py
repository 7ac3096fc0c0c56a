"""Memoization, resume after SIGKILL / Ctrl-C, concurrent runs sharing one cache."""

from __future__ import annotations

import json
import signal
import time

from tests.executor.executor_support import Project


def memo_pipeline(project: Project, arg: str = "a", max_age: str = "1h", extra: str = "") -> None:
    project.write(f"""
pipeline m {{
  params {{ x = "{arg}" }}
  task make {{
    command = {project.h("artifact", "make", "${params.x}")}
    outputs {{ data = "artifact" }}
    memoize {{ max_age = {max_age} }}
  }}
  task use {{
    command = {project.h("read", "use", "${make.data}")}
    outputs {{ v = "param" }}
    memoize {{ }}{extra}
  }}
}}""")


def states(project: Project) -> dict[str, str]:
    store = project.store()
    run = store.runs()[0]["id"]
    return {row["step"]: row["state"] for row in store.steps(run)}


def test_second_run_is_a_hit_and_does_not_execute(project: Project) -> None:
    memo_pipeline(project)
    assert project.execute()[0] == 0
    code, out = project.execute()
    assert code == 0, out
    assert project.count("make") == 1 and project.count("use") == 1
    assert states(project) == {"make": "cached", "use": "cached"}
    result = json.loads(next(project.path.glob(".dmlc/runs/*/steps/use/main/result.json")).read_text())
    assert result["outputs"]["v"] == "a"


def test_no_cache_flag_executes_again(project: Project) -> None:
    memo_pipeline(project)
    project.execute()
    code, _ = project.execute(no_cache=True)
    assert code == 0
    assert project.count("make") == 2


def test_changed_input_is_a_miss_downstream_of_it(project: Project) -> None:
    memo_pipeline(project)
    project.execute()
    code, out = project.execute(params={"x": "b"})
    assert code == 0, out
    assert project.count("make") == 2  # its input (a param) changed
    assert project.count("use") == 2  # its input artifact's digest changed


def test_changed_spec_is_a_miss(project: Project) -> None:
    memo_pipeline(project)
    project.execute()
    memo_pipeline(project, extra='\n    env { MODE = "fast" }')
    code, _ = project.execute()
    assert code == 0
    assert project.count("make") == 1 and project.count("use") == 2


def test_max_age_expiry_is_a_miss(project: Project) -> None:
    memo_pipeline(project, max_age="1s")
    project.execute()
    time.sleep(1.2)
    code, out = project.execute()
    assert code == 0
    assert project.count("make") == 2
    assert "older than max_age" in out
    assert project.count("use") == 1  # same artifact content again: still a hit


def test_two_concurrent_runs_share_the_cache(project: Project) -> None:
    project.write(f"""
pipeline c {{
  task sq {{
    for_each = [1, 2, 3, 4, 5, 6]
    command = {project.h("square", "sq", "${each}")}
    outputs {{ v = "param" }}
    memoize {{ }}
  }}
  task total {{
    command = {project.h("sum", "total", "${sq[*].v}")}
    outputs {{ total = "param" }}
    memoize {{ }}
  }}
}}""")
    procs = [project.popen("run", "p.dml", "--local") for _ in range(2)]
    outs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    entries = list(project.path.glob(".dmlc/cache/entries/*/*/entry.json"))
    assert len(entries) == 7
    for entry in entries:
        json.loads(entry.read_text())
    assert not list(project.path.glob(".dmlc/cache/tmp/*"))
    code, out = project.execute()
    assert code == 0 and set(states(project).values()) == {"cached"}, out


def resume_pipeline(project: Project) -> None:
    project.write(f"""
pipeline r {{
  task a {{
    command = {project.h("ok", "a")}
    outputs {{ v = "param" }}
  }}
  task b {{
    command = {project.h("slow_first", "b", "${a.v}")}
    outputs {{ v = "param" }}
  }}
  task c {{
    command = {project.h("ok", "c", "${a.v}")}
  }}
  task d {{
    command = {project.h("ok", "d", "${b.v}")}
  }}
}}""")


def _wait_for(project: Project, *names: str, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if all(project.count(n) for n in names):
            return
        time.sleep(0.05)
    raise AssertionError(f"{names} did not start")


def test_sigkill_then_resume_redoes_only_unfinished_steps(project: Project) -> None:
    resume_pipeline(project)
    first = project.popen("run", "p.dml", "--local")
    _wait_for(project, "b", "c")
    deadline = time.time() + 20
    while not list(project.path.glob(".dmlc/runs/*/steps/c/main/result.json")) and time.time() < deadline:
        time.sleep(0.05)  # c has committed: from here on it must never run again
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    assert project.count("d") == 0
    second = project.run("run", "p.dml", "--local", "--resume")
    assert second.returncode == 0, second.stdout + second.stderr
    assert (project.count("a"), project.count("b"), project.count("c"), project.count("d")) == (1, 2, 1, 1)
    assert "resumed" in second.stdout
    listing = project.run("runs", "list")
    assert "succeeded" in listing.stdout and len(project.store().runs()) == 1


def test_ctrl_c_exits_130_and_resume_finishes(project: Project) -> None:
    resume_pipeline(project)
    first = project.popen("run", "p.dml", "--local")
    _wait_for(project, "b")
    first.send_signal(signal.SIGINT)
    out = first.communicate(timeout=20)[0]
    assert first.returncode == 130, out
    assert "--resume" in out
    run_id = project.store().runs()[0]["id"]
    second = project.run("run", "p.dml", "--local", "--resume", run_id)
    assert second.returncode == 0, second.stdout + second.stderr
    assert project.count("a") == 1 and project.count("b") == 2 and project.count("d") == 1


def test_resume_after_fix_reruns_the_failed_step_only(project: Project) -> None:
    project.write(f"""
pipeline f {{
  task a {{
    command = {project.h("ok", "a")}
    outputs {{ v = "param" }}
  }}
  task b {{
    command = {project.h("fail", "b")}
  }}
}}""")
    code, _ = project.execute()
    assert code == 3
    project.write((project.path / "p.dml").read_text().replace('"fail", "b"', '"ok", "b"').replace("fail", "ok"))
    code, out = project.execute(resume=True)
    assert code == 0, out
    assert project.count("a") == 1 and project.count("b") == 2


def test_resume_refuses_a_run_that_is_still_going(project: Project) -> None:
    resume_pipeline(project)
    first = project.popen("run", "p.dml", "--local")
    try:
        _wait_for(project, "b")
        second = project.run("run", "p.dml", "--local", "--resume")
        assert second.returncode == 1 and "still running" in second.stderr
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=20)


def test_a_longer_item_list_keeps_the_cached_items(project: Project) -> None:
    """The key holds an instance's item, not the whole list: adding an item recomputes only it."""
    for items in ("[1, 2, 3]", "[0, 1, 2, 3]"):
        project.write(f"""
pipeline f {{
  task sq {{
    for_each = {items}
    command  = {project.h("square", "sq", "${each}")}
    outputs {{ v = "param" }}
    memoize {{ }}
  }}
}}""")
        assert project.execute()[0] == 0
    assert project.count("sq") == 4  # 3 + the new item 0
