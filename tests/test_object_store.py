"""The artifact store (`artifacts { store }`, issue 16 item 1) against a real S3 server on loopback.

moto's server mode (`ThreadedMotoServer`, 127.0.0.1, a free port) stands in for MinIO / S3. Checked:
the block's validation and JSON Schema; the local executor's uploads (keys, bytes, verification,
resume, coded failures, credentials never written); Argo's S3 artifacts (no PVC, both writers alike,
DML107 where the shared volume is still needed); KFP's `defaultPipelineRoot` on both build paths; and,
slow, one pipeline run locally, through the Argo replay and through the KFP harness, writing the same
objects.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmlc.cli import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "object_store.dml"
BUCKET = "dmlc-test"
KEY, SECRET = "AKIATESTKEY", "sEcReT-value-9f3b"  # the secret must never be written anywhere
SECRETS = {"s3-creds": {"accessKey": KEY, "secretKey": SECRET}}


@pytest.fixture(scope="module")
def s3() -> Any:
    """A loopback S3 server with an empty bucket; its endpoint URL."""
    server_mod = pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    server = server_mod.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                          region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def objects(client: Any, prefix: str) -> dict[str, bytes]:
    """key (relative to `prefix`) -> bytes of every object under it."""
    out = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix):
        for obj in page.get("Contents") or []:
            out[obj["Key"][len(prefix) :]] = client.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read()
    return out


def store_block(endpoint: str, prefix: str = "runs") -> str:
    return f'artifacts {{ store = "s3://{BUCKET}/{prefix}"  endpoint = "{endpoint}"  credentials = "s3-creds" }}'


TASKS = """
  task make {
    for_each = ["a", "b"]
    command = ["sh", "-c", "mkdir -p $DMLC_OUTPUTS/data/sub && echo hi $DMLC_ITEM > $DMLC_OUTPUTS/data/sub/x.txt"]
    outputs { data = "artifact" }
  }
  task one {
    command = ["sh", "-c", "printf one > $DMLC_OUTPUTS/file"]
    outputs { file = "artifact" }
  }
  task last {
    command = ["sh", "-c", "test -e $2 || { touch $2; exit 3; }; cat $1 > $DMLC_OUTPUTS/out", "x"]
    args = [one.file, "FLAG"]
    outputs { out = "artifact" }
  }
