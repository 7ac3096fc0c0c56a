"""Retry on exit codes (`retry { on = [75, 137] }`, issue 16): one rule (dmlc.semantics.retry), exact on
every target.

- the rule itself, and the local executor's decision, on exit codes, signal deaths (128+N) and timeouts;
- the Argo retry expression, judged by the Argo replay's own processNodeRetries and expr-lang evaluator
  (tests/argo_replay, argo-workflows v4.1.2), against the local executor's decision: fixed cases and a
  generated comparison over (exit statuses of the attempts, `on`, `limit`);
- real runs: a step that exits 3 then 0 runs twice with `on = [3]` and once (failed) with `on = [4]`,
  locally and through the Argo replay, alike; a signal death counts as 137, a timeout as no code;
- validation (coded errors at the attribute, the JSON Schema agreeing with check), `dmlc fmt`
  round trips, and what each target says where it cannot be exact (DML100) or applies `on` itself
  (the KFP launcher, on a TFJob's pods).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from dmlc_targets.argo.templates import retry_when
from dmlc_targets.local import proc
from hypothesis import assume, given
from hypothesis import strategies as st

from dmlc.cli import main
from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file, load
from dmlc.ir.model import Retry, Task
from dmlc.semantics.retry import covers, marks
from tests.argo_replay import replay
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.operator import decide
from tests.argo_replay.pod import DEADLINE
from tests.pipeline_gen import generated_settings

# -- the one rule, and the local executor's decision ---------------------------------------------------
# (exit code, signal, timed out, on, retried?)
CASES = [
    (3, None, False, [3], True),
    (3, None, False, [4], False),
    (3, None, False, [4, 3], True),
    (137, None, False, [137], True),  # a shell whose child was killed
    (None, 9, False, [137], True),  # killed by SIGKILL: 128 + 9
    (None, 15, False, [137], False),
    (None, 15, False, [143], True),
    (None, 9, True, [137, 143], False),  # stopped at its timeout: no exit code of the step's
    (143, None, True, [143], False),
    (75, None, False, [75], True),
    (255, None, False, [255], True),
    (1, None, False, [255], False),
    (75, None, False, "transient", True),
    (3, None, False, "transient", False),
    (3, None, False, "failure", True),
    (3, None, False, "any", True),
]


def _task(on: Any, limit: int = 3) -> Task:
    return Task(kind="task", command=["x"], retry=Retry(limit=limit, on=on))


@pytest.mark.parametrize(("code", "signal", "timed_out", "on", "want"), CASES)
def test_the_rule_and_the_local_executor(code: int | None, signal: int | None, timed_out: bool, on: Any, want: bool):
    assert covers(on, marks(code, signal, timed_out)) is want
    ended = proc.Exit(1, code, signal, 0.0, 0, 0.0)
    assert proc.retries(_task(on), proc.failure_classes(ended, timed_out)) is want


def test_a_success_or_a_missing_output_is_no_exit_code() -> None:
    assert not covers([3], marks(0, None, False))
    assert not proc.retries(_task([3]), {"failure"})  # exit 0, an output missing: the executor's mark
    assert proc.retries(_task("failure"), {"failure"})


# -- the Argo expression, judged by the replay's processNodeRetries ----------------------------------


# an attempt's end: (exit status, how) with how "exit" (the process exited with it), "signal" (killed by
# signal status-128) or "timeout" (stopped at its timeout by that signal)
Outcome = tuple[int, str]
SUCCESS: Outcome = (0, "exit")


def _attempt(outcome: Outcome, index: int) -> Node:
    """An attempt node as the replay's pod.run_container leaves it: Argo sees the exit status and message."""
    status, how = outcome
    node = Node(name=f"wf.t({index})", id=f"a{index}", type="Pod", template="t", boundary="wf")
    node.started, node.finished, node.exit_code = 100.0 + index, 101.0 + index, str(status)
    if how == "timeout":
        node.phase, node.message = "Failed", DEADLINE
    elif status == 0:
        node.phase = "Succeeded"
    else:
        node.phase, node.message = "Failed", f"main: Error (exit code {status})"
    return node


