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
