"""The KFP v2 backend replay (`tests/kfp_replay`, kubeflow/pipelines 2.17.0 rules) and the differential
tests of the KFP target against `dmlc run --local`.

1. Harness rules on small dmlc task pipelines (fan-out / fan-in, dynamic `for_each`, `wait = "each"`,
   `when`, `after`, artifacts with `minio://` URIs) and on kfp-SDK pipelines for the backend's exit
   tasks (`ignore_upstream_failure`), ParallelFor failures and failFast.
2. Generated pipelines (tests/pipeline_gen.py): the replay and the local executor agree on every step
   instance; the KFP target refuses every pipeline with a `min_success` step (DML100 at it: on the
   backend `ignore_upstream_failure` is an exit hook, which a ParallelFor drops).
3. The examples all need TensorFlow: a slow / tf test compares the ones without launched steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given

from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file
from tests.differential import outcome_local
from tests.kfp_replay import FAILED, NOT_TRIGGERED, SKIPPED, SUCCEEDED, BackendRejected, Run, replay
from tests.kfp_replay.outcome import outcome_kfp, run_kfp, step_of
from tests.pipeline_gen import generated_settings, pipelines

OUT = 'printf "%s|%s" "$1" "${DMLC_ITEM:-}" > "$DMLC_OUTPUTS/out"'
FAIL_ON = 'if [ "${DMLC_ITEM:-}" = "%s" ]; then exit 3; fi; '


def _task(reads: str = "", fails_on: str | None = None, **attrs: Any) -> dict[str, Any]:
    script = (FAIL_ON % fails_on if fails_on else "") + OUT
    command = ["sh", "-c", script.replace("${", "$${"), "sh", reads]
    return {"kind": "task", "outputs": {"out": "param"}, "command": command, **attrs}


def _write(tmp: Path, steps: dict[str, Any], params: dict[str, Any] | None = None) -> Path:
    path = tmp / "p.yaml"
    doc = {"pipeline": "p", "params": params or {"go": True}, "steps": steps}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert not check_file(str(path))
    return path


def _steps(run: Run) -> dict[tuple[str, str], Any]:
    """(step, instance) -> execution of every dmlc step task the replay created."""
    out = {}
    for ex in run.containers():
        step = step_of(ex)
        if step is not None:
            out[(step, str(ex.iterations_of[-1]) if ex.iterations_of else "-")] = ex
    return out


def _state(outcome: dict, step: str) -> str:
    """The state of a step that is one instance: `-` when it ran, `*` when it never expanded."""
    (state,) = {v[0] for k, v in outcome.items() if k[0] == step}
    return state


def _agree(path: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        patch.chdir(tmp)
        local = outcome_local(path)
    assert outcome_kfp(path, tmp / "kfp") == local


# -- 1. harness rules on dmlc pipelines -------------------------------------------------------------


def test_static_fan_out_and_fan_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"a": _task(for_each=["x", 2, "z"]), "b": _task("${a[*].out}")})
    run = run_kfp(path, tmp_path / "kfp")
    steps = _steps(run)
    assert [steps[("a", str(i))].parameters["out"] for i in range(3)] == ["|x", "|2", "|z"]
    assert json.loads(steps[("b", "-")].parameters["out"].rsplit("|", 1)[0]) == ["|x", "|2", "|z"]
    assert run.state == SUCCEEDED
    _agree(path, tmp_path, monkeypatch)


def test_dynamic_for_each_over_a_list_output_and_wait_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lister = {"kind": "task", "outputs": {"list": "param"},
              "command": ["sh", "-c", """printf '["u","v",3]' > "$DMLC_OUTPUTS/list" """]}  # fmt: skip
    path = _write(tmp_path, {"l": lister, "a": _task(for_each="${l.list}"), "b": _task("${a.out}", wait="each")})
    steps = _steps(run_kfp(path, tmp_path / "kfp"))
    assert steps[("l", "-")].parameters["list"] == ["u", "v", 3.0]  # a protobuf ListValue: numbers are floats
    assert [steps[("a", i)].parameters["out"] for i in "012"] == ["|u", "|v", "|3"]
    assert [steps[("b", i)].parameters["out"] for i in "012"] == ["|u|", "|v|", "|3|"]
    _agree(path, tmp_path, monkeypatch)


@pytest.mark.parametrize("go", [True, False])
def test_when(go: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"a": _task(when="params.go"), "b": _task("${a.out}", when="params.go")}, {"go": go})
    run = run_kfp(path, tmp_path / "kfp")
    steps = _steps(run)
    if go:
        assert steps[("b", "-")].parameters["out"] == "||"
    else:
        assert not steps and run.state == SUCCEEDED
        assert {e.state for e in run.executions() if e.kind == "dag" and e.name != "root"} == {SKIPPED}
    _agree(path, tmp_path, monkeypatch)


def test_after_orders_without_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, {"a": _task(), "b": _task(after=["a"]), "c": _task(for_each=[1, 2], after=["b"])})
    run = run_kfp(path, tmp_path / "kfp")
    keys = [("a", "-"), ("b", "-"), ("c", "0"), ("c", "1")]
    assert {k: e.state for k, e in _steps(run).items()} == dict.fromkeys(keys, SUCCEEDED)
    _agree(path, tmp_path, monkeypatch)


def test_artifacts_have_minio_uris_in_the_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    maker = {"kind": "task", "outputs": {"m": "artifact"}, "for_each": ["p", "q"],
             "command": ["sh", "-c", 'printf "%s" "$DMLC_ITEM" > "$DMLC_OUTPUTS/m"']}  # fmt: skip
    reader = _task("${m[*].m}", outputs={"out": "param"})
    reader["command"][2] = 'cat $(printf "%s" "$1" | tr -d \'[]"\' | tr , " ") > "$DMLC_OUTPUTS/out"'
    path = _write(tmp_path, {"m": maker, "r": reader})
    run = run_kfp(path, tmp_path / "kfp")
    steps = _steps(run)
    for index, item in enumerate("pq"):
        art = steps[("m", str(index))].artifacts["m"]
        assert art.uri.startswith(f"minio://mlpipeline/v2/artifacts/p/{run.run_id}/m/") and art.uri.endswith("/m")
        assert art.path == str(tmp_path / "kfp/minio" / art.uri.removeprefix("minio://"))
        assert Path(art.path).read_text() == item
    assert steps[("r", "-")].state == SUCCEEDED, steps[("r", "-")].log[-2000:]
    assert steps[("r", "-")].parameters["out"] == "pq"


def test_a_failed_instance_fails_the_loop_and_failfast_stops_the_dag(tmp_path: Path) -> None:
    """No `min_success`: the failed iteration fails the ParallelFor, its reader is omitted (Argo
    `depends: for-loop.Succeeded`), and a task not yet started when the loop failed never starts."""
    path = _write(tmp_path, {"a": _task(fails_on="2", for_each=[1, 2]), "b": _task("${a[*].out}"),
                             "c": _task(), "d": _task("${c.out}", after=["c"])})  # fmt: skip
    run = run_kfp(path, tmp_path / "kfp")
    steps = _steps(run)
    assert (steps[("a", "0")].state, steps[("a", "1")].state) == (SUCCEEDED, FAILED)
    assert steps[("c", "-")].state == SUCCEEDED  # started in the same wave as the loop
    loop = [e for e in run.executions() if e.kind == "loop"]
    assert [e.state for e in loop] == [FAILED] and run.state == FAILED
    idle = {e.name: e.reason for e in run.root.children.values() if e.state == NOT_TRIGGERED}
    assert "b" in idle and "d" in idle and "failFast" in idle["d"]


@pytest.mark.parametrize("reader", [_task("${a[*].out}"), _task(after=["a"])], ids=["fan-in", "after"])
def test_min_success_is_refused_and_all_is_what_kfp_runs(
    reader: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 #4: a reader of a `min_success` loop with a failed instance runs locally; on the backend
    an `ignore_upstream_failure` reader is an exit hook that a ParallelFor drops (never runs). The KFP
    target refuses `min_success` (DML100); the opt-in "all" compiles a plain loop, whose reader the
    backend omits after the failure, as the warning says."""
    steps = {"a": _task(fails_on="2", for_each=[1, 2, 3], min_success=2), "b": reader}
    path = _write(tmp_path, steps)
    with pytest.raises(DmlError) as refused:
        compile_file(str(path), "kfp")
    assert [d.code for d in refused.value.diagnostics] == ["DML100"]
    doc = yaml.safe_load(path.read_text()) | {"targets": {"kfp": {"min_success": "all"}}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    kfp = outcome_kfp(path, tmp_path / "kfp")
    assert (_state(local, "b"), _state(kfp, "b")) == ("ok", "not run")
    assert {k: v for k, v in kfp.items() if k[0] == "a"} == {k: v for k, v in local.items() if k[0] == "a"}


def test_a_barrier_after_a_wait_each_body_waits_for_the_whole_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 #5, a documented difference (targets/kfp/README.md): `c` reads only `a[*]`, but KFP makes it
    depend on the whole loop, `b` (wait = "each") included; `b` failing for one item omits `c`, which
    runs locally. No pipeline spec can say otherwise on KFP 2.17 (no trigger policy but exit hooks)."""
    evaluate = _task("${a.out}", wait="each")
    evaluate["command"][2] = 'case "$1" in "|2"*) exit 3;; esac; ' + evaluate["command"][2]
    path = _write(tmp_path, {"a": _task(for_each=[1, 2]), "b": evaluate, "c": _task("${a[*].out}")})
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    kfp = outcome_kfp(path, tmp_path / "kfp")
    assert (_state(local, "c"), _state(kfp, "c")) == ("ok", "not run")
    assert (local[("b", "1")][0], kfp[("b", "1")][0]) == ("failed", "failed")
    assert {k: v for k, v in kfp.items() if k[0] != "c"} == {k: v for k, v in local.items() if k[0] != "c"}


FOUND = sorted((Path(__file__).parent / "fixtures" / "kfp_found").glob("*.yaml"))


@pytest.mark.parametrize("path", FOUND, ids=lambda p: p.stem)
def test_found_cases_agree(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pipelines a review found to differ on KFP, kept as regressions (each file says what it was)."""
    _agree(path, tmp_path, monkeypatch)


# -- 1b. backend rules on kfp-SDK pipelines ---------------------------------------------------------


SDK_PIPELINES = """
from kfp import dsl


@dsl.component(install_kfp_package=False)
def emit(text: str, fail: bool = False) -> str:
    if fail:
        raise SystemExit(3)
    return text


@dsl.component(install_kfp_package=False)
def echo(text: str = "default") -> str:
    return f"got[{text}]"


@dsl.component(install_kfp_package=False)
def gather(texts: list = []) -> str:
    return ",".join(texts)


@dsl.pipeline(name="exit")
def exit_after_failure():
    up = emit(text="x", fail=True)
    echo(text=up.output).ignore_upstream_failure()


@dsl.pipeline(name="loop-exit")
def exit_after_loop():
    with dsl.ParallelFor(["a", "b"]) as item:
        up = emit(text=item)
    gather(texts=dsl.Collected(up.output)).ignore_upstream_failure()


@dsl.pipeline(name="refused")
def after_exit_task():
    up = emit(text="x")
    late = echo(text=up.output).ignore_upstream_failure()
    echo(text=late.output)


@dsl.pipeline(name="limit")
def limited(fail: bool = True):
    with dsl.ParallelFor(["1", "2", "3", "4", "5"], parallelism=2) as item:
        emit(text=item, fail=fail)
"""


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Small kfp-SDK pipelines (a module of their own: kfp needs real annotations), compiled."""
    import importlib.util

    from kfp import compiler

    folder = tmp_path_factory.mktemp("sdk")
    (folder / "sdk_pipelines.py").write_text(SDK_PIPELINES)
    spec = importlib.util.spec_from_file_location("sdk_pipelines", folder / "sdk_pipelines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = {}
    for name in ("exit_after_failure", "exit_after_loop", "after_exit_task", "limited"):
        compiler.Compiler().compile(getattr(module, name), str(folder / f"{name}.yaml"))
        out[name] = (folder / f"{name}.yaml").read_text()
    return out


def test_an_exit_task_runs_after_its_failed_upstream_with_the_empty_string(sdk: dict, tmp_path: Path) -> None:
    """`ignore_upstream_failure` = an Argo exit hook on the upstream task; a STRING input from a failed
    producer resolves to null, which the driver turns into "" (PbValueToText(nil))."""
    run = replay(sdk["exit_after_failure"], tmp_path)
    (failed,), (hook,) = run.find("emit"), run.find("echo")
    assert (failed.state, hook.state, hook.runs) == (FAILED, SUCCEEDED, 1), hook.log[-2000:]
    assert hook.parameters["Output"] == "got[]" and run.state == FAILED


def test_an_exit_task_after_a_parallel_for_never_runs(sdk: dict, tmp_path: Path) -> None:
    """argocompiler/dag.go: an iterator task drops its `exitTemplate`: the hook is set on nothing."""
    run = replay(sdk["exit_after_loop"], tmp_path)
    assert [e.state for e in run.find("emit")] == [SUCCEEDED, SUCCEEDED]
    (hook,) = run.find("gather")
    assert hook.state == NOT_TRIGGERED and "never runs" in hook.reason


def test_a_task_depending_on_an_exit_task_is_refused(sdk: dict, tmp_path: Path) -> None:
    with pytest.raises(BackendRejected, match="not defined"):
        replay(sdk["after_exit_task"], tmp_path)


def test_parallelism_limit_runs_batches_and_stops_after_a_failed_one(sdk: dict, tmp_path: Path) -> None:
    ok = replay(sdk["limited"], tmp_path / "ok", params={"fail": False})
    assert [e.inputs["text"] for e in ok.find("emit")] == list("12345")
    failed = replay(sdk["limited"], tmp_path / "failed")
    assert [e.state for e in failed.find("emit")] == [FAILED, FAILED]  # the first batch; failFast after it


# -- 2. generated pipelines: the replay against `dmlc run --local` ----------------------------------


def _kfp_text(path: Path) -> str | None:
    try:
        return compile_file(str(path), "kfp")
    except DmlError:
        return None  # a coded DML1xx: KFP says it cannot express this pipeline exactly


def _generated(doc: dict, folder: Path, monkeypatch: pytest.MonkeyPatch, failing: bool) -> None:
    """Only pipelines with (`failing`) or without a `min_success` step, whose instances fail on purpose."""
    if any("min_success" in step for step in doc["steps"].values()) != failing:
        return
    path = folder / "gen.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if check_file(str(path)) or _kfp_text(path) is None:
        return
    with monkeypatch.context() as patch:
        patch.chdir(folder)
        local = outcome_local(path)
    assert outcome_kfp(path, folder / "kfp") == local


@generated_settings(25)
@given(doc=pipelines(max_steps=4))
def test_generated_pipelines_agree_on_kfp_and_locally(
    doc: dict, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    _generated(doc, tmp_path_factory.mktemp("kfp"), monkeypatch, failing=False)


@generated_settings(30)
@given(doc=pipelines(max_steps=4))
def test_generated_pipelines_with_min_success_are_refused_at_it(
    doc: dict, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Every generated pipeline with a `min_success` step is refused: with a DML100 at that `min_success`
    (KFP cannot run its readers after a failed instance), unless a placement DML100 came first."""
    owners = [name for name, step in doc["steps"].items() if "min_success" in step]
    path = tmp_path_factory.mktemp("kfp") / "gen.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    if not owners or check_file(str(path)):
        return
    with pytest.raises(DmlError) as refused:
        compile_file(str(path), "kfp")
    diags = refused.value.diagnostics
    assert {d.code for d in diags} == {"DML100"}
    if any("cannot place" in d.message for d in diags):
        return  # the check stops at a layout KFP cannot express, before the steps' own checks
    text = path.read_text().splitlines()
    lines = {d.span.line for d in diags if "failed instance" in d.message}
    assert {text[line - 1].strip().split(":")[0] for line in lines} == {"min_success"}


# -- 3. the examples (all need TensorFlow: only those without launched steps) ------------------------
ROOT = Path(__file__).resolve().parent.parent
LAUNCHED = {"allreduce", "elastic", "event_driven_serving", "fashion_mnist", "parameter_server", "quickstart",
            "replicated_serving", "scheduling", "sharded_serving", "sharding", "gpu_placement"}  # fmt: skip
NEEDS_S3 = {"object_store"}  # tests/test_object_store.py runs it against a loopback S3 server, on every target
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("*.dml") if p.stem not in LAUNCHED | NEEDS_S3)