def _argo_attempts(outcomes: list[Outcome], on: Any, limit: int, tmp: Path) -> tuple[str, int]:
    """The attempts through the replay's `decide` (processNodeRetries) with the compiled strategy."""
    strategy: dict[str, Any] = {"limit": limit, "retryPolicy": "Always"}
    if retry_when(on):
        strategy["expression"] = retry_when(on)
    ctx = Ctx({}, {}, "wf", tmp, {})
    parent = Node(name="wf.t", id="p", type="Retry", template="t", boundary="wf", phase="Running")
    attempts: list[Node] = []
    for i, outcome in enumerate(outcomes):
        attempts.append(_attempt(outcome, i))
        if decide(ctx, parent, attempts, strategy):
            return parent.phase, len(attempts)
    raise AssertionError("more attempts than outcomes")


def _local_attempts(outcomes: list[Outcome], on: Any, limit: int) -> tuple[str, int]:
    """The local executor's loop (executor._fail_attempt): again while tries < 1 + limit and retries()."""
    step = _task(on, limit)
    for tries, (status, how) in enumerate(outcomes, start=1):
        if (status, how) == SUCCESS:
            return "Succeeded", tries
        ended = (
            proc.Exit(1, status, None, 0.0, 0, 0.0) if how == "exit" else proc.Exit(1, None, status - 128, 0.0, 0, 0.0)
        )
        if not (tries < 1 + limit and proc.retries(step, proc.failure_classes(ended, how == "timeout"))):
            return "Failed", tries
    raise AssertionError("more attempts than outcomes")


@pytest.mark.parametrize(("code", "signal", "timed_out", "on", "want"), CASES)
def test_argo_expression_decides_as_the_rule(
    code: int | None, signal: int | None, timed_out: bool, on: Any, want: bool, tmp_path: Path
) -> None:
    outcome = (128 + signal if signal else code, "timeout" if timed_out else "signal" if signal else "exit")
    phase, tries = _argo_attempts([outcome, SUCCESS], on, 1, tmp_path)
    assert (phase, tries) == (("Succeeded", 2) if want else ("Failed", 1))


CODES = [1, 2, 3, 4, 75, 137, 143, 255]
OUTCOMES = st.one_of(
    st.tuples(st.sampled_from([0, *CODES]), st.just("exit")),
    st.tuples(st.sampled_from([130, 137, 143]), st.sampled_from(["signal", "timeout"])),
)
ON = st.one_of(
    st.lists(st.sampled_from(CODES), min_size=1, max_size=3, unique=True),
    st.sampled_from(["any", "failure", "transient"]),
)


