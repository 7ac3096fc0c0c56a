"""The Argo target: the book's workflow, every example through hera's models and the official schema,
determinism, `--with-setup`, and each DML100 / DML101 / DML102 error at its line."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hera.workflows.models as m
import pytest
import yaml

from dmlc.diagnostics.model import DmlError
from dmlc.driver import compile_file, load

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))
BOOK = str(ROOT / "examples" / "fashion_mnist.dml")
VALIDATOR = ROOT.parent / "shared" / "schemas" / "validate_argo.py"


def compile_argo(path: str, **flags: Any) -> str:
    return compile_file(path, "argo", flags or None)


def workflow(path: str) -> dict[str, Any]:
    return yaml.safe_load(compile_argo(path))


def templates(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = doc["spec"].get("workflowSpec", doc["spec"])
    return {t["name"]: t for t in spec["templates"]}


def tasks(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in template["dag"]["tasks"]}


def spec_json(container_or_manifest: dict[str, Any]) -> str:
    command = container_or_manifest["command"]
    return command[command.index("--spec-json") + 1]


@pytest.fixture(scope="module")
def book() -> dict[str, Any]:
    return workflow(BOOK)


# -- the book's chapter-9 workflow -----------------------------------------------------------------
def test_book_workflow_shape(book: dict[str, Any]) -> None:
    assert book["kind"] == "Workflow" and book["metadata"]["namespace"] == "kubeflow"
    spec = book["spec"]
    assert spec["podGC"] == {"strategy": "OnPodSuccess"}
    assert spec["volumes"] == [{"name": "models", "persistentVolumeClaim": {"claimName": "fashion-mnist-models"}}]
    main = tasks(templates(book)[spec["entrypoint"]])
    assert list(main) == ["data", "model", "best", "classifier"]
    assert main["model"]["withItems"] == ["cnn", "dropout", "batch_norm"]
    # bare names (Argo: Succeeded || Skipped || Daemoned); a reader also needs its upstream Succeeded,
    # so that a skipped upstream makes it Skipped (and a step only `after` it still runs)
    assert main["model"]["depends"] == "data" and main["classifier"]["depends"] == "best"
    assert main["model"]["when"] == "{{=tasks['data'].status == 'Succeeded'}}"
    # a value reaches a template base64 (Argo scans a template's inputs again: text holding `{{` would change)
    fed = "{{=sprig.b64enc(tasks['model'].outputs.parameters['model'])}}"
    assert main["best"]["arguments"]["parameters"][0]["value"] == fed
    assert spec["parallelism"] == 4 and spec["podPriorityClassName"] == "high"
    assert spec["podMetadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "ml-team"


def test_book_ingestion_is_memoized_and_writes_to_the_volume(book: dict[str, Any]) -> None:
    data = templates(book)["data"]
    assert data["memoize"]["maxAge"] == "1h"
    assert data["memoize"]["cache"] == {"configMap": {"name": "fashion-mnist-memo"}}
    assert data["memoize"]["key"].startswith("dmlc-data-")
    assert {"name": "models", "mountPath": "/trained_model"} in data["container"]["volumeMounts"]
    # a fresh outputs folder per attempt (pod.name), as locally
    assert '"outputs_dir":"/trained_model/dmlc/{{workflow.name}}/data/outputs/{{pod.name}}"' in spec_json(
        data["container"]
    )
    assert data["metadata"]["labels"]["dmlc.io/step"] == "data"


def test_book_training_is_a_tfjob_with_conditions_under_resource(book: dict[str, Any]) -> None:
    model = templates(book)["model"]
    resource = model["resource"]
    assert resource["action"] == "create" and resource["setOwnerReference"] is True
    assert resource["successCondition"] == "status.completionTime, status.replicaStatuses.Worker.succeeded"
    assert resource["failureCondition"] == "status.replicaStatuses.Worker.failed > 0"
    job = yaml.safe_load(resource["manifest"])
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "TFJob"
    assert job["spec"]["runPolicy"]["backoffLimit"] == 0  # `restarts` are Argo attempts (see retryStrategy)
    assert job["spec"]["tfReplicaSpecs"]["Worker"]["restartPolicy"] == "Never"  # a failed pod stays Failed
    assert job["spec"]["runPolicy"]["schedulingPolicy"] == {
        "minAvailable": 2,
        "queue": "ml-team",
        "priorityClass": "high",
    }
    worker = job["spec"]["tfReplicaSpecs"]["Worker"]
    assert worker["replicas"] == 2 and worker["template"]["spec"]["schedulerName"] == "volcano"
    container = worker["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == container["resources"]["limits"] == {"cpu": "500m", "memory": "2Gi"}
    spec = spec_json(container)
    assert '"model":"${each}"' in spec  # batch_norm is trained too, not hard-coded: the item is handed over
    refs = json.loads(container["command"][container["command"].index("--refs") + 1])
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env[refs["each"]["env"]] == "{{inputs.parameters.item}}"  # base64 from the DAG: sprig.b64enc(item)
    assert refs["each"]["kind"] == "text" and refs["each"]["b64"] is True
    item = "{{=sprig.b64dec(inputs.parameters['item'])}}"
    assert f'"work_dir":"/trained_model/dmlc/{{{{workflow.name}}}}/model/{item}/work"' in spec
    assert model["retryStrategy"] == {
        "backoff": {"duration": "10s", "factor": 2},
        "limit": 5,  # retry { limit = 2 } + restarts = 3: each a new TFJob resuming from the checkpoint
        "retryPolicy": "Always",  # a TFJob: every failure (`object_retry = "any"` in the book)
    }


def test_book_serving_is_an_inference_service(book: dict[str, Any]) -> None:
    serve = templates(book)["classifier"]
    isvc = yaml.safe_load(serve["resource"]["manifest"])
    assert isvc["kind"] == "InferenceService" and isvc["metadata"]["namespace"] == "kubeflow"
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["scaleMetric"], predictor["scaleTarget"]) == (3, "concurrency", 1)
    assert '"model":"${best.model}"' in spec_json(predictor["containers"][0])  # handed over at run time
    probe = predictor["containers"][0]["readinessProbe"]["httpGet"]  # ready = model loaded, not port open
    assert probe == {"path": "/v2/health/ready", "port": predictor["containers"][0]["ports"][0]["containerPort"]}


# -- every example ---------------------------------------------------------------------------------
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_round_trip_through_hera_models(example: Path) -> None:
    doc = workflow(str(example))
    model = m.CronWorkflow if doc["kind"] == "CronWorkflow" else m.Workflow
    again = model.model_validate(doc).model_dump(by_alias=True, exclude_none=True, mode="json")
    assert yaml.safe_load(yaml.safe_dump(again)) == yaml.safe_load(yaml.safe_dump(doc))
    for template in templates(doc).values():
        manifest = template.get("resource", {}).get("manifest")
        if manifest:
            assert (
                yaml.safe_load(manifest)["metadata"]["labels"]["dmlc.io/pipeline"]
                == doc["metadata"]["labels"]["dmlc.io/pipeline"]
            )


@pytest.mark.skipif(not VALIDATOR.exists(), reason="needs ../shared/schemas/validate_argo.py")
def test_every_example_passes_the_official_schema(tmp_path: Path) -> None:
    files = []
    for example in EXAMPLES:
        out = tmp_path / f"{example.stem}.yaml"
        out.write_text(compile_argo(str(example)), encoding="utf-8")
        files.append(str(out))
    done = subprocess.run([sys.executable, str(VALIDATOR), "-q", *files], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_output_is_deterministic_across_processes() -> None:
    here = compile_argo(BOOK)
    assert compile_argo(BOOK) == here
    code = (
        "import sys; from dmlc.driver import compile_file; out = compile_file(sys.argv[1], 'argo');"
        "assert 'tensorflow' not in sys.modules, 'compile imported tensorflow'; sys.stdout.write(out)"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    other = subprocess.run([sys.executable, "-c", code, BOOK], capture_output=True, text=True, env=env, check=True)
    assert other.stdout == here
    assert here.startswith("# fashion_mnist: ") and "generated by dmlc" in here.splitlines()[0]


def test_yaml_twin_gives_the_same_bytes() -> None:
    assert compile_argo(BOOK) == compile_argo(BOOK.replace(".dml", ".yaml"))


# -- patterns --------------------------------------------------------------------------------------
def test_wait_each_puts_the_consumer_in_the_loop_body() -> None:
    doc = workflow(str(ROOT / "examples" / "sync_async.dml"))
    ts = templates(doc)
    main = tasks(ts["sync-async"])
    assert main["model"]["template"] == "model-each" and main["model"]["withItems"] == ["cnn", "dropout", "mlp"]
    body = tasks(ts["model-each"])
    assert list(body) == ["model", "check"] and body["check"]["depends"] == "model"
    assert body["check"]["when"] == "{{=tasks['model'].status == 'Succeeded'}}"
    assert ts["model-each"]["dag"]["target"] == "model check"  # the root decides the body's phase
    value = "{{=sprig.b64enc(tasks['model'].outputs.parameters['model-model'])}}"
    assert main["best"]["arguments"]["parameters"][0]["value"] == value


def test_min_success_continues_on_failure_and_checks_at_run_time() -> None:
    doc = workflow(str(ROOT / "examples" / "fan_in_fan_out.dml"))
    ts = templates(doc)
    main = tasks(ts["fan-in-fan-out"])
    assert main["model"]["continueOn"] == {"failed": True}
    # Argo cannot count instances in `depends`: a gate task counts the successful ones (only those are
    # aggregated, argo-workflows v4 operator.go processAggregateNodeOutputs) and fails the workflow below N
    gate = main["model-min-success"]
    assert gate["depends"] == "model" and gate["template"] == "dmlc-gate"
    # a loop task whose `when` is false is a Succeeded TaskGroup of Skipped children: the gate repeats it
    assert gate["when"] == "{{=tasks['model'].status != 'Skipped' && (tasks['data'].status == 'Succeeded')}}"
    args = {p["name"]: p["value"] for p in gate["arguments"]["parameters"]}
    assert args["values"] == "{{=sprig.b64enc(toJson(tasks['model'].outputs.parameters))}}" and args["min"] == "2"
    assert main["best"]["depends"] == "model-min-success"
    assert [p["name"] for p in ts["model"]["outputs"]["parameters"]][-1] == "dmlc-ok"
    assert '"min_success":{"models":2}' in spec_json(ts["best"]["container"])
    assert main["model"]["withItems"] == [0.01, 0.003, 0.001]


def test_the_gate_script_counts_like_the_local_executor(tmp_path: Path) -> None:
    """The gate's shell check itself, run as the gate container runs it, on what Argo hands it: the
    base64 of `toJson(tasks['x'].outputs.parameters)`, the aggregated outputs by name (a map once an
    instance succeeded, the text `[]` before; argo-workflows v4.1.2 util/expand removes the parent key)."""
    from dmlc_targets.argo.dag import GATE_SCRIPT, OK_ENTRIES, STATUS_ENTRIES

    def gate(outputs: object, entries: str, pattern: str, low: int, high: int) -> int:
        values = base64.b64encode(json.dumps(outputs, separators=(",", ":")).encode()).decode()  # as Go
        argv = ["sh", "-c", GATE_SCRIPT, values, entries, pattern, str(low), str(high), "msg"]
        return subprocess.run(argv, capture_output=True, check=False).returncode

    # a user's value may spell dmlc's own entries: inside the JSON it is a string, its quotes escaped
    hostile = json.dumps(['"dmlc-ok":"[1,1,1]"', '"check-status":"[Failed]"'])
    two_ok = {"dmlc-ok": '["1","1"]', "model": hostile}
    assert gate(two_ok, OK_ENTRIES, "1", 2, 1 << 30) == 0
    assert gate(two_ok, OK_ENTRIES, "1", 3, 1 << 30) == 1
    assert gate("[]", OK_ENTRIES, "1", 1, 1 << 30) == 1
    statuses = {"check-status": '["Succeeded","Skipped"]', "model-model": hostile}
    assert gate(statuses, STATUS_ENTRIES, "Failed|Error", 0, 0) == 0
    assert gate(statuses | {"check-status": '["Succeeded","Failed"]'}, STATUS_ENTRIES, "Failed|Error", 0, 0) == 1


def test_schedule_gives_a_cron_workflow() -> None:
    path = str(ROOT / "examples" / "scheduling.dml")
    schedule = load(path).pipeline.schedule
    assert schedule is not None
    doc = workflow(path)
    assert doc["kind"] == "CronWorkflow" and doc["metadata"]["name"] == "scheduling"
    assert doc["spec"]["schedules"] == [schedule.cron] and doc["spec"]["timezone"] == schedule.timezone
    assert doc["spec"]["concurrencyPolicy"] == schedule.concurrency.capitalize()


def test_sharded_serving_gives_one_inference_service_per_shard_and_a_router() -> None:
    ts = templates(workflow(str(ROOT / "examples" / "sharded_serving.dml")))
    kinds = [yaml.safe_load(t["resource"]["manifest"])["kind"] for n, t in ts.items() if n.startswith("classifier-")]
    assert kinds == ["InferenceService"] * 4 + ["Deployment", "Service"]
    router = yaml.safe_load(ts["classifier-router"]["resource"]["manifest"])["spec"]["template"]["spec"]
    assert router["containers"][0]["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"  # = all shards ready
    assert [t["name"] for t in ts["classifier"]["dag"]["tasks"]][-1] == "classifier-router-service"


def test_events_scale_from_zero() -> None:
    ts = templates(workflow(str(ROOT / "examples" / "event_driven_serving.dml")))
    isvc = yaml.safe_load(ts["classifier"]["resource"]["manifest"])
    assert isvc["spec"]["predictor"]["minReplicas"] == 0 and isvc["spec"]["predictor"]["containerConcurrency"] == 4


def test_with_setup_emits_the_cluster_side_objects() -> None:
    docs = list(yaml.safe_load_all(compile_argo(BOOK, with_setup=True)))
    kinds = [d["kind"] for d in docs]
    assert kinds[-1] == "Workflow"
    for kind in ("PersistentVolumeClaim", "Role", "RoleBinding", "PriorityClass", "ClusterQueue", "LocalQueue"):
        assert kind in kinds
    pvc = docs[kinds.index("PersistentVolumeClaim")]
    assert (
        pvc["metadata"]["name"] == "fashion-mnist-models" and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    )
    queue = docs[kinds.index("ClusterQueue")]["spec"]["resourceGroups"][0]["flavors"][0]["resources"]
    assert queue == [{"name": "cpu", "nominalQuota": "8"}, {"name": "memory", "nominalQuota": "17Gi"}]
    rules = docs[kinds.index("Role")]["rules"]
    assert any("configmaps" in r["resources"] for r in rules) and any("tfjobs" in r["resources"] for r in rules)


def test_when_becomes_an_expression(tmp_path: Path) -> None:
    src = tmp_path / "w.dml"
    src.write_text(
        'pipeline w {\n  params { threshold = 0.5 }\n  ingest data { dataset = "digits" }\n'
        "  train model { data = data.dataset }\n"
        '  serve classifier {\n    model = model.model\n    when = "model.accuracy >= params.threshold"\n  }\n}\n'
    )
    main = tasks(templates(workflow(str(src)))["w"])
    assert main["classifier"]["when"] == (
        "{{=tasks['model'].status == 'Succeeded' && ((jsonpath(tasks['model'].outputs.parameters['metrics'],"
        " '$.accuracy') >= jsonpath(workflow.parameters['threshold'], '$')))}}"
    )


# -- errors at the attribute -----------------------------------------------------------------------
def errors(tmp_path: Path, text: str) -> list[tuple[str, int]]:
    src = tmp_path / "bad.dml"
    src.write_text(text)
    with pytest.raises(DmlError) as info:
        compile_argo(str(src))
    return [(d.code, d.span.line if d.span else 0) for d in info.value.diagnostics]


DISTRIBUTED = """pipeline b {
  ingest data { dataset = "digits" }
  train model {
    for_each = ["cnn", "mlp"]
    data = data.dataset
    model = each
    strategy = "allreduce"
    workers = 2
    retry { limit = 1  factor = 1.5 }
  }
  task first {
    command = ["echo"]
    args = ["${model[0].model}", "${model[*].metrics}"]
  }
}
"""


def test_dml100_at_each_attribute_argo_cannot_express(tmp_path: Path) -> None:
    assert errors(tmp_path, DISTRIBUTED) == [("DML100", 9), ("DML100", 13), ("DML100", 13)]


def test_dml101_bad_target_option(tmp_path: Path) -> None:
    text = 'pipeline b {\n  target argo {\n    pod_gc = "Sometimes"\n  }\n  ingest data { dataset = "digits" }\n}\n'
    assert errors(tmp_path, text) == [("DML101", 3)]


def test_dml101_unknown_target_option(tmp_path: Path) -> None:
    text = 'pipeline b {\n  target argo {\n    service_acount = "x"\n  }\n  ingest data { dataset = "digits" }\n}\n'
    assert errors(tmp_path, text) == [("DML101", 3)]


def test_dml102_names_invalid_after_sanitising(tmp_path: Path) -> None:
    text = (
        'pipeline c {\n  namespace = "Team_A"\n  ingest Data { dataset = "digits" }\n'
        '  ingest data { dataset = "digits" }\n  target argo { service_account = "svc_1" }\n}\n'
    )
    assert sorted(errors(tmp_path, text)) == [("DML102", 2), ("DML102", 4), ("DML102", 5)]


def test_dml102_step_name_too_long_for_a_label(tmp_path: Path) -> None:
    text = f'pipeline c {{\n  ingest {"d" * 64} {{ dataset = "digits" }}\n}}\n'
    assert errors(tmp_path, text) == [("DML102", 2)]


def test_dml102_label_value(tmp_path: Path) -> None:
    text = 'pipeline c {\n  labels { team = "a b" }\n  ingest data { dataset = "digits" }\n}\n'
    assert errors(tmp_path, text) == [("DML102", 2)]


# -- the YAML emitter ------------------------------------------------------------------------------
from dmlc_targets.argo import fastyaml  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.sampled_from(
        ["yes", "No", "null", "~", "1e5", "0x1F", "- a", "a: b", "#c", "|", "a\n", "a\n\n", " a\nb", "\ta"]
    ),
)
_DATA = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
)


@settings(max_examples=300, deadline=None)
@given(_DATA)
def test_fast_yaml_reads_back_as_the_same_data(value: Any) -> None:
    assert yaml.safe_load(fastyaml.dump(value)) == value


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_fast_yaml_matches_pyyaml_on_examples(example: Path) -> None:
    text = compile_argo(str(example))
    doc = yaml.safe_load(text)
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc
    assert fastyaml.dump(doc) == text.split("\n", 1)[1]


def test_elastic_is_dml100_on_both_cluster_targets_unless_ignored(tmp_path: Path) -> None:
    """enableDynamicWorker gives each allreduce worker a TF_CONFIG of its own and a parameter-server chief
    an empty cluster (the replay shows both), so a TFJob cannot shrink: refused, or ignored on request."""
    text = (ROOT / "examples" / "elastic.dml").read_text()
    src = tmp_path / "e.dml"
    src.write_text(text.replace('  target argo { elastic = "ignore" }\n  target kfp { elastic = "ignore" }\n', ""))
    for target in ("argo", "kfp"):
        with pytest.raises(DmlError) as info:
            compile_file(str(src), target)
        assert [(d.code, d.span.line) for d in info.value.diagnostics] == [("DML100", 20)], target  # `elastic`
    resource = templates(workflow(str(ROOT / "examples" / "elastic.dml")))["model"]["resource"]
    job = yaml.safe_load(resource["manifest"])
    assert "enableDynamicWorker" not in job["spec"] and job["spec"]["tfReplicaSpecs"]["Worker"]["replicas"] == 2
    assert templates(workflow(str(ROOT / "examples" / "elastic.dml")))["model"]["retryStrategy"]["limit"] == 3


def test_parameter_server_has_chief_workers_and_ps() -> None:
    resource = templates(workflow(str(ROOT / "examples" / "parameter_server.dml")))["model"]["resource"]
    replicas = yaml.safe_load(resource["manifest"])["spec"]["tfReplicaSpecs"]
    assert {k: v["replicas"] for k, v in replicas.items()} == {"Chief": 1, "Worker": 2, "PS": 1}
    assert resource["successCondition"] == "status.completionTime, status.replicaStatuses.Chief.succeeded"


OPTIONS = """pipeline o {
  target argo {
    service_account = "trainer"
    artifact_repository { key = "s3" }
    volume_claims = "template"
    ttl_after_finished = 1d
  }
  volume data { size = 5Gi  mount = "/data" }
  ingest raw { dataset = "digits" }
}
"""


def test_target_options_reach_the_workflow(tmp_path: Path) -> None:
    src = tmp_path / "o.dml"
    src.write_text(OPTIONS)
    spec = workflow(str(src))["spec"]
    assert spec["serviceAccountName"] == "trainer"
    assert spec["artifactRepositoryRef"] == {"configMap": "artifact-repositories", "key": "s3"}
    assert spec["ttlStrategy"] == {"secondsAfterCompletion": 86400}
    claim = spec["volumeClaimTemplates"][0]
    assert claim["metadata"]["name"] == "data" and claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert "volumes" not in spec


def test_dml100_memoize_on_a_volume_that_dies_with_the_workflow(tmp_path: Path) -> None:
    text = OPTIONS.replace(
        'ingest raw { dataset = "digits" }', 'ingest raw {\n    dataset = "digits"\n    memoize {}\n  }'
    )
    assert errors(tmp_path, text) == [("DML100", 5)]


def test_dml100_per_instance_output_read_outside_the_loop(tmp_path: Path) -> None:
    text = """pipeline l {
  ingest data { dataset = "digits" }
  train model {
    for_each = ["cnn", "mlp"]
    data = data.dataset
    model = each
  }
  evaluate check {
    wait = "each"
    model = model.model
    data = data.dataset
  }
  task report {
    command = ["echo"]
    args = ["${check.metrics}"]
  }
}
"""
    assert errors(tmp_path, text) == [("DML100", 15)]


def test_dml100_when_with_a_call(tmp_path: Path) -> None:
    text = """pipeline w {
  ingest data { dataset = "digits" }
  train model {
    data = data.dataset
    when = "len(data.dataset) > 0"
  }
}
"""
    assert errors(tmp_path, text) == [("DML100", 5)]


def test_a_reader_of_a_skipped_step_is_not_run_but_an_after_only_step_is(tmp_path: Path) -> None:
    """Argo runs a task whose bare-named upstream was Skipped (Succeeded || Skipped || Daemoned); a step
    that reads a skipped step's output must not run (it has no input), as a local run skips it."""
    src = tmp_path / "s.dml"
    src.write_text(
        "pipeline s {\n  params { go = false }\n"
        '  task a {\n    when = "params.go"\n    command = ["sh", "-c", "echo 1 > $DMLC_OUTPUTS/out"]\n'
        '    outputs { out = "param" }\n  }\n'
        '  task reader { command = ["echo", "${a.out}"] }\n'
        '  task later {\n    command = ["echo", "later"]\n    after = [a]\n  }\n}\n'
    )
    main = tasks(templates(workflow(str(src)))["s"])
    assert main["reader"]["depends"] == "a" and main["reader"]["when"] == "{{=tasks['a'].status == 'Succeeded'}}"
    assert main["later"]["depends"] == "a" and "when" not in main["later"]


