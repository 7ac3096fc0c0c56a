"""A TFJob (kubeflow.org/v1) run as local processes, with the status the training operator reports.

Kubeflow training-operator v1.9.0:
- `pkg/controller.v1/tensorflow/tensorflow.go` genTFConfigJSONStr / genClusterSpec: TF_CONFIG is
  `{"cluster": {<lowercase replica type>: [host:port per index]}, "task": {"type", "index"},
  "environment": "cloud"}`, or with `enableDynamicWorker` the sparse form in which a worker lists
  only itself (`{"worker": {"<i>": host:port}, "ps": [...]}`, no environment). It is set on the
  container named `tensorflow`, only when the job has more than one replica (`util.go` isDistributed).
  Host names are 127.0.0.1 with a free port per replica.
- `tfjob_controller.go` UpdateJobStatus: with a Chief/Master the job succeeds when it has; otherwise
  when every worker succeeded or worker 0 completed (success policy not AllWorkers); any failed pod
  fails the job ("TFJob ns/name has failed because N Worker replica(s) failed."), except workers under
  enableDynamicWorker. `pkg/controller.v1/common/job.go` ReconcileJobs: on success every still active
  replica is counted succeeded; `pkg/core/job.go` PastBackoffLimit: container restarts of running pods
  whose restartPolicy is OnFailure/Always/ExitCode, summed, reaching `runPolicy.backoffLimit` (or any
  restart when it is 0) fail the job ("Job <name> has failed because it has reached the specified
  backoff limit"); `runPolicy.activeDeadlineSeconds` fails it too.
- Replica status fields (`active`, `succeeded`, `failed`) are omitted when zero (omitempty);
  `completionTime` is set when the job succeeds or fails.
A restart happens at once (no kubelet back-off). The first container of each replica is run; when
the job is finished the remaining processes are stopped whatever `cleanPodPolicy` says.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.argo_replay import gojson, pod
from tests.argo_replay.model import Ctx, Node
from tests.argo_replay.procs import exit_code, free_port

ORDER = ["Chief", "Evaluator", "Master", "PS", "Worker"]


class Replica:
    def __init__(self, rtype: str, index: int, spec: dict[str, Any]) -> None:
        self.rtype, self.index, self.spec = rtype, index, spec
        self.policy = spec.get("restartPolicy") or "Never"
        self.proc: Any = None
        self.state, self.restarts, self.port = "Pending", 0, free_port()
        self.argv: list[str] = []
        self.env: dict[str, str] = {}
        self.cwd = Path(".")
        self.log = Path(".")


class TFJob:
    def __init__(self, ctx: Ctx, node: Node, obj: dict[str, Any]) -> None:
        self.ctx, self.node, self.obj = ctx, node, obj
        spec = obj.get("spec") or {}
        self.specs = spec.get("tfReplicaSpecs") or {}
        self.run_policy = spec.get("runPolicy") or {}
        self.dynamic = bool(spec.get("enableDynamicWorker"))
        self.success_policy = spec.get("successPolicy") or ""
        types = sorted(self.specs, key=lambda t: (ORDER.index(t) if t in ORDER else len(ORDER), t))
        self.replicas = [
            Replica(t, i, self.specs[t]) for t in types for i in range(int(self.specs[t].get("replicas", 1)))
        ]
        self.conditions: list[dict[str, str]] = [{"type": "Created", "status": "True", "reason": "TFJobCreated"}]
        self.started, self.finished = time.time(), False

    def tf_config(self, r: Replica) -> str:
        cluster = {t.lower(): [f"127.0.0.1:{x.port}" for x in self.replicas if x.rtype == t] for t in self.specs}
        task = {"type": r.rtype.lower(), "index": r.index}
        if not self.dynamic:
            return gojson.marshal_ordered(
                {"cluster": dict(sorted(cluster.items())), "task": task, "environment": "cloud"}
            )
        sparse: dict[str, Any] = {"worker": {}, "ps": []}
        if r.rtype == "PS":
            sparse["ps"] = [cluster["ps"][r.index]]
        elif r.rtype == "Worker":
            sparse = {"worker": {str(r.index): cluster["worker"][r.index]}, "ps": cluster.get("ps") or None}
        return gojson.marshal_ordered({"cluster": sparse, "task": task})

    def start(self) -> None:
        distributed = len(self.replicas) != 1
        name = self.obj["metadata"]["name"]
        for r in self.replicas:
            template = r.spec.get("template") or {}
            pspec = template.get("spec") or {}
            containers = pspec.get("containers") or []
            if not containers or not containers[0].get("command"):
                raise pod.PodError(
                    f"TFJob {name} {r.rtype} {r.index}: the first container has no command (not replayed)"
                )
            c = containers[0]
            meta = {
                "name": f"{name}-{r.rtype.lower()}-{r.index}",
                "namespace": self.ctx.namespace,
                "labels": dict((template.get("metadata") or {}).get("labels") or {}),
                "annotations": dict((template.get("metadata") or {}).get("annotations") or {}),
            }
            pod_dir = self.ctx.root / "pods" / meta["name"]
            volumes = {v["name"]: v for v in pspec.get("volumes") or []}
            mapped = pod.mapper(pod.mounts(self.ctx, pod_dir, c, volumes, meta, self.node.notes, "containers[0]"))
            r.argv = [mapped(gojson.any_string(a)) for a in c["command"] + (c.get("args") or [])]
            r.env = pod.process_env(self.ctx, c, mapped, self.node.notes, meta["name"])
            if distributed and c.get("name") == "tensorflow":
                r.env["TF_CONFIG"] = self.tf_config(r)
            r.cwd = Path(mapped(c["workingDir"])) if c.get("workingDir") else pod_dir
            r.cwd.mkdir(parents=True, exist_ok=True)
            r.log = pod_dir / "tensorflow.log"
        for r in self.replicas:
            self._launch(r)
        self.node.log = str(self.replicas[0].log) if self.replicas else None

    def _launch(self, r: Replica) -> None:
        r.proc, r.state = self.ctx.procs.start(r.argv, r.env, r.cwd, r.log), "Running"

    def poll(self) -> dict[str, Any]:
        if not self.finished:
            for r in self.replicas:
                code = exit_code(r.proc) if r.state == "Running" else None
                if code is None:
                    continue
                retry = {"Always": True, "OnFailure": code != 0, "ExitCode": code >= 128}.get(r.policy, False)
                if retry:
                    r.restarts += 1
                    self._launch(r)
                else:
                    r.state = "Succeeded" if code == 0 else "Failed"
            self._assess()
        return self.status_object()

    def _counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for t in self.specs:
            rs = [r for r in self.replicas if r.rtype == t]
            out[t] = {
                k: sum(r.state == s for r in rs)
                for k, s in (("active", "Running"), ("succeeded", "Succeeded"), ("failed", "Failed"))
            }
        return out

    def _condition(self, type_: str, reason: str, message: str) -> None:
        for c in self.conditions:
            if c["type"] == "Running" and type_ in ("Succeeded", "Failed"):
                c["status"] = "False"
        self.conditions.append({"type": type_, "status": "True", "reason": reason, "message": message})

    def _assess(self) -> None:
        name, ns = self.obj["metadata"]["name"], self.ctx.namespace
        counts = self._counts()
        limit = self.run_policy.get("backoffLimit")
        restarts = sum(
            r.restarts
            for r in self.replicas
            if r.state == "Running" and r.policy in ("OnFailure", "Always", "ExitCode")
        )
        deadline = self.run_policy.get("activeDeadlineSeconds")
        if limit is not None and (restarts > 0 if int(limit) == 0 else restarts >= int(limit)):
            return self._end(
                "Failed", "TFJobFailed", f"Job {name} has failed because it has reached the specified backoff limit"
            )
        if deadline is not None and time.time() - self.started >= float(deadline):
            return self._end(
                "Failed", "TFJobFailed", f"Job {name} has failed because it was active longer than specified deadline"
            )
        if not any(c["type"] == "Running" for c in self.conditions) and any(v["active"] for v in counts.values()):
            self.conditions.append(
                {
                    "type": "Running",
                    "status": "True",
                    "reason": "TFJobRunning",
                    "message": f"TFJob {ns}/{name} is running.",
                }
            )
        chief = [t for t in ("Chief", "Master") if t in self.specs]
        done = f"TFJob {ns}/{name} successfully completed."
        for t in [t for t in ORDER if t in self.specs]:
            expected = int(self.specs[t].get("replicas", 1)) - counts[t]["succeeded"]
            worker0 = any(r.rtype == "Worker" and r.index == 0 and r.state == "Succeeded" for r in self.replicas)
            if chief and t in chief and expected == 0:
                return self._end("Succeeded", "TFJobSucceeded", done)
            if not chief and t == "Worker" and (expected == 0 or (worker0 and self.success_policy != "AllWorkers")):
                return self._end("Succeeded", "TFJobSucceeded", done)
            if counts[t]["failed"] > 0 and not (self.dynamic and t == "Worker"):
                n = counts[t]["failed"]
                return self._end(
                    "Failed", "TFJobFailed", f"TFJob {ns}/{name} has failed because {n} {t} replica(s) failed."
                )
        return None

    def _end(self, phase: str, reason: str, message: str) -> None:
        self._condition(phase, reason, message)
        if phase == "Succeeded":
            for r in self.replicas:
                r.state = "Succeeded" if r.state == "Running" else r.state
        self.final_counts = self._counts()
        self.completed = time.time()
        self.stop()
        self.finished = True

    def stop(self) -> None:
        for r in self.replicas:
            if r.proc is not None:
                self.ctx.procs.stop(r.proc)

    def status_object(self) -> dict[str, Any]:
        counts = getattr(self, "final_counts", None) or self._counts()
        statuses = {t: {k: v for k, v in c.items() if v} for t, c in counts.items()}
        obj = json.loads(json.dumps(self.obj))
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        obj["status"] = {
            "conditions": self.conditions,
            "replicaStatuses": statuses,
            "startTime": time.strftime(stamp, time.gmtime(self.started)),
        }
        if getattr(self, "completed", None):
            obj["status"]["completionTime"] = time.strftime(stamp, time.gmtime(self.completed))
        return obj
