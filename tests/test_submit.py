"""`dmlc submit | status | logs` (issue 14, item 2) against local stand-ins of the Argo Server and KFP APIs.

No cluster is reached: tests/submit_standins/ serves the two APIs on 127.0.0.1 and checks every request
against the published definitions (Argo v4.1.2's swagger, KFP 2.17.0's v2beta1 swaggers, plus kfp's
PipelineSpec protobuf for the run's spec), answering with scripted runs. A test asserts no request
departed from the definition (`violations == []`), the states the user saw, the exit code, and that
no token reached the disk. Errors (no server, refused, 401, 404, an answer not the API's, a silent
server) are DML2xx diagnostics, never a traceback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dmlc.cli import main
from tests.submit_standins.argo import ArgoStandin, fnv32a
from tests.submit_standins.kfp import KfpStandin
from tests.submit_standins.server import Standin, free_port

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = str(ROOT / "examples" / "quickstart.dml")
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))
ENV = ("ARGO_SERVER", "ARGO_TOKEN", "ARGO_NAMESPACE", "ARGO_SECURE", "ARGO_BASE_HREF", "KF_PIPELINES_ENDPOINT")
ENV += ("KF_PIPELINES_TOKEN", "KF_PIPELINES_SA_TOKEN_PATH", "KF_PIPELINES_DEFAULT_EXPERIMENT_NAME")


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own folder (its .dmlc/ records) with no server settings from the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def dmlc(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "DML900" not in err, err
    return code, out, err


def submitted(srv: Standin) -> list:
    return [c for c in srv.calls if c.method == "POST"]


def no_token_on_disk(token: str) -> None:
    for path in Path(".dmlc").rglob("*"):
        if path.is_file():
            assert token not in path.read_text(errors="replace"), path


# --- Argo ----------------------------------------------------------------------------------------------


def test_argo_submit_watch_streams_states_and_exits_0(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.setenv("ARGO_TOKEN", "s3cret-token")
    with ArgoStandin(token="s3cret-token", cached={"data"}) as srv:
        args = ("submit", QUICKSTART, "-t", "argo", "--server", srv.url, "--param", "epochs=2", "--watch")
        code, out, _ = dmlc(capsys, *args, "--interval", "0")
    assert srv.violations == []
    assert code == 0, out
    for line in ("run pending", "run running", "≡ cached          data", "▶ started         model[0]"):
        assert line in out
    assert "✓ succeeded       model[2]" in out and "run quickstart-00001 succeeded" in out
    body = submitted(srv)[0].body["workflow"]
    manifest = yaml.safe_load(compiled("argo", epochs="2"))
    manifest["metadata"]["namespace"] = "argo"
    assert body == manifest  # what reached the server is the compiled manifest, nothing dropped or added
    assert body["spec"]["arguments"]["parameters"] == [{"name": "epochs", "value": "2"}]
    record = json.loads(Path(".dmlc/submitted.jsonl").read_text())
    assert record["run"] == "quickstart-00001" and record["target"] == "argo" and record["server"] == srv.url
    no_token_on_disk("s3cret-token")


def compiled(target: str, **params: str) -> str:
    from dmlc.driver import compile_file

    return compile_file(QUICKSTART, target, {"params": params})


def test_argo_failed_run_exits_3_with_retries_and_skips(capsys: pytest.CaptureFixture[str]) -> None:
    with ArgoStandin(retry={"data"}, fail={"model": {1}}) as srv:
        code, out, _ = dmlc(capsys, "submit", QUICKSTART, "-t", "argo", "--server", srv.url, "-w", "--interval", "0")
    assert srv.violations == []
    assert code == 3
    assert "↻ retrying        data" in out and "✗ failed          model[1]  Error (exit code 1)" in out
    assert "· skipped         best" in out and "run quickstart-00001 failed" in out
    assert out.index("✗ failed          model[1]") < out.index("run failed")  # the run's end after its steps


def test_argo_status_and_logs_of_a_submitted_run(capsys: pytest.CaptureFixture[str]) -> None:
    with ArgoStandin(retry={"data"}, fail={"model": {1}}) as srv:
        assert dmlc(capsys, "submit", QUICKSTART, "-t", "argo", "--server", srv.url)[0] == 0
        code, out, _ = dmlc(capsys, "status", "quickstart-0", "--watch", "--interval", "0")  # a unique prefix
        assert code == 3
        code, out, _ = dmlc(capsys, "status", "quickstart-00001")
        assert code == 0
        assert "state failed" in out and f"view {srv.url}/workflows/argo/quickstart-00001" in out
        assert "model[1]    failed     1" in out and "data        succeeded  2" in out
        code, out, _ = dmlc(capsys, "logs", "quickstart-00001", "data")
        assert "==> data <==\ndata(0): attempt 1" in out and "==> data (attempt 2) <==\ndata(1): attempt 2" in out
        code, out, _ = dmlc(capsys, "logs", "quickstart-00001")
        assert "==> model[1] <==\nmodel(1:dropout): attempt 1 of template model\nTraceback" in out
        code, _, err = dmlc(capsys, "logs", "quickstart-00001", "modle")
        assert code == 1 and "DML210" in err and "did you mean `model`?" in err
    logs = [c for c in srv.calls if c.path.endswith("/log")]
    assert {c.query["logOptions.container"][0] for c in logs} == {"main"}
    assert srv.violations == []


def test_argo_every_example_is_accepted_by_the_api(capsys: pytest.CaptureFixture[str]) -> None:
    with ArgoStandin(namespaces=None) as srv:
        for example in EXAMPLES:
            code, _, err = dmlc(capsys, "submit", str(example), "-t", "argo", "--server", srv.url)
            assert code == 0, (example, err)
    assert srv.violations == []
    kinds = [c.path.rsplit("/", 1)[0] for c in submitted(srv)]
    assert kinds.count("/api/v1/cron-workflows") == 1  # scheduling.dml is a CronWorkflow
    assert kinds.count("/api/v1/workflows") == len(EXAMPLES) - 1
    namespaces = {c.path.rsplit("/", 1)[1] for c in submitted(srv)}
    assert "argo" in namespaces and len(namespaces) > 1  # a pipeline's own `namespace` is where it goes


def test_a_password_in_the_address_is_never_recorded_or_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with ArgoStandin() as srv:
        url = srv.url.replace("http://", "http://me:pa55word@")
        code, out, _ = dmlc(capsys, "submit", QUICKSTART, "-t", "argo", "--server", url)
    assert code == 0 and "pa55word" not in out
    assert "pa55word" not in Path(".dmlc/submitted.jsonl").read_text()
    assert json.loads(Path(".dmlc/submitted.jsonl").read_text())["server"] == srv.url


def test_argo_schedule_status(capsys: pytest.CaptureFixture[str]) -> None:
    with ArgoStandin() as srv:
        code, out, _ = dmlc(
            capsys, "submit", str(ROOT / "examples/scheduling.dml"), "-t", "argo", "--server", srv.url, "-w"
        )
        assert code == 0 and "submitted schedule" in out and f"{srv.url}/cron-workflows/argo/" in out
        name = json.loads(Path(".dmlc/submitted.jsonl").read_text())["run"]
        code, out, _ = dmlc(capsys, "status", name)
    assert code == 0 and "state scheduled" in out and "last run" in out
    assert srv.violations == []


def test_argo_server_errors_are_coded(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    run = ("submit", QUICKSTART, "-t", "argo")
    code, _, err = dmlc(capsys, *run)
    assert code == 1 and "DML208" in err and "no Argo Server address" in err and "ARGO_SERVER" in err
    code, _, err = dmlc(capsys, *run, "--server", "http://exa mple:99999")
    assert code == 1 and "DML208" in err and "is not an address of an Argo Server" in err
    code, _, err = dmlc(capsys, *run, "--server", f"http://127.0.0.1:{free_port()}")
    assert code == 1 and "DML208" in err and "connection refused" in err
    monkeypatch.setenv("ARGO_TOKEN", "wrong")
    with ArgoStandin(token="right") as srv:
        code, _, err = dmlc(capsys, *run, "--server", srv.url)
        assert code == 1 and "DML209" in err and "(401)" in err and "ARGO_TOKEN" in err and "wrong" not in err
        monkeypatch.setenv("ARGO_TOKEN", "right")
        code, _, err = dmlc(capsys, *run, "--server", srv.url, "--namespace", "nope")
        assert code == 1 and "DML210" in err and 'namespaces "nope" not found' in err
        code, _, err = dmlc(capsys, "status", "ghost-run", "-t", "argo", "--server", srv.url)
        assert code == 1 and "DML210" in err and "ghost-run" in err
    assert srv.violations == []
    monkeypatch.setenv("ARGO_SERVER", srv.url.removeprefix("http://"))  # host:port means https, as for argo
    code, _, err = dmlc(capsys, *run)
    assert code == 1 and "DML208" in err and "https://127.0.0.1" in err


def test_a_rejected_request_is_dml211(capsys: pytest.CaptureFixture[str]) -> None:
    with ArgoStandin(refuse="admission webhook denied the request: no GPUs here") as srv:
        code, _, err = dmlc(capsys, "submit", QUICKSTART, "-t", "argo", "--server", srv.url)
    assert code == 1 and "DML211" in err and "(400) creating the workflow: admission webhook denied" in err
    with KfpStandin(skip={"data"}) as srv:  # a skipped task has no pod log: the API server says so in a 200
        assert dmlc(capsys, "submit", QUICKSTART, "-t", "kfp", "--server", srv.url, "-w", "--interval", "0")[0] == 0
        code, _, err = dmlc(capsys, "logs", next(iter(srv.runs)), "data")
    assert code == 1 and "DML211" in err and "could not read the log" in err and "not found" in err
    assert srv.violations == []


class NotAnApi(Standin):
    """Something else at the address: an HTML page for every request (a proxy's login page)."""

    def app(self):  # type: ignore[no-untyped-def]
        from starlette.applications import Starlette
        from starlette.responses import HTMLResponse
        from starlette.routing import Route

        async def page(request):  # type: ignore[no-untyped-def]
            await self.record(request)
            return HTMLResponse("<html><body>sign in</body></html>")

        return Starlette(routes=[Route("/{p:path}", page, methods=["GET", "POST"])])


def test_an_answer_that_is_not_the_api_is_dml208(capsys: pytest.CaptureFixture[str]) -> None:
    with NotAnApi() as srv:
        for target in ("argo", "kfp"):
            code, _, err = dmlc(capsys, "submit", QUICKSTART, "-t", target, "--server", srv.url)
            assert code == 1 and "DML208" in err and "not the" in err, err


def test_a_silent_server_times_out_as_dml208(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    import dmlc_targets.argo.submit as argo_submit

    monkeypatch.setattr(argo_submit, "TIMEOUT", (2.0, 0.5))
    with socket.socket() as sock:  # accepts connections (the backlog) and never answers
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        code, _, err = dmlc(capsys, "submit", QUICKSTART, "-t", "argo", "--server", url)
    assert code == 1 and "DML208" in err and "no answer within" in err


def test_argo_pod_names_follow_argo() -> None:
    from dmlc_targets.argo.runstate import fnv32a as ours
    from dmlc_targets.argo.runstate import pod_name

    # cmd/argo/commands/common/get_test.go (v4.1.2): node "many-items-z26lj[0].sleep(9:nine)" has id -2619926859
    assert ours("many-items-z26lj[0].sleep(9:nine)") == fnv32a("many-items-z26lj[0].sleep(9:nine)") == 2619926859
    node = {"id": "many-items-z26lj-2619926859", "name": "many-items-z26lj[0].sleep(9:nine)", "templateName": "sleep"}
    assert pod_name("many-items-z26lj", node) == "many-items-z26lj-sleep-2619926859"
    assert pod_name("many-items-z26lj", node, "v1") == "many-items-z26lj-2619926859"
    assert pod_name("wf", {"name": "wf"}) == "wf"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_heras_log_call_cannot_read_the_stream() -> None:
    """Why dmlc reads GET .../log itself: the answer is one JSON object per line, hera 7.1 parses one document."""
    from hera.workflows import WorkflowsService
    from hera.workflows.models import Workflow, WorkflowCreateRequest

    doc = yaml.safe_load(compiled("argo"))
    with ArgoStandin() as srv:
        svc = WorkflowsService(host=srv.url + "/", namespace="argo")
        name = svc.create_workflow(WorkflowCreateRequest(workflow=Workflow(**doc))).metadata.name
        for _ in range(4):
            svc.get_workflow(name)
        with pytest.raises(ValueError):  # requests' JSONDecodeError: "Extra data"
            svc.workflow_logs(name)


def test_the_stand_in_refuses_what_the_api_does_not_define() -> None:
    import requests

    doc = yaml.safe_load(compiled("argo"))
    doc["spec"]["templates"][1]["container"]["imagePullPolicyy"] = "Always"
    with ArgoStandin() as srv:
        resp = requests.post(f"{srv.url}/api/v1/workflows/argo", json={"workflow": doc}, timeout=10)
        assert resp.status_code == 400
        requests.get(f"{srv.url}/api/v1/workflows/argo/x", params={"bogus": "1"}, timeout=10)
        requests.get(f"{srv.url}/api/v1/workflow/argo", timeout=10)
    assert any("imagePullPolicyy" in v for v in srv.violations)
    assert any("`bogus` is not declared" in v for v in srv.violations)
    assert any("no such operation" in v for v in srv.violations)


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