def test_argo_3_5_gets_a_single_schedule(tmp_path: Path) -> None:
    """CronWorkflow `schedules` (a list) exists from Argo 3.6; 3.5 controllers read `schedule`."""
    src = tmp_path / "s.dml"
    text = (ROOT / "examples" / "scheduling.dml").read_text()
    src.write_text(text.replace("target kfp {", 'target argo { version = "3.5" }\n  target kfp {'))
    (doc,) = [d for d in yaml.safe_load_all(compile_file(str(src), "argo")) if d]
    assert "schedules" not in doc["spec"] and doc["spec"]["schedule"] == load(str(src)).pipeline.schedule.cron
    (default,) = [d for d in yaml.safe_load_all(compile_file(str(ROOT / "examples" / "scheduling.dml"), "argo")) if d]
    assert "schedule" not in default["spec"] and len(default["spec"]["schedules"]) == 1


def test_retry_classes_become_argo_retry_expressions(tmp_path: Path) -> None:
    """Argo's OnTransientError covers API errors only; the local classes are written as expressions."""
    src = tmp_path / "r.dml"
    src.write_text(
        "pipeline r {\n"
        '  task t {\n    command = ["false"]\n    retry {\n      limit = 2\n      on = "transient"\n    }\n  }\n'
        '  task f {\n    command = ["false"]\n    retry {\n      limit = 2\n      on = "failure"\n    }\n  }\n'
        '  task a {\n    command = ["false"]\n    retry { limit = 2 }\n  }\n}\n'
    )
    ts = templates(workflow(str(src)))
    assert ts["t"]["retryStrategy"]["retryPolicy"] == "Always"
    assert "asInt(lastRetry.exitCode) in [75, 137, 143]" in ts["t"]["retryStrategy"]["expression"]
    assert ts["f"]["retryStrategy"]["expression"].startswith("asInt(lastRetry.exitCode) != 0")
    assert "expression" not in ts["a"]["retryStrategy"]


def test_dml100_loop_items_holding_argo_syntax(tmp_path: Path) -> None:
    """Argo substitutes a loop's list (withItems, or withParam's text) before it splits it into items
    (v4.1.2 dag.go resolveDependencyReferences, then expandTask): a `{{` there would be evaluated."""
    task = '  task t {\n    for_each = %s\n    command = ["echo", "${each}"]\n  }\n'
    static = "pipeline l {\n" + task % '["a{{b}}", "c"]' + "}\n"
    param = 'pipeline l {\n  params { xs = ["{{workflow.name}}"] }\n' + task % "params.xs" + "}\n"
    assert errors(tmp_path, static) == [("DML100", 3)]
    assert errors(tmp_path, param) == [("DML100", 4)]
