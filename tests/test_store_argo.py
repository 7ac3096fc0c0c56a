"""The artifact store on Argo where a shared volume used to be needed (issue 16 item 1): `memoize`, a
TFJob, an InferenceService. Replayed against the loopback S3 server of `test_object_store.py`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.test_object_store import SECRETS, _compiled, _target_errors, objects, s3, store_block, write

__all__ = ["s3"]  # the module-scoped loopback S3 server, shared with test_object_store.py

MEMO = r"""
  task make {
    command = ["sh", "-c", "date +%s%N > $DMLC_OUTPUTS/data"]
    outputs { data = "artifact" }
    memoize { max_age = 1h }
  }
  task read {
    command = ["sh", "-c", "cat $1 > $DMLC_OUTPUTS/copy", "x"]
    args = [make.data]
    outputs { copy = "artifact" }
  }
"""


def test_a_memoized_producer_hands_its_readers_the_prefix_it_wrote(s3: Any, tmp_path: Path) -> None:
    """Run twice: the second run's `make` is a cache hit, and `read` reads the first run's object."""
    from tests.argo_replay import replay as argo_replay

    endpoint, client = s3
    path = write(tmp_path, f"pipeline memo_store {{\n  {store_block(endpoint, 'memo')}\n{MEMO}}}\n")
    assert not _target_errors(path, "argo")
    (wf,) = _compiled("argo", path)
    cache = tmp_path / "cache.json"
    first = argo_replay(wf, tmp_path / "one", name="memo-store-aaaaa", secrets=SECRETS, cache=cache)
    assert first.phase == "Succeeded", first.message
    second = argo_replay(wf, tmp_path / "two", name="memo-store-bbbbb", secrets=SECRETS, cache=cache)
    assert second.phase == "Succeeded", second.message
    (hit,) = [n for n in second.nodes.values() if n.task_path.endswith("make")]
    assert hit.memoized
    one = objects(client, "memo/memo-store/memo-store-aaaaa/")
    two = objects(client, "memo/memo-store/memo-store-bbbbb/")
    assert set(one) == {"make/main/data", "read/main/copy"} and set(two) == {"read/main/copy"}
    assert two["read/main/copy"] == one["make/main/data"] == one["read/main/copy"]


@pytest.mark.parametrize(
    ("steps", "why"),
    [
        ('task t { for_each = ["a", "b"]  command = ["true"]  outputs { o = "artifact" }  memoize { } }', "loop"),
        (
            'task u { command = ["true"]  outputs { o = "artifact" } }\n'
            '  task t { command = ["true"]  args = [u.o]  memoize { } }',
            "same in every run",
        ),
    ],
    ids=["fanned-out producer", "reader of an unmemoized producer"],
)
def test_memoize_that_would_not_be_exact_stays_dml107(tmp_path: Path, steps: str, why: str) -> None:
    text = f'pipeline p {{\n  artifacts {{ store = "s3://bucket/x" }}\n  {steps}\n}}\n'
    (diag,) = [d for d in _target_errors(write(tmp_path, text), "argo") if d.code == "DML107"]
    assert why in diag.message and text.splitlines()[diag.span.line - 1][diag.span.col - 1 :].startswith("memoize")


def test_a_memoized_reader_keys_on_the_prefix_it_reads(tmp_path: Path) -> None:
    text = MEMO.replace('outputs { copy = "artifact" }', 'outputs { copy = "artifact" }\n    memoize { }')
    path = write(tmp_path, f'pipeline p {{\n  artifacts {{ store = "s3://bucket/x" }}\n{text}}}\n')
    assert not _target_errors(path, "argo")
    (wf,) = _compiled("argo", path)
    tmpl = {t["name"]: t for t in wf["spec"]["templates"]}
    assert "inputs.parameters['make-dmlc-store']" in tmpl["read"]["memoize"]["key"]
    (art,) = tmpl["read"]["inputs"]["artifacts"]
    assert art["s3"]["key"] == "{{=sprig.b64dec(inputs.parameters['make-dmlc-store'])}}"


TFJOB_SERVE = """
  ingest data { dataset = "digits" }
  train model {
    data            = data.dataset
    strategy        = "allreduce"
    workers         = 2
    epochs          = 1
    steps_per_epoch = 2
    seed            = 7
  }
  serve api { model = model.model }