"""


def write(tmp: Path, text: str, name: str = "p.dml") -> Path:
    path = tmp / name
    path.write_text(text)
    (tmp / "secrets.yaml").write_text(yaml.safe_dump(SECRETS))
    return path


def run(tmp: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.chdir(tmp)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    return main(["run", "p.dml", "--local", *args])


def run_id(tmp: Path) -> str:
    (run_dir,) = (tmp / ".dmlc" / "runs").iterdir()
    return run_dir.name


# -- the block -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attr", "value"),
    [
        ("store", "ftp://bucket/x"),  # scheme
        ("store", "s3://"),  # no bucket
        ("store", "s3://Bad_Bucket/x"),  # not a DNS-style bucket
        ("store", "s3://bucket//x"),  # empty prefix segment
        ("endpoint", "minio:9000"),  # no scheme
        ("endpoint", "http://{{workflow.name}}.minio:9000"),  # template text must never reach Argo
        ("endpoint", "http://user:pw@minio:9000"),  # a credential written into the manifest
        ("endpoint", "http://minio:99999"),  # no such port
        ("endpoint", "http://minio:9000/x?y=1"),  # a path or query: not an endpoint
        ("region", "{{inputs.parameters.x}}"),
        ("credentials", "Creds/key"),  # a secret name, not a reference into one
    ],
)
def test_bad_store_attributes_are_coded_at_the_attribute(tmp_path: Path, attr: str, value: str) -> None:
    from dmlc.driver import check_file

    attrs = {"store": "s3://bucket/runs", attr: value}
    body = "  ".join(f'{k} = "{v}"' for k, v in attrs.items())
    path = write(tmp_path, f'pipeline p {{\n  artifacts {{ {body} }}\n  task t {{ command = ["true"] }}\n}}\n')
    diags = check_file(str(path))
    assert [d.code for d in diags] == ["DML020"], diags
    assert diags[0].span.line == 2


@pytest.mark.parametrize("attr", ['endpoint = "http://x:9000"', 'region = "eu"', "insecure = true"])
def test_s3_only_attributes_on_a_gs_store_are_dml026(tmp_path: Path, attr: str) -> None:
    from dmlc.driver import check_file

    store = f'artifacts {{ store = "gs://bucket/runs"  {attr} }}'
    text = f'pipeline p {{\n  {store}\n  task t {{ command = ["true"] }}\n}}\n'
    assert [(d.code, d.span.line) for d in check_file(str(write(tmp_path, text)))] == [("DML026", 2)]


def test_the_json_schema_describes_the_block() -> None:
    from dmlc.schema import schema as json_schema

    schema = json.dumps(json_schema())
    assert "Artifacts" in schema and "accessKey" in schema and "(s3|gs)" in schema


def test_check_and_compile_never_import_the_s3_libraries(s3: Any, tmp_path: Path) -> None:
    code = (
        "import sys; from dmlc.driver import compile_file;"
        f"[compile_file({str(EXAMPLE)!r}, t) for t in ('argo', 'kfp', 'local')];"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('s3fs', 'boto3', 'botocore', 'fsspec', 'aiobotocore')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


# -- local runs ------------------------------------------------------------------------------------
def test_a_local_run_writes_every_artifact_at_the_shared_keys(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint, client = s3
    tasks = TASKS.replace("FLAG", str(tmp_path / "flag"))
    write(tmp_path, f"pipeline local_store {{\n  {store_block(endpoint, 'loc')}\n{tasks}}}\n")
    assert run(tmp_path, monkeypatch, "--secrets", "secrets.yaml") == 3  # `last` fails once
    rid = run_id(tmp_path)
    prefix = f"loc/local-store/{rid}/"
    first = objects(client, prefix)
    assert first == {"make/a/data/sub/x.txt": b"hi a\n", "make/b/data/sub/x.txt": b"hi b\n", "one/main/file": b"one"}
    stamps = {k: client.head_object(Bucket=BUCKET, Key=prefix + k)["LastModified"] for k in first}
    local = tmp_path / ".dmlc" / "runs" / rid
    (local / "steps" / "one" / "main" / "outputs" / "file").unlink()  # gone here: read back from the store
    # resumed: the finished instances are not redone, their objects not written again; `last` now runs
    assert run(tmp_path, monkeypatch, "--secrets", "secrets.yaml", "--resume", rid) == 0
    after = objects(client, prefix)
    assert after == first | {"last/main/out": b"one"}
    assert {k: client.head_object(Bucket=BUCKET, Key=prefix + k)["LastModified"] for k in first} == stamps
    assert (local / "steps" / "one" / "main" / "outputs" / "file").read_bytes() == b"one"
    # the credentials reached s3fs only: nothing under .dmlc holds the secret
    assert not [p for p in (tmp_path / ".dmlc").rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]


def test_an_object_already_there_is_verified_not_sent_again(s3: Any, tmp_path: Path) -> None:
    from dmlc_targets.local import objstore

    from dmlc.ir.model import Artifacts

    endpoint, client = s3
    remote = objstore.Remote(Artifacts(store=f"s3://{BUCKET}/v", endpoint=endpoint), {"key": KEY, "secret": SECRET})
    (tmp_path / "f").write_bytes(b"x" * 1000)
    sent: list[str] = []
    put = remote.fs.put_file
    remote.fs.put_file = lambda *a, **k: (sent.append(a[1]), put(*a, **k))[1]
    remote.upload(tmp_path / "f", "v/k")
    remote.upload(tmp_path / "f", "v/k")
    assert sent == [f"{BUCKET}/v/k"]
    (tmp_path / "f").write_bytes(b"y" * 1000)  # same size, other bytes: the ETag (MD5) tells them apart
    remote.upload(tmp_path / "f", "v/k")
    assert len(sent) == 2 and objects(client, "v/") == {"k": b"y" * 1000}


def test_an_object_read_back_with_another_digest_is_dml213(s3: Any, tmp_path: Path) -> None:
    from dmlc_targets.local import objstore
    from dmlc_targets.local.cache import digest_path
    from dmlc_targets.local.state import Instance

    from dmlc.diagnostics.model import DmlError
    from dmlc.ir.model import Artifacts, Task

    endpoint, client = s3
    remote = objstore.Remote(Artifacts(store=f"s3://{BUCKET}/rb", endpoint=endpoint), {"key": KEY, "secret": SECRET})
    step = Task(kind="task", command=["true"], outputs={"o": "artifact"})
    where = ("p", "run-1", "t", step, Instance("t", None))
    client.put_object(Bucket=BUCKET, Key="rb/p/run-1/t/main/o", Body=b"replaced")
    (tmp_path / "want").write_bytes(b"original")
    outputs = {"o": str(tmp_path / "o")}
    with pytest.raises(DmlError) as err:
        remote.get_instance(where, outputs, {"o": digest_path(tmp_path / "want")}, digest_path)
    assert err.value.diagnostics[0].code == "DML213"
    (tmp_path / "o").unlink()
    remote.get_instance(where, outputs, {}, digest_path)
    assert (tmp_path / "o").read_bytes() == b"replaced"  # no recorded digest: taken as read


def test_an_upload_that_does_not_verify_is_dml213(s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dmlc_targets.local import objstore

    from dmlc.diagnostics.model import DmlError
    from dmlc.ir.model import Artifacts

    endpoint, _ = s3
    remote = objstore.Remote(Artifacts(store=f"s3://{BUCKET}/bad", endpoint=endpoint), {"key": KEY, "secret": SECRET})
    (tmp_path / "f").write_bytes(b"data")
    monkeypatch.setattr(objstore, "_md5", lambda path: "0" * 32)  # what a body rewritten on the way looks like
    with pytest.raises(DmlError) as err:
        remote.upload(tmp_path / "f", "bad/k")
    assert err.value.diagnostics[0].code == "DML213"


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"endpoint": "http://127.0.0.1:9"}, "cannot reach"),
        ({"bucket": "no-such-bucket"}, "does not exist"),
        ({"secrets": False}, "DML207"),
    ],
    ids=["refused", "no bucket", "no credentials"],
)
def test_store_failures_are_dml212_before_anything_runs(
    s3: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: dict,
    words: str,
) -> None:
    endpoint, _ = s3
    block = store_block(change.get("endpoint", endpoint)).replace(BUCKET, change.get("bucket", BUCKET))
    write(tmp_path, f'pipeline p {{\n  {block}\n  task t {{ command = ["touch", "{tmp_path}/ran"] }}\n}}\n')
    args = ("--secrets", "secrets.yaml") if change.get("secrets", True) else ()
    assert run(tmp_path, monkeypatch, *args) == 1
    err = capsys.readouterr().err
    assert ("DML207" if words == "DML207" else "error[DML212]") in err and words in err, err
    assert "Traceback" not in err and SECRET not in err
    assert not (tmp_path / "ran").exists()


def test_refused_credentials_are_dml212_without_the_values() -> None:
    from dmlc_targets.local.objstore import _store_error

    from dmlc.semantics.objstore import location

    err = _store_error(location("s3://b/p"), "b/p/k", PermissionError("InvalidAccessKeyId: The key does not exist"))
    diag = err.diagnostics[0]
    assert diag.code == "DML212" and "refused the credentials" in diag.message and "accessKey" in (diag.help or "")


# -- Argo and KFP output ---------------------------------------------------------------------------
def _compiled(target: str, path: Path = EXAMPLE) -> list[dict]:
    from dmlc.driver import compile_file

    return [d for d in yaml.safe_load_all(compile_file(str(path), target)) if d]


def test_argo_uses_s3_artifacts_and_no_pvc() -> None:
    (wf,) = _compiled("argo")
    spec = wf["spec"]
    assert "volumeClaimTemplates" not in spec and spec["volumes"] == [{"name": "dmlc-work", "emptyDir": {}}]
    tmpl = {t["name"]: t for t in spec["templates"]}
    (out,) = tmpl["data"]["outputs"]["artifacts"]
    assert (
        out["archive"] == {"none": {}} and out["s3"]["key"] == "runs/object-store/{{workflow.name}}/data/main/dataset"
    )
    assert out["s3"]["accessKeySecret"] == {"name": "s3-creds", "key": "accessKey"}
    assert out["s3"]["endpoint"] == "minio.minio:9000" and out["s3"]["insecure"] is True
    assert tmpl["data"]["metadata"]["annotations"]["dmlc.io/output.dataset"] == "/dmlc/store/data/main/dataset"
    model_out = tmpl["model"]["outputs"]["artifacts"][0]["s3"]["key"]
    assert model_out == "runs/object-store/{{workflow.name}}/model/{{=sprig.b64dec(inputs.parameters['item'])}}/model"
    (fan_in,) = tmpl["best"]["inputs"]["artifacts"]
    assert fan_in["path"] == "/dmlc/store/model" and fan_in["optional"] is True
    assert fan_in["s3"]["key"] == "runs/object-store/{{workflow.name}}/model"


def test_argo_writers_agree_and_validate(tmp_path: Path) -> None:
    from dmlc_targets.argo import fastyaml, stream, workflow

    from dmlc.driver import prepare

    plan = prepare(str(EXAMPLE), "argo").plan
    assert stream.workflow_text(plan) == fastyaml.dump(workflow.to_plain(workflow.build(plan), plan.options.version))
    validator = ROOT.parent / "shared" / "schemas" / "validate_argo.py"
    if not validator.exists():
        pytest.skip("no shared validators")
    (tmp_path / "wf.yaml").write_text(yaml.safe_dump_all(_compiled("argo")))
    done = subprocess.run([sys.executable, str(validator), str(tmp_path / "wf.yaml")], capture_output=True, text=True)
    assert done.returncode == 0 and "1 valid" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("step", "path", "store"),
    [
        ('train t { data = "/d"  strategy = "allreduce"  workers = 2 }', "strategy", "gs://bucket/x"),
        ('serve s { model = "/m" }', None, "gs://bucket/x"),
        (
            'task t { for_each = ["a", "b"]  command = ["true"]  outputs { o = "artifact" }  memoize { } }',
            "memoize",
            "s3://bucket/x",
        ),
    ],
    ids=["tfjob on gcs", "inference service on gcs", "memoize a loop"],
)
def test_argo_dml107_where_the_shared_volume_is_needed(tmp_path: Path, step: str, path: str | None, store: str) -> None:
    """What stays inexact with a store on Argo (a TFJob's or predictor's own staging speaks S3 only)."""
    text = f'pipeline p {{\n  artifacts {{ store = "{store}" }}\n  {step}\n}}\n'
    (diag,) = [d for d in _target_errors(write(tmp_path, text), "argo") if d.code == "DML107"]
    span = diag.span
    assert span.line == 3
    if path is not None:
        assert text.splitlines()[2][span.col - 1 :].startswith(path)
    assert not _target_errors(write(tmp_path, text), "kfp")  # KFP's launcher task copies the artifacts
    s3_store = text.replace(store, "s3://bucket/x")
    assert bool(_target_errors(write(tmp_path, s3_store), "argo")) == ("memoize" in step)
    without = text.replace(f'artifacts {{ store = "{store}" }}', "")
    assert not [d for d in _target_errors(write(tmp_path, without), "argo") if d.code == "DML107"]


def _target_errors(path: Path, target: str) -> list[Any]:
    from dmlc.diagnostics.model import DmlError
    from dmlc.driver import prepare

    try:
        prepare(str(path), target)
    except DmlError as exc:
        return exc.diagnostics
    return []


def test_kfp_pipeline_root_on_both_build_paths(tmp_path: Path) -> None:
    from dmlc_targets.kfp import direct, emit

    from dmlc.driver import prepare

    text = EXAMPLE.read_text().replace('for_each = ["mlp", "dropout"]', "").replace("each", '"mlp"')
    text = text.replace("model[*].model", "[model.model]")
    plan = prepare(str(write(tmp_path, text)), "kfp").plan
    assert direct.unsupported(plan) is None  # a flat pipeline: the direct path writes it
    ours, sdk = direct.compile_text(plan), emit.pipeline_text(plan, direct=False)
    assert ours == sdk
    assert next(yaml.safe_load_all(ours))["defaultPipelineRoot"] == "s3://dmlc-artifacts/runs"
    loop = _compiled("kfp")[0]  # the example's loop takes the SDK path
    assert loop["defaultPipelineRoot"] == "s3://dmlc-artifacts/runs"


# -- one pipeline, three runs, the same objects ----------------------------------------------------
JOIN = (
    "import json, os, sys; parts = [open(p + '/sub/x.txt').read() for p in json.loads(sys.argv[1])];"
    " open(os.environ['DMLC_OUTPUTS'] + '/all', 'w').write(''.join(parts))"
)
THREE_WAY = r"""
  task make {
    for_each = ["a", "b"]
    command = ["sh", "-c", "mkdir -p $DMLC_OUTPUTS/data/sub && echo hi $DMLC_ITEM > $DMLC_OUTPUTS/data/sub/x.txt"]
    outputs { data = "artifact" }
  }
  task twice {
    wait = "each"
    command = ["sh", "-c", "cat $1/sub/x.txt $1/sub/x.txt > $DMLC_OUTPUTS/twice", "x"]
    args = [make.data]
    outputs { twice = "artifact" }
  }
  task join {
    command = ["python", "-c", "JOIN"]
    args = [make[*].data]
    outputs { all = "artifact" }
  }
