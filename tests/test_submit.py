"""`dmlc submit | status | logs` (issue 14, item 2) on Argo, and errors, against local stand-ins of the APIs.

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
from pathlib import Path

import pytest
import yaml

from tests.submit_standins.argo import ArgoStandin, fnv32a
from tests.submit_standins.cli import EXAMPLES, QUICKSTART, ROOT, dmlc, isolate, no_token_on_disk, submitted
from tests.submit_standins.kfp import KfpStandin
from tests.submit_standins.server import Standin, free_port


@pytest.fixture(autouse=True)
def _here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    isolate(tmp_path, monkeypatch)


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
        assert dmlc(capsys, "submit", QUICKSTART, "-t", "argo", "--server", srv.url)[0] == 0
        code, _, err = dmlc(capsys, "status", "quickstart-0")
        assert code == 1 and "DML210" in err and "starts 2 submitted runs (quickstart-00001, quickstart-00002)" in err
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
