"""A KServe InferenceService (serving.kserve.io/v1beta1) run as one local server process.

The predictor's first container runs with `PORT` set to a free port (the dmlc runtime serves in the
foreground on `$PORT`); it counts as ready when the container's `readinessProbe.httpGet.path` answers
200-399, or, without a probe, when its port accepts a connection (Knative's default TCP probe). Then
the synthesized status is what KServe reports for a ready custom predictor: `url` and
`address.url` = `http://127.0.0.1:<port>`, conditions PredictorReady/IngressReady/Ready True,
`modelStatus.states.activeModelState` = `Loaded`. A container that exits is reported not ready
(`activeModelState` empty, `targetModelState` FailedToLoad): with only a success condition Argo would
wait forever. Applying the same name again replaces the running server, as a new revision would. The
server keeps running until the replay ends. A predictor without `containers` (a model format served
by a KServe runtime) is not replayed. The status fields and values are those of the v1beta1 CRD
schema (`../shared/schemas/kserve-inferenceservice-v1beta1.schema.json`: `modelStatus.states`,
`transitionStatus` enums); KServe's controller source was not replayed rule by rule.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tests.argo_replay import gojson, pod
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.procs import exit_code, free_port


class InferenceService:
    def __init__(self, ctx: Ctx, node: Node, obj: dict[str, Any]) -> None:
        self.ctx, self.node, self.obj = ctx, node, obj
        self.name = obj["metadata"]["name"]
        self.port, self.proc, self.finished, self.ready = free_port(), None, False, False

    def start(self) -> None:
        predictor = (self.obj.get("spec") or {}).get("predictor") or {}
        containers = predictor.get("containers") or []
        if not containers or not containers[0].get("command"):
            raise pod.PodError(
                f"InferenceService {self.name}: only a predictor with a custom container command is replayed"
            )
        c = containers[0]
        meta = {"name": f"{self.name}-predictor", "namespace": self.ctx.namespace, "labels": {}, "annotations": {}}
        pod_dir = self.ctx.root / "pods" / meta["name"]
        volumes = {v["name"]: v for v in predictor.get("volumes") or []}
        mapped = pod.mapper(pod.mounts(self.ctx, pod_dir, c, volumes, meta, self.node.notes, "containers[0]"))
        argv = [mapped(gojson.any_string(a)) for a in c["command"] + (c.get("args") or [])]
        env = {**pod.process_env(self.ctx, c, mapped, self.node.notes, meta["name"]), "PORT": str(self.port)}
        cwd = Path(mapped(c["workingDir"])) if c.get("workingDir") else pod_dir
        cwd.mkdir(parents=True, exist_ok=True)
        self.probe = ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path")  # None: a TCP probe
        old = self.ctx.services.pop(self.name, None)
        if old is not None:
            self.ctx.procs.stop(old.proc)
        self.proc = self.ctx.procs.start(argv, env, cwd, pod_dir / "kserve-container.log")
        self.ctx.services[self.name] = self
        self.node.log = str(pod_dir / "kserve-container.log")

    def _answers(self) -> bool:
        """Kubernetes' probe rules (kubernetes v1.31 pkg/probe/http/http.go: success iff
        200 <= status < 400; pkg/probe/tcp/tcp.go: success iff the port accepts a connection)."""
        if self.probe is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.probe}", timeout=1) as reply:
                return 200 <= reply.status < 400
        except (OSError, ValueError):  # urllib's HTTPError (a status of 400 or more) is an OSError
            return False

    def poll(self) -> dict[str, Any]:
        if not self.finished:
            code = exit_code(self.proc)
            if code is not None:
                self.finished, self.exit = True, code
                self.node.notes.append(f"predictor container exited with code {code}")
            elif self._answers():
                self.finished = self.ready = True
            else:
                time.sleep(0.2)
        return self.status_object()

    def stop(self) -> None:
        if self.proc is not None:
            self.ctx.procs.stop(self.proc)

    def status_object(self) -> dict[str, Any]:
        obj = json.loads(json.dumps(self.obj))
        url = f"http://127.0.0.1:{self.port}"
        if self.ready:
            conds = [{"type": t, "status": "True"} for t in ("IngressReady", "PredictorReady", "Ready")]
            obj["status"] = {
                "url": url,
                "address": {"url": url},
                "conditions": conds,
                "modelStatus": {
                    "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
                    "transitionStatus": "UpToDate",
                },
            }
        elif self.finished:
            conds = [{"type": t, "status": "False", "reason": "RevisionFailed"} for t in ("PredictorReady", "Ready")]
            obj["status"] = {
                "conditions": conds,
                "modelStatus": {
                    "states": {"targetModelState": "FailedToLoad"},
                    "transitionStatus": "BlockedByFailedLoad",
                },
            }
        else:
            obj["status"] = {"conditions": [{"type": "Ready", "status": "Unknown"}]}
        return obj
