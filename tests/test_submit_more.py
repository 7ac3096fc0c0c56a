"""`dmlc submit | status | logs` (issue 14, item 2) on KFP (a stand-in of its v2beta1 API), on local runs,
and what is the same for every target: the watch (dropped polls, ^C, the live view), import lightness.

No cluster is reached: see tests/submit_standins/. A test asserts no request departed from the API
definitions (`violations == []`), the states the user saw, the exit code, and that no token reached disk.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dmlc.cli import main
from tests.submit_standins.cli import EXAMPLES, QUICKSTART, ROOT, dmlc, isolate, no_token_on_disk, submitted
from tests.submit_standins.kfp import KfpStandin
from tests.submit_standins.server import free_port


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(tmp_path, monkeypatch)


# --- KFP -----------------------------------------------------------------------------------------------


def test_kfp_submit_watch_streams_states_and_exits_0(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("KF_PIPELINES_TOKEN", "kfp-s3cret")
    with KfpStandin(token="kfp-s3cret") as srv:
        args = ("submit", QUICKSTART, "-t", "kfp", "--server", srv.url, "--param", "epochs=2", "-w", "--interval", "0")
        code, out, _ = dmlc(capsys, *args)
    assert srv.violations == []
    assert code == 0, out
    for line in ("run pending", "▶ started         data", "✓ succeeded       model[2]", "✓ succeeded       classifier"):
        assert line in out
    run = next(c.body for c in submitted(srv) if c.path == "/apis/v2beta1/runs")
    assert run["runtime_config"]["parameters"] == {"epochs": 2}
    assert set(run["pipeline_spec"]) == {"pipeline_spec", "platform_spec"}
    assert run["display_name"].startswith("quickstart ")
    exp = next(c.body for c in submitted(srv) if c.path == "/apis/v2beta1/experiments")
    assert exp["display_name"] == "Default" and run["experiment_id"] == srv.experiments[0]["experiment_id"]
    no_token_on_disk("kfp-s3cret")


def test_kfp_every_example_is_accepted_by_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    with KfpStandin() as srv:
        for example in EXAMPLES:
            code, _, err = dmlc(capsys, "submit", str(example), "-t", "kfp", "--server", srv.url)
            assert code == 0, (example, err)
    assert srv.violations == []
    runs = [c.body for c in submitted(srv) if c.path == "/apis/v2beta1/runs"]
    assert len(runs) == len(EXAMPLES) and len(srv.experiments) == 1  # one "Default" experiment, found again
    assert all(c.query.get("namespace", [""]) == [""] for c in srv.calls if c.path.endswith("/experiments"))


def test_kfp_failed_run_exits_3_then_status_and_logs(capsys: pytest.CaptureFixture[str]) -> None:
    with KfpStandin(fail={"best"}) as srv:
        code, out, _ = dmlc(capsys, "submit", QUICKSTART, "-t", "kfp", "--server", srv.url, "-w", "--interval", "0")
        assert code == 3 and "✗ failed          best  exit status 1" in out and "· skipped         classifier" in out
        run = next(iter(srv.runs))
        code, out, _ = dmlc(capsys, "status", run[:8])
        assert code == 0 and "state failed" in out and "model[1]" in out and f"#/runs/details/{run}" in out
        code, out, _ = dmlc(capsys, "logs", run, "best")
        assert code == 0 and out.startswith("==> best <==\nbest: executed\nTraceback")
        code, out, _ = dmlc(capsys, "logs", run)
        assert "==> model[0] <==" in out and "==> classifier <==" not in out
    log_calls = [c.path for c in srv.calls if c.path.endswith("/log")]
    assert log_calls and all(p.startswith(f"/apis/v1alpha1/runs/{run}/nodes/") for p in log_calls)
    assert srv.violations == []


def test_kfp_server_errors_are_coded(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    run = ("submit", QUICKSTART, "-t", "kfp")
    code, _, err = dmlc(capsys, *run)
    assert code == 1 and "DML208" in err and "KF_PIPELINES_ENDPOINT" in err
    code, _, err = dmlc(capsys, *run, "--server", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "DML208" in err and "connection refused" in err
    with KfpStandin(token="right") as srv:
        monkeypatch.setenv("KF_PIPELINES_TOKEN", "wrong")
        code, _, err = dmlc(capsys, *run, "--server", srv.url)
        assert code == 1 and "DML209" in err and "KF_PIPELINES_TOKEN" in err and "wrong" not in err
        token_file = Path("token")
        token_file.write_text("right\n")
        monkeypatch.delenv("KF_PIPELINES_TOKEN")
        monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token_file))
        code, _, err = dmlc(capsys, "status", "0000-no-such-run", "-t", "kfp", "--server", srv.url)
        assert code == 1 and "DML210" in err and "(404)" in err
    assert srv.violations == []


# --- local runs, and what is the same everywhere -------------------------------------------------------

TINY = """pipeline tiny {
  task hello {
    command = ["python", "-c", "print('hi from hello')"]
  }
  task boom {
    after = [hello]
    command = ["python", "-c", "import sys; print('about to fail'); sys.exit(2)"]
  }
}
"""


def test_status_and_logs_of_a_local_run(capsys: pytest.CaptureFixture[str]) -> None:
    Path("tiny.dml").write_text(TINY)
    assert main(["run", "tiny.dml", "--local"]) == 3
    capsys.readouterr()
    code, out, _ = dmlc(capsys, "status", "tiny-")
    assert code == 0 and "local" in out and "state failed" in out
    assert "hello  succeeded  1" in out and "boom   failed     1" in out
    code, out, _ = dmlc(capsys, "status", "tiny-", "--watch", "--interval", "0")
    assert code == 3 and "✗ failed          boom  exit 2" in out
    code, out, _ = dmlc(capsys, "logs", "tiny-")
    assert out == "==> hello <==\nhi from hello\n\n==> boom <==\nabout to fail\n"
    code, out, _ = dmlc(capsys, "logs", "tiny-", "boom")
    assert out == "==> boom <==\nabout to fail\n"
    assert not Path(".dmlc/submitted.jsonl").exists()


def test_unknown_runs_and_targets_that_do_not_submit(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = dmlc(capsys, "status", "nothing-here")
    assert code == 1 and "DML210" in err and "--target" in err
    assert not Path(".dmlc").exists()  # looking for a run creates no store
    code, _, err = dmlc(capsys, "submit", QUICKSTART, "-t", "local")
    assert code == 1 and "DML103" in err and "targets that submit: argo, kfp" in err
    code, _, err = dmlc(capsys, "submit", QUICKSTART, "-t", "nope")
    assert code == 1 and "DML103" in err


class FlakyRuns:
    """A target's Runs whose server drops some polls: the watch rides them out, up to POLL_RETRIES in a row."""

    def __init__(self, drops: int) -> None:
        self.drops, self.polls = drops, 0

    def status(self, record, conn):  # type: ignore[no-untyped-def]
        from dmlc.runs import RunState, StepState, unreachable

        self.polls += 1
        if self.polls <= self.drops:
            raise unreachable("http://127.0.0.1:1", "connection refused", "")
        return RunState(record, "succeeded", [StepState("a", "a", "succeeded", 1, 1.0, 2.0)], "", 1.0, 2.0)