""".replace("JOIN", JOIN)


def test_task_pipeline_writes_the_same_objects_on_every_target(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fan-out, a `wait = "each"` reader (one instance) and a fan-in (all of them) read what the store holds:
    each target's readers see only downloads (Argo: a per-pod emptyDir; KFP: the pod's /s3 folder)."""
    endpoint, _ = s3
    path = write(tmp_path, f"pipeline three {{\n  {store_block(endpoint, 'three')}\n{THREE_WAY}}}\n")
    local, on_argo, on_kfp = _three_runs(s3, tmp_path, monkeypatch, path, "three/three", "three-x7k2p")

    fixed = {"make/a/data/sub/x.txt": b"hi a\n", "make/b/data/sub/x.txt": b"hi b\n", "join/main/all": b"hi a\nhi b\n"}
    assert {k: v for k, v in local.items() if not k.startswith("twice/")} == fixed
    assert {k: v for k, v in on_argo.items() if not k.startswith("twice/")} == fixed
    # a `wait = "each"` reader's instance is its index locally, a node digest on Argo, a salt on KFP
    for found in (local, on_argo, on_kfp):
        assert sorted(v for k, v in found.items() if k.startswith("twice/")) == [b"hi a\nhi a\n", b"hi b\nhi b\n"]
    assert sorted(_unsalted(on_kfp)) == sorted(_unsalted(local))
    assert sorted(on_kfp.values()) == sorted(local.values())


