"""The exit handler (`finally`, issue 16 item 2) on every target: it runs after everything else, on success
and on failure, and sees the run's status in dmlc's words (succeeded | failed).

The same pipeline runs locally, through the Argo replay (its `spec.onExit` run as operator.go does, with
`workflow.status`) and through the KFP harness (the ExitHandler's exit task with the PipelineTaskFinalStatus
the driver resolves); the three must agree on every step and on what the handler saw, and a handler that
fails fails the run on all three (Argo's rule). Then the rules `check` enforces (DML033 / DML034, DML100
where a target cannot express a part exactly) and the local executor's own cases: skipped and
upstream-failed steps, `${pipeline.failures}`, `--resume`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmlc.cli import main
from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file, load
from dmlc.ir.effective import effective
from tests.argo_replay import replay
from tests.differential import outcome_argo, outcome_local
from tests.kfp_replay.outcome import outcome_kfp, run_kfp

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "exit_handler.dml"


def _write(tmp: Path, steps: dict[str, Any], **top: Any) -> Path:
    path = tmp / "p.yaml"
    doc = json.loads(json.dumps({"pipeline": "p", **top, "steps": steps}))  # no shared objects: no YAML aliases
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _codes(path: Path, target: str | None = None) -> list[str]:
    """`code line:col` of what `check` (or compiling for `target`) reports."""
    if target is None:
        diags = check_file(str(path))
    else:
        try:
            compile_file(str(path), target)
            diags = []
        except DmlError as exc:
            diags = exc.diagnostics
    return [f"{d.code} {d.span.line}:{d.span.col}" if d.span else d.code for d in diags]


# -- the three executors agree ------------------------------------------------------------------------
@pytest.mark.parametrize("fail", [False, True], ids=["success", "failure"])
def test_the_handler_runs_last_on_every_target_and_sees_the_status(
    fail: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "true" if fail else "false"
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(EXAMPLE, {"fail": text})
    argo = outcome_argo(EXAMPLE, tmp_path / "argo", {"fail": text})
    kfp = outcome_kfp(EXAMPLE, tmp_path / "kfp", {"fail": fail})
    status = "failed" if fail else "succeeded"
    want = {
        ("prepare", "-"): ("ok", {"rows": 42}),
        ("work", "-"): ("failed" if fail else "ok", {}),
        ("notify", "-"): ("ok", {"message": f"run {status}, telling ml-alerts"}),
    }
    assert local == want
    assert argo == want
    assert kfp == want


def test_the_run_fails_with_its_steps_not_with_a_handler_that_succeeds(tmp_path: Path) -> None:
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(EXAMPLE), "argo")) if d]
    assert workflow["spec"]["onExit"] == "notify"
    assert "notify" not in [t["name"] for t in workflow["spec"]["templates"][0]["dag"]["tasks"]]
    ok = replay(workflow, tmp_path / "ok", params={"fail": "false"})
    bad = replay(workflow, tmp_path / "bad", params={"fail": "true"})
    assert (ok.phase, bad.phase) == ("Succeeded", "Failed")
    assert ok._ctx.globals["workflow.status"] == "Succeeded" and bad._ctx.globals["workflow.status"] == "Failed"
    failures = json.loads(json.loads(bad._ctx.globals["workflow.failures"]))  # strconv.Quote'd JSON
    assert {f["displayName"] for f in failures} == {"work", "wf-x7k2p"}  # the pod and the DAG node
    assert run_kfp(EXAMPLE, tmp_path / "kfp-ok", {"fail": False}).state == "SUCCEEDED"
    assert run_kfp(EXAMPLE, tmp_path / "kfp-bad", {"fail": True}).state == "FAILED"


def test_a_failing_handler_fails_a_run_that_succeeded_on_every_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = {
        "work": {"kind": "task", "command": ["true"]},
        "notify": {"kind": "finally", "command": ["sh", "-c", "echo $0; exit 4", "${pipeline.status}"]},
    }
    path = _write(tmp_path, steps)
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        assert main(["run", str(path), "--local"]) == 3
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    done = replay(workflow, tmp_path / "argo")
    assert (done.phase, done.node("work").phase, done.node("onExit").phase) == ("Failed", "Succeeded", "Failed")
    run = run_kfp(path, tmp_path / "kfp")
    assert run.state == "FAILED"
    assert {e.name: e.state for e in run.executions()}["notify"] == "FAILED"


@pytest.mark.parametrize("code", [0, 3])
def test_a_run_handler_gets_the_status_through_each_engines_handover(
    code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run =`: the status reaches the runtime in the spec (Argo: a base64 env value; KFP: the shim's lookup)."""
    steps = {
        "work": {"kind": "task", "command": ["sh", "-c", "exit $0", "${params.code}"]},
        "notify": {
            "kind": "finally",
            "run": "builtins:dict",  # returns its keyword arguments: one output each
            "inputs": {"status": "${pipeline.status}", "code": "${params.code}"},
            "outputs": {"status": "param", "code": "param"},
        },
    }
    path = _write(tmp_path, steps, params={"code": 0})
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path, {"code": str(code)})
    assert local[("notify", "-")] == ("ok", {"status": "failed" if code else "succeeded", "code": code})
    assert outcome_argo(path, tmp_path / "argo", {"code": str(code)}) == local
    assert outcome_kfp(path, tmp_path / "kfp", {"code": code}) == local