@pytest.mark.slow
@pytest.mark.tf
@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_agree_on_kfp_and_locally(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tensorflow")
    from tests.test_differential import _comparable

    path = ROOT / "examples" / f"{name}.dml"
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = _comparable(outcome_local(path))
    assert _comparable(outcome_kfp(path, tmp_path / "kfp")) == local


@pytest.mark.slow
@pytest.mark.tf
def test_the_quickstart_launches_through_the_data_volume_and_runs_as_locally(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11's acceptance: the quickstart compiles for KFP without an opt-in, and on the replay its three
    2-worker TFJobs (created by the launcher's kubernetes client in the launcher pod's namespace) read
    the dataset from the run's data volume and hand the models back through it; the InferenceService
    serves the selected one. Same states, metrics and selection as `dmlc run --local`."""
    pytest.importorskip("tensorflow")
    from tests.kfp_replay.outcome import outcome_kfp_launching
    from tests.test_differential import _comparable, _without_tfjob_params

    path = ROOT / "examples" / "quickstart.dml"
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = _comparable(_without_tfjob_params(outcome_local(path), path))
    kfp, created = outcome_kfp_launching(path, tmp_path / "kfp")
    assert _comparable(_without_tfjob_params(kfp, path)) == local
    assert sorted(o["kind"] for o in created) == ["InferenceService", "TFJob", "TFJob", "TFJob"]
    for obj in created:
        volumes = obj["spec"].get("predictor", obj["spec"]).get("volumes") or [
            v for r in obj["spec"]["tfReplicaSpecs"].values() for v in r["template"]["spec"]["volumes"]
        ]
        assert any(
            v["name"] == "dmlc-data" and "-dmlc-data" in v["persistentVolumeClaim"]["claimName"] for v in volumes
        )