"""


@pytest.mark.slow
@pytest.mark.tf
def test_a_tfjob_and_an_inference_service_stage_their_artifacts(s3: Any, tmp_path: Path) -> None:
    """The TFJob's replicas download the dataset and the chief uploads the model; the predictor downloads
    the model and answers; the secret reaches the pods by reference only."""
    pytest.importorskip("tensorflow")
    from tests.argo_replay import replay as argo_replay

    endpoint, client = s3
    path = write(tmp_path, f"pipeline staged {{\n  {store_block(endpoint, 'staged')}\n{TFJOB_SERVE}}}\n")
    assert not _target_errors(path, "argo")
    (wf,) = _compiled("argo", path)
    assert SECRETS["s3-creds"]["secretKey"] not in str(wf)
    run = argo_replay(wf, tmp_path / "argo", name="staged-x7k2p", secrets=SECRETS)
    try:
        assert run.phase == "Succeeded", run.message
        found = objects(client, "staged/staged/staged-x7k2p/")
        assert any(k.startswith("data/main/dataset/") for k in found)
        assert any(k.startswith("model/main/model/") for k in found)
        assert not any(k.startswith("api/") for k in found)
    finally:
        run.close()


@pytest.mark.parametrize(
    ("tf_config", "writes"),
    [
        (None, True),
        ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 0}}, True),
        ({"cluster": {"worker": ["a", "b"]}, "task": {"type": "worker", "index": 1}}, False),
        ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "worker", "index": 0}}, False),
        ({"cluster": {"chief": ["c"], "worker": ["a"]}, "task": {"type": "chief", "index": 0}}, True),
        ({"cluster": {"chief": ["c"], "ps": ["p"]}, "task": {"type": "ps", "index": 0}}, False),
    ],
)
def test_only_the_chief_uploads(monkeypatch: pytest.MonkeyPatch, tf_config: Any, writes: bool) -> None:
    from dmlc.runtime.staging import writer

    monkeypatch.delenv("TF_CONFIG", raising=False)
    if tf_config is not None:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert writer() is writes


def test_resource_templates_carry_the_staging_and_secret_references(tmp_path: Path) -> None:
    path = write(tmp_path, f"pipeline staged {{\n  {store_block('http://minio:9000', 'staged')}\n{TFJOB_SERVE}}}\n")
    (wf,) = _compiled("argo", path)
    tmpl = {t["name"]: t for t in wf["spec"]["templates"]}
    job = yaml.safe_load(tmpl["model"]["resource"]["manifest"])
    (worker,) = job["spec"]["tfReplicaSpecs"].values()
    pod = worker["template"]["spec"]
    (c,) = pod["containers"]
    spec = json.loads(c["command"][c["command"].index("--spec-json") + 1])
    assert spec["staging"] == {
        "bucket": "dmlc-test",
        "endpoint": "http://minio:9000",
        "inputs": {"/dmlc/store/data": "staged/staged/{{workflow.name}}/data"},
        "outputs": {"model": "staged/staged/{{workflow.name}}/model/main/model"},
    }
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert refs == {
        "AWS_ACCESS_KEY_ID": {"name": "s3-creds", "key": "accessKey"},
        "AWS_SECRET_ACCESS_KEY": {"name": "s3-creds", "key": "secretKey"},
    }
    assert {"name": "dmlc-store", "mountPath": "/dmlc/store"} in c["volumeMounts"]
    assert job["metadata"]["annotations"]["dmlc.io/output.model"] == "/dmlc/store/model/main/model"
    isvc = yaml.safe_load(tmpl["api"]["resource"]["manifest"])
    (p,) = isvc["spec"]["predictor"]["containers"]
    served = json.loads(p["command"][p["command"].index("--spec-json") + 1])
    assert served["staging"]["inputs"] == {"/dmlc/store/model": "staged/staged/{{workflow.name}}/model"}
    assert served["staging"]["outputs"] == {}
    assert {"name": "AWS_SECRET_ACCESS_KEY", "valueFrom": {"secretKeyRef": refs["AWS_SECRET_ACCESS_KEY"]}} in p["env"]


# -- issue 16 item 1's acceptance: the book pipeline with a store, on all three targets --------------
ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "examples" / "fashion_mnist.dml"


STEPS = "5"  # steps per epoch: three 2-worker trainings per target on a 2-core machine


@pytest.mark.slow
@pytest.mark.tf
def test_the_book_pipeline_writes_the_same_objects_on_every_target(
    s3: Any, keras_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`examples/fashion_mnist.dml` with `artifacts { store }` on the loopback S3 server: locally, on the
    Argo replay (memoized ingest, TFJobs, InferenceService staging their own artifacts) and on the KFP
    harness; the same keys under each run's prefix (KFP's salt aside) and the same dataset bytes."""
    from dmlc_targets.kfp.plan import METRICS_OUTPUT

    from tests.argo_replay import replay as argo_replay
    from tests.kfp_cluster import kubernetes
    from tests.kfp_replay import replay as kfp_replay
    from tests.kfp_replay.objstore import Store
    from tests.test_object_store import KEY, SECRET, _text, _unsalted, run, run_id

    endpoint, client = s3
    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setenv("HOME", str(keras_home.parent))
    block = "\n  " + store_block(endpoint, "book") + "\n"
    text = BOOK.read_text().replace('namespace   = "kubeflow"\n', 'namespace   = "kubeflow"\n' + block, 1)
    path = write(tmp_path, text)
    assert not _target_errors(path, "argo") and not _target_errors(path, "kfp")
    assert run(tmp_path, monkeypatch, "--secrets", "secrets.yaml", "--param", f"steps_per_epoch={STEPS}") == 0
    local = objects(client, f"book/fashion-mnist/{run_id(tmp_path)}/")

    (wf,) = _compiled("argo", path)
    argo = argo_replay(
        wf, tmp_path / "argo", name="fashion-mnist-x7k2p", secrets=SECRETS, params={"steps_per_epoch": STEPS}
    )
    assert argo.phase == "Succeeded", argo.message
    on_argo = objects(client, "book/fashion-mnist/fashion-mnist-x7k2p/")

    with kubernetes(tmp_path / "k8s") as k8s:
        store = Store(endpoint, KEY, SECRET)
        kfp = kfp_replay(
            k8s.mount(_text(path)), tmp_path / "kfp", params={"steps_per_epoch": int(STEPS)}, env=k8s.env, store=store
        )
        assert kfp.root.state == "SUCCEEDED", kfp.notes
    on_kfp = objects(client, f"book/fashion-mnist/{kfp.run_id}/")

    steps = {k.split("/")[0] for k in local}
    assert {"data", "model", "best"} <= steps, sorted(local)
    assert set(local) == set(on_argo)
    # KFP alone writes a step's metrics as a `system.Metrics` artifact too, for its UI (dmlc_targets.kfp.plan)
    ui = [k for k in on_kfp if k.split("/")[2] == METRICS_OUTPUT]
    assert {k.split("/")[0] for k in ui} == {"model", "best"}
    assert sorted(_unsalted(local)) == sorted(_unsalted(k for k in on_kfp if k not in ui))
    dataset = {k: v for k, v in local.items() if k.startswith("data/")}
    assert dataset and all(on_argo[k] == v for k, v in dataset.items())
    assert sorted(dataset.values()) == sorted(v for k, v in on_kfp.items() if k.startswith("data/"))