@generated_settings(40)
@given(outcomes=st.lists(OUTCOMES, min_size=1, max_size=4), on=ON, limit=st.integers(0, 3))
def test_generated_attempts_agree_on_argo_and_locally(
    outcomes: list[Outcome], on: Any, limit: int, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # not compared: "transient" on a death by a signal other than SIGKILL / SIGTERM (SIGINT: 130), which
    # the local class counts and the Argo expression of the class (75, 137, 143) does not (see README)
    assume(on != "transient" or all(how == "exit" or status in (137, 143) for status, how in outcomes))
    outcomes = outcomes + [SUCCESS] * (limit + 1)  # the drawn attempts, then successes
    local = _local_attempts(outcomes, on, limit)
    assert _argo_attempts(outcomes, on, limit, tmp_path_factory.getbasetemp()) == local


def test_the_expression_leaves_out_a_timeout_and_no_exit_code() -> None:
    when = retry_when([3, 137])
    assert when == (
        "asInt(lastRetry.exitCode) in [3, 137] && !(lastRetry.message matches 'longer than the specified deadline')"
    )
    assert DEADLINE.endswith("longer than the specified deadline")  # the pod's message (operator.go)


# -- real runs: locally and through the Argo replay --------------------------------------------------
# the step counts its attempts in a file named by the environment (one file per executor: each passes
# its own environment on, and the replay maps a pod's /tmp, not this name), fails the first time with
# END and exits 0 after
FLAKY = 'n=$(cat "$RETRY_COUNTER" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$RETRY_COUNTER"; [ $n -ge 2 ] || END'


def _pipeline(tmp: Path, on: Any, script: str, **attrs: Any) -> Path:
    step = {"kind": "task", "command": ["sh", "-c", script], "retry": {"limit": 2, "on": on}, **attrs}
    path = tmp / "codes.yaml"
    path.write_text(yaml.safe_dump({"pipeline": "codes", "steps": {"t": step}}, sort_keys=False))
    assert check_file(str(path)) == []
    return path


def _run_both(path: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[str, int], tuple[str, int]]:
    """(state, attempts) of step `t`, locally and on the Argo replay."""
    with monkeypatch.context() as patch:
        patch.chdir(tmp)
        patch.setenv("RETRY_COUNTER", str(tmp / "local.count"))
        main(["run", str(path), "--local"])
        db = sqlite3.connect(".dmlc/metadata.db")
        state, tries = db.execute("SELECT state, attempts FROM steps WHERE step = 't'").fetchone()
        db.close()
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    with replay(workflow, tmp / "argo", env={"RETRY_COUNTER": str(tmp / "argo.count")}) as done:
        node = next(n for n in done.nodes.values() if n.labels.get("dmlc.io/step") == "t" and not n.retried)
        argo = ({"Succeeded": "succeeded", "Failed": "failed"}.get(node.phase, node.phase), node.attempts)
    return (state, tries), argo


@pytest.mark.parametrize(
    ("first", "on", "want"),
    [
        (3, [3], ("succeeded", 2)),
        (3, [4], ("failed", 1)),
        (3, [75, 3], ("succeeded", 2)),
        ("-9", [137], ("succeeded", 2)),  # `kill -9 $$`: a signal death is 137
        ("-15", [137], ("failed", 1)),  # SIGTERM is 143
    ],
)
def test_a_step_retries_exactly_its_codes_locally_and_on_argo(
    first: Any, on: list[int], want: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    end = f"kill {first} $$" if isinstance(first, str) else f"exit {first}"
    local, argo = _run_both(_pipeline(tmp_path, on, FLAKY.replace("END", end)), tmp_path, monkeypatch)
    assert local == argo == want


@pytest.mark.parametrize("on", [[137, 143], "failure"])
def test_a_timeout_names_no_code_locally_and_on_argo(on: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _pipeline(tmp_path, on, FLAKY.replace("END", "exec sleep 30"), timeout="1s")
    local, argo = _run_both(path, tmp_path, monkeypatch)
    assert local == argo == ("failed", 1)


# -- validation, schema, fmt ---------------------------------------------------------------------------


def _check(tmp: Path, on: Any) -> list[tuple[str, str]]:
    """check's codes on a pipeline whose step has `retry { on }`, each with the text from where it points."""
    doc = {"pipeline": "p", "steps": {"t": {"kind": "task", "command": ["false"], "retry": {"on": on}}}}
    path = tmp / "p.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None))
    lines = path.read_text().splitlines()
    return [(d.code, lines[d.span.line - 1][d.span.col - 1 :]) for d in check_file(str(path)) if d.span is not None]


@pytest.mark.parametrize(
    ("on", "code", "at"),
    [
        ([3, 137], None, ""),
        ("transient", None, ""),
        ([0], "DML022", "0]"),  # 0 is success: at the item
        ([256], "DML022", "256]"),  # a status is one byte
        ([3, 75, 3], "DML029", "3]"),  # at the second one
        ([], "DML022", "[]"),
        (["transient", 3], "DML020", "transient, 3]"),  # a list holds exit codes only
        ([True], "DML020", "true]"),
        ("sometimes", "DML023", "sometimes}"),
        (3, "DML023", "3}"),
    ],
)
def test_values_of_on_and_where_check_points(on: Any, code: str | None, at: str, tmp_path: Path) -> None:
    found = _check(tmp_path, on)
    assert found == ([] if code is None else [(code, at)])


def test_the_schema_accepts_exactly_what_check_accepts(tmp_path: Path) -> None:
    from tests.test_schema_parity import place, schema_ok

    for on in ([3, 137], [1], [255], [0], [256], [3, 3], [], ["transient", 3], [True], "transient", 3, [-1]):
        doc = place(("steps", "t", "retry", "on"), on, "task")
        assert schema_ok(doc) is (_check(tmp_path, on) == []), on


EXIT_LISTS = st.lists(st.one_of(st.integers(-2, 300), st.sampled_from([0, 1, 255, 256])), max_size=4)


@generated_settings(30)
@given(data=st.data())
def test_generated_values_of_on_the_schema_and_check_agree(data: st.DataObject) -> None:
    from tests.test_schema_parity import CHOICES, agree, mixed, place

    value = data.draw(mixed(EXIT_LISTS, CHOICES, st.sampled_from(["any", "failure", "transient"])), label="on")
    where = data.draw(st.sampled_from([(("steps", "t", "retry", "on"), "task"), (("defaults", "retry", "on"), None)]))
    agree(place(where[0], value, where[1]))


def test_fmt_round_trips_the_list(tmp_path: Path) -> None:
    dml = tmp_path / "r.dml"
    dml.write_text(
        'pipeline p {\n  task t {\n    command = ["false"]\n    retry { limit = 2  on = [75, 137] }\n  }\n}\n'
    )
    assert main(["fmt", str(dml)]) == 0
    assert main(["fmt", "--to", "yaml", "-o", str(tmp_path / "r.yaml"), str(dml)]) == 0
    assert '"on": [75, 137]' in (tmp_path / "r.yaml").read_text()
    assert main(["fmt", "--to", "dml", "-o", str(tmp_path / "back.dml"), str(tmp_path / "r.yaml")]) == 0
    back = tmp_path / "back.dml"
    assert "= [75, 137]" in back.read_text() and main(["fmt", "--check", str(back)]) == 0
    assert load(str(back)).pipeline == load(str(dml)).pipeline == load(str(tmp_path / "r.yaml")).pipeline
    assert load(str(back)).pipeline.steps["t"].retry.on == [75, 137]


# -- the targets: compiled output, and DML100 where a target cannot be exact ---------------------------
TFJOB = """pipeline p {
  ingest data { dataset = "digits" }
  train model {
    data     = data.dataset
    strategy = "allreduce"
    workers  = 2
    retry { limit = 2  on = [137] }
  }
%s}
"""


def _diagnostics(path: Path, target: str) -> list[tuple[str, str, str]]:
    try:
        compile_file(str(path), target)
    except DmlError as err:
        return [(d.code, d.severity.value, d.message) for d in err.diagnostics]
    return []


def test_argo_writes_the_expression_with_retry_policy_always(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, [3, 75], FLAKY.replace("END", "exit 3"))
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    (template,) = [t for t in workflow["spec"]["templates"] if t.get("retryStrategy")]
    assert template["retryStrategy"]["retryPolicy"] == "Always"  # Failed and Errored attempts alike
    assert template["retryStrategy"]["expression"].startswith("asInt(lastRetry.exitCode) in [3, 75] && ")


def test_a_tfjob_retried_on_codes_is_dml100_on_argo_unless_accepted(tmp_path: Path) -> None:
    path = tmp_path / "job.dml"
    path.write_text(TFJOB % "")
    ((code, severity, message),) = _diagnostics(path, "argo")
    assert (code, severity) == ("DML100", "error") and "only on exit code 137" in message
    path.write_text(TFJOB % '  target argo { object_retry = "any" }\n')
    assert _diagnostics(path, "argo") == []
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    strategy = next(t["retryStrategy"] for t in workflow["spec"]["templates"] if t.get("resource"))
    assert "expression" not in strategy  # every failure of the job, as accepted


def test_kfp_refuses_codes_on_a_container_step_and_launches_a_tfjob_with_them(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, [3], FLAKY.replace("END", "exit 3"))
    ((code, severity, message),) = _diagnostics(path, "kfp")
    assert (code, severity, message) == ("DML100", "error", "KFP cannot retry only on exit code 3")
    doc = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**doc, "targets": {"kfp": {"task_retry": "any"}}}, sort_keys=False))
    assert "retryPolicy" in compile_file(str(path), "kfp")  # accepted: every failure retries (a warning)
    job = tmp_path / "job.dml"
    job.write_text(TFJOB % "")
    spec = next(d for d in yaml.safe_load_all(compile_file(str(job), "kfp")) if d and "root" in d)
    model = spec["root"]["dag"]["tasks"]["model"]
    launch = json.loads(model["inputs"]["parameters"]["dmlc_spec"]["runtimeValue"]["constant"])["launch"]
    assert launch["retry"]["on"] == [137] and "retryPolicy" not in model  # the launcher applies it