@pytest.mark.slow
@pytest.mark.tf
def test_local_argo_and_kfp_runs_write_the_same_objects(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorflow")
    from dmlc_targets.kfp.plan import METRICS_OUTPUT

    endpoint, _ = s3
    text = EXAMPLE.read_text().replace("http://minio.minio:9000", endpoint).replace("dmlc-artifacts", BUCKET)
    path = write(tmp_path, text)
    local, on_argo, on_kfp = _three_runs(s3, tmp_path, monkeypatch, path, "runs/object-store", "object-store-x7k2p")

    assert set(local) == set(on_argo) and len(local) > 10
    # KFP's driver puts a random salt where the others put the instance (objstore.py): compare without it;
    # KFP alone also writes a step's metrics as a `system.Metrics` artifact, for its UI (dmlc_targets.kfp.plan)
    ui = [k for k in on_kfp if k.split("/")[2] == METRICS_OUTPUT]
    assert {k.split("/")[0] for k in ui} == {"model", "best"}
    assert sorted(_unsalted(local)) == sorted(_unsalted(k for k in on_kfp if k not in ui))
    for key in [k for k in local if k.startswith(("data/", "summary/"))]:  # deterministic outputs
        assert local[key] == on_argo[key], key
    assert sorted(v for k, v in local.items() if k.startswith("data/")) == sorted(
        v for k, v in on_kfp.items() if k.startswith("data/")
    )


def _three_runs(s3: Any, tmp: Path, monkeypatch: pytest.MonkeyPatch, path: Path, root: str, workflow: str) -> tuple:
    """Run `path` locally, on the Argo replay (as Workflow `workflow`) and on the KFP harness against the
    loopback server; each run's objects under `root/<its run>/`."""
    from tests.argo_replay import replay as argo_replay
    from tests.kfp_replay import replay as kfp_replay
    from tests.kfp_replay.objstore import Store

    endpoint, client = s3
    assert run(tmp, monkeypatch, "--secrets", "secrets.yaml") == 0
    local = objects(client, f"{root}/{run_id(tmp)}/")
    (wf,) = _compiled("argo", path)
    argo = argo_replay(wf, tmp / "argo", name=workflow, secrets=SECRETS)
    assert argo.phase == "Succeeded", argo.message
    kfp = kfp_replay(_text(path), tmp / "kfp", store=Store(endpoint, KEY, SECRET))
    assert kfp.root.state == "SUCCEEDED", kfp.notes
    return local, objects(client, f"{root}/{workflow}/"), objects(client, f"{root}/{kfp.run_id}/")


def _text(path: Path) -> str:
    from dmlc.driver import compile_file

    return compile_file(str(path), "kfp")


def _unsalted(keys: Any) -> list[str]:
    return ["/".join([k.split("/")[0], *k.split("/")[2:]]) for k in keys]


def test_kfp_names_the_launcher_config_and_with_setup_writes_it() -> None:
    from dmlc.driver import compile_file

    plain = compile_file(str(EXAMPLE), "kfp")
    assert "kfp-launcher ConfigMap" in plain.split("# PIPELINE DEFINITION")[0]
    docs = [d for d in yaml.safe_load_all(compile_file(str(EXAMPLE), "kfp", {"with_setup": True})) if d]
    (config,) = [d for d in docs if d.get("kind") == "ConfigMap"]
    assert config["metadata"]["name"] == "kfp-launcher"
    assert config["data"]["defaultPipelineRoot"] == docs[0]["defaultPipelineRoot"] == "s3://dmlc-artifacts/runs"
    s3 = yaml.safe_load(config["data"]["providers"])["s3"]["default"]
    assert s3["endpoint"] == "minio.minio:9000" and s3["disableSSL"] is True and s3["region"] == "us-east-1"
    assert s3["credentials"] == {
        "fromEnv": False,
        "secretRef": {"secretName": "s3-creds", "accessKeyKey": "accessKey", "secretKeyKey": "secretKey"},
    }


def test_a_gs_store_compiles_for_the_cluster_targets_and_is_dml107_locally(tmp_path: Path) -> None:
    text = 'pipeline p {\n  artifacts { store = "gs://bucket/runs"  credentials = "gcs-key" }\n'
    path = write(tmp_path, text + '  task t { command = ["true"]  outputs { o = "artifact" } }\n}\n')
    (diag,) = _target_errors(path, "local")
    assert diag.code == "DML107" and diag.span.line == 2
    assert not _target_errors(path, "argo") and not _target_errors(path, "kfp")
    (wf,) = _compiled("argo", path)
    (out,) = wf["spec"]["templates"][1]["outputs"]["artifacts"]
    assert out["gcs"] == {
        "bucket": "bucket",
        "key": "runs/p/{{workflow.name}}/t/main/o",
        "serviceAccountKeySecret": {"name": "gcs-key", "key": "serviceAccountKey"},
    }