def test_the_replay_reads_a_secret_key_reference(tmp_path: Path) -> None:
    """The kubelet puts a Secret's key in the environment; one the replay was not given stays unset."""
    from tests.argo_replay import replay as argo_replay
    from tests.test_argo_replay import dag

    env = [
        {"name": "S", "valueFrom": {"secretKeyRef": {"name": "s3-creds", "key": "accessKey"}}},
        {"name": "U", "valueFrom": {"secretKeyRef": {"name": "other", "key": "k"}}},
    ]
    show = {"command": ["sh", "-c", 'printf "%s|%s" "$S" "${U-unset}" > /tmp/out'], "env": env}
    out = {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]}
    wf = dag([{"name": "t", "template": "show"}], {"name": "show", "container": show, "outputs": out})
    r = argo_replay(wf, tmp_path, secrets=SECRETS)
    assert r.phase == "Succeeded", r.message
    assert r.outputs("t") == {"out": f"{SECRETS['s3-creds']['accessKey']}|unset"}
    assert any("valueFrom secretKeyRef" in n for n in r.node("t").notes)


def _spec(tmp_path: Path, staging: dict[str, Any]) -> Any:
    from dmlc.semantics.spec import load

    data = {
        "spec_version": 1, "dmlc": "x", "pipeline": "p", "step": "t", "seed": 1, "volumes": {},
        "attrs": {"kind": "task", "command": ["true"]}, "outputs": {"o": "artifact"},
        "outputs_dir": str(tmp_path / "out"), "staging": staging,
    }  # fmt: skip
    return load(data)