def test_a_watch_rides_out_dropped_polls_and_stops_on_interrupt(capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dmlc.runcmd import POLL_RETRIES, _watch
    from dmlc.runs import Connection, RunRecord

    record = RunRecord("r-1", "argo", pipeline="p", steps=["a"])
    assert _watch(FlakyRuns(POLL_RETRIES), record, Connection(), 0) == 0
    assert "✓ succeeded       a" in capsys.readouterr().out
    with pytest.raises(Exception, match="connection refused"):
        _watch(FlakyRuns(POLL_RETRIES + 1), record, Connection(), 0)

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("dmlc.runcmd.time.sleep", interrupt)
    assert _watch(FlakyRuns(1), record, Connection(), 0) == 130
    assert "stopped watching; the run goes on: dmlc status r-1 --watch" in capsys.readouterr().err


def test_the_live_view_on_a_terminal() -> None:
    import io

    from dmlc.runs import RunRecord, RunState, StepState
    from dmlc.watch import LiveRunView

    out = io.StringIO()
    view = LiveRunView(out)
    record = RunRecord("r-1", "kfp", pipeline="p", steps=["a", "b"])
    view.begin(record)
    view.update(RunState(record, "running", [StepState("a", "a", "running", 1, 1.0)]))
    done = [StepState("a", "a", "failed", 1, 1.0, 2.0, "exit 1"), StepState("b", "b", "skipped")]
    view.update(RunState(record, "failed", done, "a failed", 1.0, 2.0))
    view.end(RunState(record, "failed", done, "a failed", 1.0, 2.0))
    text = out.getvalue()
    assert "✗ a: failed  exit 1" in text and "run r-1 failed in 1.0s  a failed" in text


def test_check_and_compile_stay_import_light() -> None:
    probe = (
        "import sys; from dmlc.cli import main; main(['check', 'examples/quickstart.dml']); "
        "print(sorted(m for m in ('hera', 'kfp', 'requests', 'kfp_server_api') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().endswith("[]"), out.stdout
