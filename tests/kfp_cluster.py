"""A local stand-in for the Kubernetes API that the KFP launcher (`targets/kfp/apply.py`) talks to.

Takes the objects the launcher creates (TFJob, InferenceService, and a sharded server's router
Deployment and Service) and runs them the way the Argo replay does (`tests/argo_replay/tfjob.py`:
training-operator v1.9.0's TFJob status rules; `tests/argo_replay/kserve.py`: one server process per
InferenceService), answering `create`, `get` and `pod_reasons` like `apply.Cluster`. PVC volumes are
folders under `<root>/volumes/<volume name>`, as in the Argo replay, so a launched pod sees the run's
data volume where the launcher task sees it when the harness mounts it at that folder. Each object
keeps the namespace the launcher asked for, so a test can check where it landed.

`kubernetes(root)` sets both up for a KFP replay: the executor environment (`KUBECONFIG`) and how to
mount the run's data volume (`/dmlc-data`, remapped as text to the folder the stand-ins use).

`ApiServer` puts a `LocalCluster` behind the Kubernetes REST API (discovery, create, get, list pods),
so the launcher's real `apply.Cluster` (the kubernetes client's DynamicClient and CoreV1Api) talks
to it from any process through a kubeconfig: `KUBECONFIG=<server.kubeconfig>`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.argo_replay.kserve import InferenceService
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.procs import Procs, exit_code
from tests.argo_replay.tfjob import TFJob


class _Static:
    """An object nothing runs for (a router Deployment / Service): reported available at once."""

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj

    def poll(self) -> dict[str, Any]:
        return {**self.obj, "status": {"conditions": [{"type": "Available", "status": "True"}]}}

    def stop(self) -> None:
        pass


class LocalCluster:
    def __init__(self, root: Path) -> None:
        self.ctx = Ctx({"templates": []}, {"namespace": "default"}, "kfp-harness", root, {})
        self.ctx.procs = Procs()
        self.objects: dict[tuple[str, str, str], Any] = {}
        self.created: list[dict[str, Any]] = []  # every object as created (name and namespace filled in)

    def create(self, manifest: dict[str, Any], namespace: str, apply: bool = False) -> dict[str, Any]:
        """POST (409 for a name that exists, as the API server answers) or server-side apply (replaces)."""
        obj = json.loads(json.dumps(manifest))
        meta = obj["metadata"]
        meta["name"] = meta.get("name") or meta["generateName"] + uuid.uuid4().hex[:5]
        meta["namespace"] = namespace
        old = self.objects.get((obj["kind"], namespace, meta["name"]))
        if old is not None and not apply:
            raise FileExistsError(meta["name"])
        if old is not None:
            old.stop()
        self.ctx.namespace = namespace
        node = Node(name=meta["name"], id=meta["name"], type="Pod", template=None, boundary="")
        kinds = {"TFJob": TFJob, "InferenceService": InferenceService}
        standin = kinds[obj["kind"]](self.ctx, node, obj) if obj["kind"] in kinds else _Static(obj)
        if hasattr(standin, "start"):
            standin.start()
        self.objects[(obj["kind"], namespace, meta["name"])] = standin
        self.created.append(obj)
        return obj

    def get(self, manifest: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
        return self.objects[(manifest["kind"], namespace, name)].poll()

    def pod_reasons(self, job: str, namespace: str) -> list[tuple[str, int]]:
        tfjob = self.objects[("TFJob", namespace, job)]
        return [("Error", exit_code(r.proc) or 1) for r in tfjob.replicas if r.state == "Failed"]  # the pod's code

    def close(self) -> None:
        for standin in self.objects.values():
            standin.stop()
        self.ctx.procs.stop_all()


# group/version -> (plural, kind) served; "" is the core group (/api/v1)
RESOURCES = {
    "v1": [("pods", "Pod"), ("services", "Service")],
    "apps/v1": [("deployments", "Deployment")],
    "kubeflow.org/v1": [("tfjobs", "TFJob")],
    "serving.kserve.io/v1beta1": [("inferenceservices", "InferenceService")],
}
_PATH = re.compile(
    r"^/(?:api|apis/(?P<group>[^/]+))/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)


def _discovery(path: str) -> Any:
    if path == "/version":
        return {"major": "1", "minor": "30", "gitVersion": "v1.30.0"}
    if path == "/api":
        return {"kind": "APIVersions", "versions": ["v1"]}
    if path == "/apis":
        groups = []
        for gv in (g for g in RESOURCES if "/" in g):
            group, version = gv.split("/")
            ref = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [ref], "preferredVersion": ref})
        return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    gv = path.removeprefix("/api/").removeprefix("/apis/")
    if gv in RESOURCES:
        resources = [{"name": plural, "singularName": kind.lower(), "namespaced": True, "kind": kind,
                      "verbs": ["create", "get", "list"]} for plural, kind in RESOURCES[gv]]  # fmt: skip
        return {"kind": "APIResourceList", "groupVersion": gv, "resources": resources}
    return None


class ApiServer:
    def __init__(self, cluster: LocalCluster, folder: Path) -> None:
        self.cluster = cluster
        handler = type("Handler", (_Handler,), {"cluster": cluster})
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)
        self.thread.start()
        self.kubeconfig = folder / "kubeconfig"
        url = f"http://127.0.0.1:{self.http.server_address[1]}"
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "local",
                  "clusters": [{"name": "local", "cluster": {"server": url}}],
                  "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
                  "users": [{"name": "local", "user": {"token": "local"}}]}  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        self.kubeconfig.write_text(json.dumps(config))

    def close(self) -> None:
        self.http.shutdown()
        self.cluster.close()


class _Handler(BaseHTTPRequestHandler):
    cluster: LocalCluster
    lock = threading.Lock()  # one request at a time reaches the stand-ins

    def log_message(self, *_: Any) -> None:
        pass

    def _answer(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _missing(self) -> None:
        self._answer(404, {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404})

    def do_GET(self) -> None:
        with self.lock:
            self._get()

    def do_POST(self) -> None:
        with self.lock:
            self._post()

    def do_PATCH(self) -> None:
        with self.lock:
            self._post(apply="apply-patch" in (self.headers.get("Content-Type") or ""))

    def _get(self) -> None:
        url = urlsplit(self.path)
        found = _discovery(url.path)
        if found is not None:
            return self._answer(200, found)
        match = _PATH.match(url.path)
        if match is None:
            return self._missing()
        kind = dict(RESOURCES[_gv(match)])[match["plural"]]
        if kind == "Pod":
            selector = parse_qs(url.query).get("labelSelector", [""])[0]
            return self._answer(
                200, {"kind": "PodList", "apiVersion": "v1", "items": self._pods(selector, match["ns"])}
            )
        try:
            return self._answer(200, self.cluster.get({"kind": kind}, match["name"], match["ns"]))
        except KeyError:
            return self._missing()

    def _post(self, apply: bool = False) -> None:
        match = _PATH.match(urlsplit(self.path).path)
        if match is None or bool(match["name"]) != apply:
            return self._missing()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        try:
            return self._answer(200 if apply else 201, self.cluster.create(body, match["ns"], apply))
        except FileExistsError:
            status = {"kind": "Status", "status": "Failure", "reason": "AlreadyExists", "code": 409}
            return self._answer(409, status)

    def _pods(self, selector: str, namespace: str) -> list[dict[str, Any]]:
        job = selector.removeprefix("training.kubeflow.org/job-name=")
        tfjob = self.cluster.objects.get(("TFJob", namespace, job))
        pods = []
        for r in getattr(tfjob, "replicas", []):
            code = None if r.proc is None else r.proc.poll()
            term = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"} if code is not None else None
            state = {"terminated": term} if term else {"running": {}}
            pods.append({"metadata": {"name": f"{job}-{r.rtype.lower()}-{r.index}"},
                         "status": {"containerStatuses": [{"name": "tensorflow", "state": state}]}})  # fmt: skip
        return pods


def _gv(match: re.Match[str]) -> str:
    return f"{match['group']}/{match['version']}" if match["group"] else match["version"]


class Launching:
    """What a KFP replay needs to run launched steps: `env` for its executors, `mount` for the YAML."""

    def __init__(self, cluster: LocalCluster, server: ApiServer) -> None:
        self.cluster = cluster
        self.volume = cluster.ctx.root / "volumes" / "dmlc-data"
        base = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_")}  # not in a pod
        self.env = base | {"KUBECONFIG": str(server.kubeconfig)}

    def mount(self, compiled: str) -> str:
        """The launcher tasks' and the launched pods' mount path of the data volume -> its folder here."""
        return compiled.replace('"/dmlc-data"', json.dumps(str(self.volume)))


@contextlib.contextmanager
def kubernetes(root: Path) -> Iterator[Launching]:
    cluster = LocalCluster(root / "cluster")
    server = ApiServer(cluster, root / "api")
    try:
        yield Launching(cluster, server)
    finally:
        server.close()