class _Cluster:
    """A TFJob that fails once, its pods ending with `reasons`."""

    def __init__(self, reasons: list[tuple[str, int]]) -> None:
        self.reasons, self.created = reasons, 0

    def create(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        self.created += 1
        return {**manifest, "metadata": {"name": f"job-{self.created}"}}

    def get(self, manifest: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
        worker = {"failed": 1} if self.created == 1 else {"succeeded": 1}
        return {"status": {"replicaStatuses": {"Worker": worker}}}

    def pod_reasons(self, job: str, namespace: str) -> list[tuple[str, int]]:
        return self.reasons


@pytest.mark.parametrize(
    ("reasons", "on", "jobs"),
    [
        ([("Error", 3)], [3], 2),
        ([("Error", 3)], [4], 1),
        ([("OOMKilled", 137)], [137], 2),
        ([("DeadlineExceeded", -1), ("Error", 143)], [143], 1),  # stopped at its deadline: no code
        ([("Error", 2), ("Error", 3)], [3], 2),  # any pod's container
    ],
)
def test_the_kfp_launcher_applies_codes_to_the_pods(reasons: list[tuple[str, int]], on: list[int], jobs: int) -> None:
    from dmlc_targets.kfp import apply as launcher

    wait = {"object": 0, "success": "status.replicaStatuses.Worker.succeeded == 1",
            "failure": "status.replicaStatuses.Worker.failed > 0"}  # fmt: skip
    launch = {"manifests": [{"kind": "TFJob", "metadata": {"namespace": "ns"}}], "wait": [wait],
              "retry": {"limit": 2, "on": on}}  # fmt: skip
    cluster = _Cluster(reasons)
    try:
        launcher.launch_with_retries(cluster, launch, lambda _: None)
    except Exception as err:  # the runtime's UserError: the job failed and is not retried
        assert "failed" in str(err)
    assert cluster.created == jobs


@pytest.mark.parametrize(("on", "jobs", "ok"), [([3], 2, True), ([4], 1, False)])
def test_the_kfp_launcher_on_the_harness_tfjob(
    on: list[int], jobs: int, ok: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The compiled launch description of a TFJob step, its worker's command replaced by one that exits 3
    and then 0, run by the launcher against the KFP harness's TFJob stand-in (training-operator rules)."""
    from dmlc_targets.kfp import apply as launcher

    from tests.kfp_cluster import LocalCluster

    job = tmp_path / "job.dml"
    job.write_text(TFJOB.replace("on = [137]", f"on = {on}") % "")
    spec = next(d for d in yaml.safe_load_all(compile_file(str(job), "kfp")) if d and "root" in d)
    model = spec["root"]["dag"]["tasks"]["model"]
    launch = json.loads(model["inputs"]["parameters"]["dmlc_spec"]["runtimeValue"]["constant"])["launch"]
    counter = tmp_path / "count"
    worker = launch["manifests"][0]["spec"]["tfReplicaSpecs"]["Worker"]
    worker["replicas"] = 1
    worker["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", FLAKY.replace("END", "exit 3")]
    monkeypatch.setenv("RETRY_COUNTER", str(counter))  # the stand-in passes its environment on, unmapped
    cluster = LocalCluster(tmp_path / "cluster")
    try:
        if ok:
            launcher.launch_with_retries(cluster, launch, lambda _: None)
        else:
            with pytest.raises(Exception, match="failed"):
                launcher.launch_with_retries(cluster, launch, lambda _: None)
    finally:
        cluster.close()
    assert len([o for o in cluster.created if o["kind"] == "TFJob"]) == jobs
