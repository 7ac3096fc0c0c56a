"""The data path of a launched KFP step (issue 11 #1), run for real without a cluster.

A distributed `train` compiled for KFP becomes a launcher task. Here its shim runs as KFP's
launcher would start it: input artifacts downloaded to local paths but known by `minio://` URIs,
output artifacts to be uploaded from local paths, the run's data volume mounted, a service-account
folder naming its namespace. Its own kubernetes client (`apply.Cluster`) creates the TFJob through a
local API server (`tests/kfp_cluster.ApiServer`) in front of the Argo replay's TFJob stand-in (real
worker processes with TF_CONFIG), whose workers here run a small script in
place of the TensorFlow runtime, so the test needs no TensorFlow and checks what matters: the pods
read their inputs from the volume (never a URI), write there, and the launcher copies the result
into the task's output artifact; the objects land in the launcher pod's namespace.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmlc.driver import compile_file
from tests.kfp_cluster import ApiServer, LocalCluster

PIPELINE = """\
pipeline launched {
  namespace = "kubeflow"
  ingest data { dataset = "digits" }
  train model {
    data     = data.dataset
    strategy = "allreduce"
    workers  = 2
  }
}
"""

# stands in for `python -m dmlc.runtime train`: worker 0 copies the dataset into the model it "trains"
WORKER = """\
import json, os, pathlib, sys
spec = json.loads(sys.argv[1])
data = pathlib.Path(spec["attrs"]["data"])
assert "://" not in str(data) and data.is_dir(), data
if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 0:
    out = pathlib.Path(spec["outputs_dir"])
    (out / "model").mkdir(parents=True)
    (out / "model" / "saved_model.pb").write_text((data / "dataset.json").read_text())
    (out / "metrics").write_text(json.dumps({"accuracy": 0.5, "seen": str(data)}))
    (out / "metric-accuracy").write_text("0.5")  # as dmlc.semantics.metrics.write: the engines' UIs
    (out / "metric-loss").write_text("0.25")
"""


@dataclass
class Artifact:
    """What kfp's executor hands a component: `.path` (local, where the launcher downloaded it) and `.uri`."""

    path: str
    uri: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def log_metric(self, metric: str, value: float) -> None:  # kfp.dsl.Metrics
        self.metadata[metric] = value


def _launcher_task(tmp_path: Path, volume: Path) -> dict[str, Any]:
    source = tmp_path / "launched.dml"
    source.write_text(PIPELINE)
    spec = yaml.safe_load_all(compile_file(str(source), "kfp"))
    tasks = next(spec)["root"]["dag"]["tasks"]
    task = json.loads(tasks["model"]["inputs"]["parameters"]["dmlc_spec"]["runtimeValue"]["constant"])
    # the harness mounts the data volume at a folder of its own: the mount path, remapped as text
    task = json.loads(json.dumps(task).replace('"/dmlc-data"', json.dumps(str(volume))))
    container = task["launch"]["manifests"][0]["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    # "python" as in the manifest (the stand-in puts this interpreter first on PATH): an absolute path
    # under /tmp would be remapped like any path into the pod's own /tmp
    container["command"] = ["python", "-c", WORKER, container["command"][-1]]
    return task


@pytest.fixture
def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A LocalCluster behind a local API server, which the launcher's own kubernetes client reaches."""
    from dmlc_targets.kfp import apply
    from kubernetes.config import kube_config

    local = LocalCluster(tmp_path / "cluster")
    server = ApiServer(local, tmp_path / "api")
    monkeypatch.setenv("KUBECONFIG", str(server.kubeconfig))
    # kube_config read $KUBECONFIG when it was imported; a launcher task is a fresh process, this is not
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(server.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(apply, "POLL_S", 0.2)
    yield local
    server.close()


def test_a_launched_tfjob_reads_and_writes_only_through_the_data_volume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cluster: LocalCluster
) -> None:
    from dmlc_targets.kfp import apply, shim

    volume = tmp_path / "cluster" / "volumes" / "dmlc-data"  # where the stand-in's pods see the claim
    task = _launcher_task(tmp_path, volume)
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "namespace").write_text("team-a\n")
    monkeypatch.setattr(apply, "SERVICE_ACCOUNT", account)
    downloaded = tmp_path / "minio" / "mlpipeline" / "v2" / "artifacts" / "launched" / "r1" / "data" / "dataset"
    downloaded.mkdir(parents=True)
    (downloaded / "dataset.json").write_text('{"rows": 3}')
    uri = "minio://mlpipeline/v2/artifacts/launched/r1/"
    args = {
        "dmlc_spec": json.dumps(task),
        "data__dataset": Artifact(str(downloaded), uri + "data/dataset"),
        "model": Artifact(str(tmp_path / "upload" / "model"), uri + "model/model"),
        "metrics": str(tmp_path / "upload" / "metrics"),
        "dmlc_metrics": Artifact(str(tmp_path / "upload" / "dmlc_metrics"), uri + "model/dmlc_metrics"),
        "dmlc_data_pvc": "launched-r1-dmlc-data",
    }
    shim.run_step(args)
    assert args["dmlc_metrics"].metadata == {"accuracy": 0.5, "loss": 0.25}  # the job's numbers, for KFP's UI
    (job,) = cluster.created
    assert job["kind"] == "TFJob" and job["metadata"]["namespace"] == "team-a"  # not the file's "kubeflow"
    volumes = job["spec"]["tfReplicaSpecs"]["Worker"]["template"]["spec"]["volumes"]
    assert {"name": "dmlc-data", "persistentVolumeClaim": {"claimName": "launched-r1-dmlc-data"}} in volumes
    assert (tmp_path / "upload" / "model" / "saved_model.pb").read_text() == '{"rows": 3}'  # KFP uploads it
    metrics = json.loads((tmp_path / "upload" / "metrics").read_text())
    assert metrics["accuracy"] == 0.5 and metrics["seen"].startswith(str(volume))  # read on the volume
    assert not any(volume.iterdir())  # a finished job's staging folder is removed


