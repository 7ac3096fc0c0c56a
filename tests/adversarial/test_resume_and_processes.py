"""Resume never reuses a stale result, and nothing a step starts outlives it (issue 12).

`--resume` reuses an instance finished by the earlier session only while what it would run is the
same (its step's spec, item and input digests): an edited step runs again, and so does everything
that reads it whose inputs change. A process a step starts in a new session (`setsid`, a daemon) is
killed with the step at its end, at its timeout and at the end of the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.executor.executor_support import Project
from tests.executor.test_memo_resume import states
from tests.executor.test_semantics import _alive


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def _chain(project: Project, a_arg: str, b_mode: str, timeout: str = "") -> None:
    project.write(f"""
pipeline r {{
  task a {{
    command = {project.h("num", "a", a_arg)}
    outputs {{ v = "param" }}
    {timeout}
  }}
  task b {{
    command = {project.h(b_mode, "b", "${a.v}", "2")}
    outputs {{ v = "param" }}
  }}
  task c {{
    command = {project.h("num", "c", "7")}
    outputs {{ v = "param" }}
  }}
}}""")


def test_resume_after_editing_a_succeeded_step_runs_it_again(project: Project) -> None:
    _chain(project, "2", "fail_on")  # a.v = 2: b fails (fail_on fails when its two args are equal)
    code, _ = project.execute()
    assert code == 3 and project.count("a") == 1 and project.count("c") == 1
    _chain(project, "5", "fail_on")  # edit the succeeded step a: its old value (2) would still fail b
    code, out = project.execute(resume=True)
    assert code == 0, out
    assert project.count("a") == 2, "the edited step must run again, not be resumed"
    assert project.count("b") == 2 and project.count("c") == 1  # c did not change: resumed
    assert "changed since the earlier session" in out
    assert states(project)["a"] == "succeeded"


def test_resume_keeps_a_result_when_only_how_it_runs_changed(project: Project) -> None:
    _chain(project, "2", "fail_on")
    assert project.execute()[0] == 3
    _chain(project, "2", "ok", timeout="timeout = 10m")  # a: only its timeout changed; b: fixed
    code, out = project.execute(resume=True)
    assert code == 0, out
    assert project.count("a") == 1 and project.count("b") == 2
    assert states(project)["a"] == "succeeded"


def test_resume_reruns_a_succeeded_reader_whose_input_changed(project: Project) -> None:
    _chain(project, "3", "fail_on")  # b succeeds (3 != 2) ...
    project.write(project.path.joinpath("p.dml").read_text() + "\n")
    text = project.path.joinpath("p.dml").read_text()
    project.write(text.replace("pipeline r {", 'pipeline r {\n  task z {\n    command = ["false"]\n  }'))
    assert project.execute()[0] == 3  # ... and the run fails on z
    _chain(project, "4", "fail_on")  # z removed, a edited: b's input changed, so b runs again
    code, out = project.execute(resume=True)
    assert code == 0, out
    assert project.count("a") == 2 and project.count("b") == 2 and project.count("c") == 1


ESCAPE = r"""
import os, subprocess, sys, time
mode, pidfile = sys.argv[1:]
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
if mode == "daemon":  # double fork: the daemon's parent is gone before the step ends
    pid = os.fork()
    if pid == 0:
        os.setsid()
        if os.fork():
            os._exit(0)
        open(pidfile + ".daemon", "w").write(str(os.getpid()))
        time.sleep(300)
        os._exit(0)
    os.waitpid(pid, 0)
open(pidfile, "w").write(str(child.pid))
if mode == "hang":
    time.sleep(300)
sys.exit(1 if mode == "fail" else 0)
"""


def _gone(pids: list[int], seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def _escapees(project: Project, mode: str, extra: str = "") -> list[int]:
    (project.path / "escape.py").write_text(ESCAPE)
    project.write(f"""
pipeline e {{
  task t {{
    command = ["python", "{project.path / "escape.py"}", "{mode}", "{project.path / "pids"}"]
    {extra}
  }}
}}""")
    project.execute()
    files = [project.path / "pids", project.path / "pids.daemon"]
    return [int(f.read_text()) for f in files if f.exists()]


@pytest.mark.parametrize(
    ("mode", "extra"),
    [("hang", "timeout = 2s"), ("fail", ""), ("ok", ""), ("daemon", "")],
    ids=["timeout", "failed", "succeeded", "double-fork daemon"],
)
def test_nothing_a_step_starts_outlives_the_run(project: Project, mode: str, extra: str) -> None:
    pids = _escapees(project, mode, extra)
    assert pids, "the step did not start its children"
    try:
        assert _gone(pids), f"processes {pids} started by the step outlived it (setsid escapes the group kill)"
    finally:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def test_resume_with_a_new_param_remembers_it(project: Project) -> None:
    project.write(f"""
pipeline r {{
  params {{ n = 1 }}
  task a {{
    command = {project.h("num", "a", "${params.n}")}
    outputs {{ v = "param" }}
  }}
  task b {{
    command = {project.h("fail", "b")}
    after = [a]
  }}
}}""")
    assert project.execute()[0] == 3
    run = project.store().runs()[0]["id"]
    assert project.execute(resume=run, params={"n": 7})[0] == 3
    assert json.loads(project.store().run(run)["params"]) == {"n": 7}
    assert project.count("a") == 2
    assert project.execute(resume=run)[0] == 3  # goes on with n = 7: `a` is not run a third time
    assert project.count("a") == 2


def test_edited_user_code_is_new_work_for_resume_and_the_cache(project: Project) -> None:
    (project.path / "mod.py").write_text("import helper\n\ndef fn():\n    return helper.X\n")
    (project.path / "helper.py").write_text("X = 1\n")
    project.write(f"""
pipeline r {{
  task t {{
    run = "mod:fn"
    outputs {{ v = "param" }}
    memoize {{ }}
  }}
  task b {{
    command = {project.h("fail", "b")}
    after = [t]
  }}
}}""")
    assert project.execute()[0] == 3
    (project.path / "helper.py").write_text("X = 2\n")  # what `mod` imports changed
    _, out = project.execute(resume=True)
    assert "changed since the earlier session" in out and states(project)["t"] == "succeeded"
    [value] = project.path.glob(".dmlc/runs/*/steps/t/main/outputs/v")
    assert value.read_text().strip() == "2"
    project.execute()  # a new run: the cache holds X = 2 now, and is hit
    assert states(project)["t"] == "cached"