def test_staging_round_trip_and_its_failures(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upload a folder (one object per file), download the prefix; a missing output is the user's error
    (exit 1); refused credentials never show the secret."""
    from dmlc.runtime import staging
    from dmlc.runtime.step_io import TransientError, UserError

    endpoint, client = s3
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRETS["s3-creds"]["accessKey"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRETS["s3-creds"]["secretKey"])
    monkeypatch.delenv("TF_CONFIG", raising=False)
    where = {"bucket": "dmlc-test", "endpoint": endpoint}
    spec = _spec(tmp_path, {**where, "outputs": {"o": "st/p/r/t/main/o"}})
    with pytest.raises(UserError, match="output `o` was not written"):
        staging.upload(spec)
    (tmp_path / "out" / "o" / "sub").mkdir(parents=True)
    (tmp_path / "out" / "o" / "sub" / "x.txt").write_text("x")
    (tmp_path / "out" / "o" / "y.txt").write_text("y")
    staging.upload(spec)
    assert objects(client, "st/p/r/") == {"t/main/o/sub/x.txt": b"x", "t/main/o/y.txt": b"y"}
    reader = _spec(
        tmp_path, {**where, "inputs": {str(tmp_path / "in" / "t"): "st/p/r/t", str(tmp_path / "no"): "st/none"}}
    )
    staging.download(reader)
    assert (tmp_path / "in" / "t" / "main" / "o" / "sub" / "x.txt").read_text() == "x"
    assert not (tmp_path / "no").exists()  # nothing under the prefix: nothing (a skipped producer)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bad-secret-value")
    bad = _spec(tmp_path, {"bucket": "no-such-bucket-here", "endpoint": endpoint, "inputs": {str(tmp_path / "z"): "k"}})
    with pytest.raises((UserError, TransientError)) as err:
        staging.download(bad)
    assert "bad-secret-value" not in str(err.value)


@pytest.mark.parametrize("steps", [MEMO, TFJOB_SERVE], ids=["memoize", "tfjob and serve"])
def test_both_writers_agree_and_the_workflow_validates(tmp_path: Path, steps: str) -> None:
    import subprocess
    import sys

    from dmlc_targets.argo import fastyaml, stream, workflow

    from dmlc.driver import prepare

    path = write(tmp_path, f"pipeline agree {{\n  {store_block('http://minio:9000')}\n{steps}}}\n")
    plan = prepare(str(path), "argo").plan
    assert stream.workflow_text(plan) == fastyaml.dump(workflow.to_plain(workflow.build(plan), plan.options.version))
    validator = ROOT.parent / "shared" / "schemas" / "validate_argo.py"
    if not validator.exists():
        pytest.skip("no shared validators")
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump_all(_compiled("argo", path)))
    done = subprocess.run([sys.executable, str(validator), str(tmp_path / "wf.yaml")], capture_output=True, text=True)
    assert done.returncode == 0 and "1 valid" in done.stdout, done.stdout + done.stderr