SERVE = """\
pipeline served {
  task best {
    command = ["true"]
    outputs { model = "artifact" }
  }
  serve classifier { model = best.model }
}
"""

# stands in for `python -m dmlc.runtime serve`: answers on $PORT only if the model is on the volume
SERVER = """\
import http.server, json, os, pathlib, sys
model = pathlib.Path(json.loads(sys.argv[1])["attrs"]["model"])
assert "://" not in str(model) and (model / "saved_model.pb").read_text() == "weights", model
class Ready(http.server.BaseHTTPRequestHandler):  # 200 on every GET, the readiness probe's path included
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Ready).serve_forever()
"""


def test_a_launched_server_reads_its_model_from_the_data_volume(tmp_path: Path, cluster: LocalCluster) -> None:
    from dmlc_targets.kfp import shim

    volume = tmp_path / "cluster" / "volumes" / "dmlc-data"
    source = tmp_path / "served.dml"
    source.write_text(SERVE)
    tasks = next(yaml.safe_load_all(compile_file(str(source), "kfp")))["root"]["dag"]["tasks"]
    task = json.loads(tasks["classifier"]["inputs"]["parameters"]["dmlc_spec"]["runtimeValue"]["constant"])
    task = json.loads(json.dumps(task).replace('"/dmlc-data"', json.dumps(str(volume))))
    container = task["launch"]["manifests"][0]["spec"]["predictor"]["containers"][0]
    container["command"] = ["python", "-c", SERVER, container["command"][-1]]
    model = tmp_path / "minio" / "best" / "model"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_text("weights")
    args = {
        "dmlc_spec": json.dumps(task),
        "best__model": Artifact(str(model), "minio://mlpipeline/v2/artifacts/served/r1/best/model"),
        "endpoint": str(tmp_path / "upload" / "endpoint"),
        "dmlc_data_pvc": "served-r1-dmlc-data",
    }
    shim.run_step(dict(args))
    (isvc,) = cluster.created
    assert isvc["metadata"]["namespace"] == "default"  # no service-account folder here: the client's default
    assert (tmp_path / "upload" / "endpoint").read_text().startswith('"http://127.0.0.1:')
    (staged,) = volume.glob("*/in/*/model/saved_model.pb")  # kept: the server keeps reading it
    assert staged.read_text() == "weights"
    shim.run_step(dict(args))  # the next run: the service of that name exists (a create would get 409)
    assert [o["metadata"]["name"] for o in cluster.created] == [isvc["metadata"]["name"]] * 2