# -- the status as each engine hands it over ----------------------------------------------------------
@pytest.mark.parametrize(
    ("state", "want"),
    [("COMPLETE", "succeeded"), ("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("CANCELED", "failed")],
)
def test_the_kfp_shim_maps_the_final_status_to_dmlcs_words(state: str, want: str) -> None:
    from dmlc_targets.kfp.shim import run_status
    from kfp.dsl import PipelineTaskFinalStatus

    from dmlc.ir.types import Ref

    status = PipelineTaskFinalStatus(state, "run", "exit-handler-1", None, None)
    assert run_status(status, Ref("pipeline", None, ("status",))) == want


@pytest.mark.parametrize(("phase", "want"), [("Succeeded", "succeeded"), ("Failed", "failed"), ("Error", "failed")])
def test_argo_maps_workflow_status_to_dmlcs_words(phase: str, want: str) -> None:
    from dmlc_targets.argo.placeholders import run_status

    from dmlc.ir.types import Ref
    from tests.argo_replay.expr import parse
    from tests.argo_replay.exprenv import func_map
    from tests.argo_replay.exprrun import evaluate

    expression = run_status(Ref("pipeline", None, ("status",)))
    assert evaluate(parse(expression), func_map({"workflow.status": phase})) == want


# -- the local executor -----------------------------------------------------------------------------
def _local(path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["run", str(path), "--local", *args])
    runs = sorted(Path(".dmlc/runs").iterdir(), key=lambda p: p.stat().st_mtime)
    result = runs[-1] / "steps" / "notify" / "main" / "result.json"
    return code, json.loads(result.read_text())["outputs"] if result.exists() else {}


def test_locally_failures_name_the_steps_that_failed_not_those_they_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = {
        "a": {"kind": "task", "command": ["false"]},
        "b": {"kind": "task", "command": ["true"], "after": ["a"]},
        "c": {"kind": "task", "command": ["true"], "when": "params.go"},
        "d": {"kind": "task", "command": ["true"]},
        "notify": {
            "kind": "finally",
            "command": ["sh", "-c", 'printf \'%s %s\' "$0" "$1" > $DMLC_OUTPUTS/seen', "${pipeline.status}"],
            "args": ["${pipeline.failures}"],
            "outputs": {"seen": "param"},
        },
    }
    path = _write(tmp_path, steps, params={"go": False})
    monkeypatch.chdir(tmp_path)
    code, outputs = _local(path)
    assert code == 3
    assert outputs == {"seen": 'failed ["a"]'}
    assert "DML100" in _codes(path, "argo")[0] and "DML100" in _codes(path, "kfp")[0]


def test_a_skipped_step_leaves_the_status_succeeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    steps = {
        "c": {"kind": "task", "command": ["true"], "when": "params.go"},
        "notify": {
            "kind": "finally",
            "command": ["sh", "-c", "echo $0 > $DMLC_OUTPUTS/seen", "${pipeline.status}"],
            "outputs": {"seen": "param"},
        },
    }
    path = _write(tmp_path, steps, params={"go": False})
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    assert local == outcome_argo(path, tmp_path / "argo")  # KFP: DML100 (a `when` is a nested group there)
    assert local[("notify", "-")] == ("ok", {"seen": "succeeded"})


def test_resume_runs_the_handler_again_with_the_new_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = [tmp_path / "fixed-a", tmp_path / "fixed-b"]
    steps = {
        "a": {"kind": "task", "command": ["test", "-f", str(flags[0])]},
        "b": {"kind": "task", "command": ["test", "-f", str(flags[1])]},
        "notify": {
            "kind": "finally",
            "command": ["sh", "-c", "echo $0 > $DMLC_OUTPUTS/seen", "${pipeline.status}"],
            "outputs": {"seen": "param"},
        },
    }
    path = _write(tmp_path, steps)
    monkeypatch.chdir(tmp_path)
    assert _local(path) == (3, {"seen": "failed"})
    (run,) = [p.name for p in Path(".dmlc/runs").iterdir()]
    attempts = Path(".dmlc/runs", run, "steps", "notify", "main")
    flags[0].write_text("")
    assert _local(path, "--resume", run) == (3, {"seen": "failed"})  # the same status: it runs again all the same
    assert (attempts / "attempt-2").is_dir()
    flags[1].write_text("")
    assert _local(path, "--resume", run) == (0, {"seen": "succeeded"})
    assert (attempts / "attempt-3").is_dir()


def test_defaults_memoize_never_reaches_the_handler(tmp_path: Path) -> None:
    steps = {"work": {"kind": "task", "command": ["true"]}, "notify": {"kind": "finally", "command": ["true"]}}
    pipeline = load(str(_write(tmp_path, steps, defaults={"memoize": {}, "retry": {"limit": 2}}))).pipeline
    assert effective(pipeline, "work").memoize is not None
    assert effective(pipeline, "notify").memoize is None and effective(pipeline, "notify").retry.limit == 2


# -- what check refuses -----------------------------------------------------------------------------
NOTIFY = {"kind": "finally", "command": ["echo", "${pipeline.status}"]}
BAD = {
    "two handlers": ({"w": {"kind": "task", "command": ["true"]}, "a": NOTIFY, "b": NOTIFY}, "DML033 14:3"),
    "alone": ({"a": NOTIFY}, "DML033 5:3"),
    "for_each": ({"a": {**NOTIFY, "for_each": [1, 2]}}, "DML033 10:5"),
    "when": ({"a": {**NOTIFY, "when": "params.x"}}, "DML033 10:5"),
    "after": ({"w": {"kind": "task", "command": ["true"]}, "a": {**NOTIFY, "after": ["w"]}}, "DML033 14:5"),
    "memoize": ({"a": {**NOTIFY, "memoize": {}}}, "DML033 10:5"),
    "read by a step": (
        {"a": {**NOTIFY, "outputs": {"o": "param"}}, "b": {"kind": "task", "command": ["echo", "${a.o}"]}},
        "DML033 16:7",
    ),
    "status outside it": ({"b": {"kind": "task", "command": ["echo", "${pipeline.status}"]}}, "DML034 9:7"),
    "an unknown field": ({"a": {"kind": "finally", "command": ["echo", "${pipeline.result}"]}}, "DML034 9:7"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_check_refuses_at_the_attribute(case: str, tmp_path: Path) -> None:
    steps, want = BAD[case]
    path = _write(tmp_path, steps, params={"x": True})
    assert want in _codes(path), path.read_text()


def test_kfp_cannot_mount_volumes_in_the_exit_task(tmp_path: Path) -> None:
    volumes = {"data": {"size": "1Gi", "mount": "/data"}}
    path = _write(tmp_path, {"w": {"kind": "task", "command": ["true"]}, "a": NOTIFY}, volumes=volumes)
    assert _codes(path) == [] and _codes(path, "argo") == []
    assert [c.split()[0] for c in _codes(path, "kfp")] == ["DML100"]


def test_graph_draws_the_handler_after_the_last_steps() -> None:
    from dmlc.graphviz import dot, mermaid

    pipeline = load(str(EXAMPLE)).pipeline
    text = mermaid(pipeline)
    assert 'notify["finally notify"]' in text and "work -. always .-> notify" in text
    assert "prepare -. always" not in text  # `work` waits for it: only the last steps point at the handler
    assert '"work" -> "notify" [style=dotted, label="always"];' in dot(pipeline)


@pytest.mark.parametrize(("attr", "value"), [("for_each", [1, 2]), ("when", "params.x")])
def test_kfp_refuses_a_handler_over_a_nested_group(attr: str, value: Any, tmp_path: Path) -> None:
    """The backend leaves a group holding a ParallelFor or a dsl.If Running (kubeflow/pipelines #11979)."""
    steps = {"w": {"kind": "task", "command": ["true"], attr: value}, "a": NOTIFY}
    path = _write(tmp_path, steps, params={"x": True})
    assert _codes(path) == [] and _codes(path, "argo") == []
    assert _codes(path, "kfp") == ["DML100 9:5"]  # at the attribute that makes the group


@pytest.mark.parametrize(("on", "attempts"), [("failure", 1), ("any", 2)])
def test_a_store_that_fails_mid_run_fails_the_step_and_the_handler_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, on: str, attempts: int
) -> None:
    """The artifact store failing under a finished step is that step's failure (Argo: its node is Error,
    which only `on = "any"` retries), not the run's end: the exit handler runs and sees `failed`."""
    import sqlite3
    import sys

    server = pytest.importorskip("moto.server").ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    boto3 = pytest.importorskip("boto3")
    server.start()
    try:
        endpoint = "http://{}:{}".format(*server.get_host_and_port())
        keys = {"aws_access_key_id": "k", "aws_secret_access_key": "s", "region_name": "us-east-1"}
        boto3.client("s3", endpoint_url=endpoint, **keys).create_bucket(Bucket="bkt")
        reset = f"import urllib.request as u; u.urlopen(u.Request('{endpoint}/moto-api/reset', method='POST'))"
        steps = {
            "a": {
                "kind": "task",
                "command": [
                    sys.executable,
                    "-c",
                    f"{reset}; open(__import__('os').environ['DMLC_OUTPUTS'] + '/o', 'w')",
                ],
                "outputs": {"o": "artifact"},
                "retry": {"limit": 1, "on": on},
            },
            "notify": {
                "kind": "finally",
                "command": ["sh", "-c", "echo $0 > $DMLC_OUTPUTS/seen", "${pipeline.status}"],
                "outputs": {"seen": "param"},
            },
        }
        path = _write(tmp_path, steps, artifacts={"store": "s3://bkt/runs", "endpoint": endpoint})
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
        code, outputs = _local(path)
    finally:
        server.stop()
    assert (code, outputs) == (3, {"seen": "failed"})
    db = sqlite3.connect(".dmlc/metadata.db")
    state, reason, tries = db.execute("SELECT state, reason, attempts FROM steps WHERE step = 'a'").fetchone()
    assert (state, tries) == ("failed", attempts) and "DML212" in reason
