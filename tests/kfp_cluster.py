"""A local stand-in for the Kubernetes API that the KFP launcher (`targets/kfp/apply.py`) talks to.

Takes the objects the launcher creates (TFJob, InferenceService, and a sharded server's router
Deployment and Service) and runs them the way the Argo replay does (`tests/argo_replay/tfjob.py`:
training-operator v1.9.0's TFJob status rules; `tests/argo_replay/kserve.py`: one server process per
InferenceService), answering `create`, `get` and `pod_reasons` like `apply.Cluster`. PVC volumes are
folders under `<root>/volumes/<volume name>`, as in the Argo replay, so a launched pod sees the run's
data volume where the launcher task sees it when the harness mounts it at that folder. Each object
keeps the namespace the launcher asked for, so a test can check where it landed.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from tests.argo_replay.kserve import InferenceService
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.procs import Procs
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

    def create(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        obj = json.loads(json.dumps(manifest))
        meta = obj["metadata"]
        meta["name"] = meta.get("name") or meta["generateName"] + uuid.uuid4().hex[:5]
        meta["namespace"] = namespace
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
        return [("Error", 1) for r in tfjob.replicas if r.state == "Failed"]

    def close(self) -> None:
        for standin in self.objects.values():
            standin.stop()
        self.ctx.procs.stop_all()
