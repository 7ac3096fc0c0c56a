"""Kubernetes manifests shared by the cluster targets (stage 4, emit): plain dicts, no client libraries.

Takes the IR (a `Pipeline` and an *effective* step, see `dmlc.ir.effective`) plus the engine-specific
strings a target substitutes (runtime spec JSON with `{{...}}` placeholders, job names), and gives
plain `dict`s ready for YAML: the Kubeflow `TFJob` (kubeflow.org/v1) of a distributed `train` step and
the KServe `InferenceService` (serving.kserve.io/v1beta1) objects of a `serve` step. Argo puts them in
resource templates; KFP applies them from a launcher task. Both get byte-identical manifests.

Stable API (used by targets/argo and targets/kfp):

- `k8s_name(text, max_len=63) -> str`: a DNS-1123 label from any text (lower case, `_`/`.` -> `-`,
  other characters dropped, trimmed); `""` when nothing valid is left (callers report DML102).
- `is_k8s_name(text, max_len=63) -> bool`: `text` already is a valid DNS-1123 label.
- `RuntimeCall(spec_json, refs_json=None, env={}, env_text=str)`: how a container runs one step: the
  step spec as JSON text, where the engine hands over the values its references read (`--refs`, see
  `dmlc.semantics.handover`) and those environment variables, and how a user `env` value reads.
- `runtime_command(kind, call) -> list[str]`: argv running one step with `python -m dmlc.runtime`.
- `pod_labels(pipeline, step_name, step) -> dict`: `dmlc.io/pipeline`, `dmlc.io/step` + user labels.
- `resources(step) -> dict | None`: container `resources` (requests = limits) from `step.resources`.
- `env(step, extra=None) -> list[dict]`: container `env`: `env` values, then `secret_env` as `secretKeyRef`.
- `tfjob(pipeline, name, step, *, job_name, call, volumes=(), volume_mounts=(), namespace=None,
  annotations=None, queue_label=True) -> dict`: the TFJob of a `strategy = allreduce | parameter_server`
  train step. `job_name` ending in `-` becomes `metadata.generateName` (so a retried create gets a fresh
  job), otherwise `metadata.name`. Replicas: allreduce -> `Worker` x workers; parameter_server ->
  `Chief` x 1, `Worker` x workers, `PS` x ps. `runPolicy.backoffLimit` 0 and restartPolicy `Never`
  (`restarts` are the engine's attempts of the step), `activeDeadlineSeconds` from `timeout`, gang ->
  `schedulingPolicy` {minAvailable, queue, priorityClass} + `schedulerName: volcano` on the pods.
  `elastic` is refused by `tfjob_limits` (or ignored when a target's options accept that).
- `tfjob_limits(step) -> [(attribute, what, help)]`: what a TFJob cannot express exactly (DML100).
- `min_available(step) -> int`: the gang size of that TFJob.
- `tfjob_conditions(step) -> (success, failure)`: Argo-style resource conditions for that TFJob.
- `inference_service(pipeline, name, step, *, isvc_name, call, volumes=(), volume_mounts=(),
  namespace=None, port=8080) -> list[dict]`: the serving objects of a serve step. Without `shards`: one
  InferenceService. With `shards = N`: N InferenceServices `<isvc_name>-shard-<i>` (each gets `"shard": i`
  in its spec) + a router `Deployment` and `Service` named `isvc_name` running the runtime image
  (`"role": "router"` and `"shard_urls"` in its spec). The predictor is a custom container running the
  dmlc runtime server (TF-Serving REST), so events' rate limit / 429 behave as locally. Every server
  container has a `readinessProbe` on `/v2/health/ready` (200 once its model is loaded).

Every pod spec (TFJob replicas, predictors, the router) also gets the step's placement, service account
and the pipeline's image pull secrets (`dmlc.placement.pod_fields`); GPUs are asked for under
`resources.accelerator` (default `nvidia.com/gpu`).

`call.spec_json` is the step spec (`dmlc.semantics.spec`) as JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dmlc import placement
from dmlc.ir.model import Pipeline, Serve, Step, Train
from dmlc.units import format_cpu, format_duration, format_memory

TFJOB_API = "kubeflow.org/v1"
ISVC_API = "serving.kserve.io/v1beta1"
QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
GANG_SCHEDULER = "volcano"
READY_PATH = "/v2/health/ready"  # the runtime's readiness route (dmlc.runtime.rest.health_routes), KServe v2's
_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_METRICS = {"concurrency": "concurrency", "rps": "rps", "cpu": "cpu", "memory": "memory"}


def k8s_name(text: str, max_len: int = 63) -> str:
    """`Fashion_MNIST.v2` -> `fashion-mnist-v2`; `""` when no valid character is left."""
    name = re.sub(r"[_.\s]+", "-", text.lower())
    name = re.sub(r"[^a-z0-9-]", "", name)
    name = re.sub(r"-{2,}", "-", name).strip("-")
    return name[:max_len].rstrip("-")


def isvc_name(pipeline: Pipeline, step: str) -> str:
    """The InferenceService of a serve step: 45 characters leave room for a shard's `-<i>` and KServe's
    `-predictor` within a 63-character DNS label."""
    return k8s_name(f"{pipeline.pipeline}-{step}", 45)


def is_k8s_name(text: str, max_len: int = 63) -> bool:
    return len(text) <= max_len and bool(_LABEL_RE.match(text))


@dataclass(frozen=True)
class RuntimeCall:
    """How a container runs one step (see the module docstring)."""

    spec_json: str
    refs_json: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_text: Callable[[str], str] = str

    def with_spec(self, **extra: Any) -> RuntimeCall:
        """The same call with fields added to the spec (the shard of a shard server, the router's role)."""
        spec = json.loads(self.spec_json)
        spec.update(extra)
        return replace(self, spec_json=json.dumps(spec, sort_keys=True, separators=(",", ":")))


def runtime_command(kind: str, call: RuntimeCall) -> list[str]:
    argv = ["python", "-m", "dmlc.runtime", kind, "--spec-json", call.spec_json]
    return argv + ["--refs", call.refs_json] if call.refs_json else argv


def pod_labels(pipeline: Pipeline, step_name: str, step: Step | None = None) -> dict[str, str]:
    labels = dict(pipeline.labels)
    if step is not None:
        labels.update(step.labels)
    labels["dmlc.io/pipeline"] = pipeline.pipeline
    labels["dmlc.io/step"] = step_name
    return labels


def resources(step: Step) -> dict[str, Any] | None:
    """requests = limits, so a step gets exactly what it asked for (Guaranteed QoS when all are set)."""
    res = step.resources
    if res is None:
        return None
    amounts: dict[str, str] = {}
    if res.cpu is not None:
        amounts["cpu"] = format_cpu(res.cpu)
    if res.memory is not None:
        amounts["memory"] = format_memory(res.memory)
    if res.gpu:
        amounts[placement.accelerator(res)] = str(res.gpu)
    if not amounts:
        return None
    return {"requests": dict(amounts), "limits": dict(amounts)}


def env(step: Step, extra: dict[str, str] | None = None, text: Callable[[str], str] = str) -> list[dict[str, Any]]:
    """`env` values (through `text`: the target's placeholders for references), then `extra` (the
    contract variables, which win), then `secret_env` as `secretKeyRef`."""
    values = {k: text(v) for k, v in step.env.items()} | (extra or {})
    out = [{"name": k, "value": v} for k, v in values.items()]
    for key, ref in step.secret_env.items():
        secret, _, item = ref.partition("/")
        out.append({"name": key, "valueFrom": {"secretKeyRef": {"name": secret, "key": item}}})
    return out


def _container(step: Step, name: str, kind: str, call: RuntimeCall, mounts: Sequence[dict]) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": step.image, "command": runtime_command(kind, call)}
    variables = env(step, call.env, call.env_text)
    if variables:
        container["env"] = variables
    res = resources(step)
    if res:
        container["resources"] = res
    if mounts:
        container["volumeMounts"] = [dict(m) for m in mounts]
    return container


def _metadata(name: str, namespace: str | None, labels: dict[str, str], annotations: dict | None) -> dict:
    meta: dict[str, Any] = {"generateName": name} if name.endswith("-") else {"name": name}
    if namespace:
        meta["namespace"] = namespace
    meta["labels"] = labels
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def tfjob_roles(step: Train) -> list[tuple[str, int]]:
    """(replica type, count) in the order the TFJob lists them."""
    if step.strategy == "parameter_server":
        return [("Chief", 1), ("Worker", step.workers), ("PS", max(step.ps, 1))]
    return [("Worker", step.workers)]


def min_available(step: Train) -> int:
    """Pods that must run together: all of them."""
    return sum(n for _, n in tfjob_roles(step))


def _scheduling(pipeline: Pipeline, step: Train) -> dict[str, Any] | None:
    sched = pipeline.scheduling
    if not (step.gang or (sched is not None and sched.gang)):
        return None
    policy: dict[str, Any] = {"minAvailable": min_available(step)}
    if sched is not None and sched.queue:
        policy["queue"] = sched.queue
    if sched is not None and isinstance(sched.priority, str):
        policy["priorityClass"] = sched.priority
    return policy


def tfjob(
    pipeline: Pipeline,
    name: str,
    step: Train,
    *,
    job_name: str,
    call: RuntimeCall,
    volumes: Sequence[dict] = (),
    volume_mounts: Sequence[dict] = (),
    namespace: str | None = None,
    annotations: dict[str, str] | None = None,
    queue_label: bool = True,
) -> dict[str, Any]:
    """The TFJob of a distributed train step (the operator sets TF_CONFIG in every replica). A failed pod
    fails the job at once (restartPolicy Never, backoffLimit 0): `restarts` are attempts of the engine's
    step (a new job resuming from the checkpoint on the volume), as the local launcher restarts the job."""
    labels = pod_labels(pipeline, name, step)
    gang = _scheduling(pipeline, step)
    sched = pipeline.scheduling
    if queue_label and gang is None and sched is not None and sched.queue:
        labels[QUEUE_LABEL] = sched.queue  # Kueue admits the whole job; Volcano takes the queue when gang
    run_policy: dict[str, Any] = {"cleanPodPolicy": "Running", "backoffLimit": 0}
    if step.timeout:
        run_policy["activeDeadlineSeconds"] = int(step.timeout)
    if gang is not None:
        run_policy["schedulingPolicy"] = gang
    replicas = {}
    for role, count in tfjob_roles(step):
        container = _container(step, "tensorflow", "train", call, volume_mounts)
        pod: dict[str, Any] = {"containers": [container]}
        if volumes:
            pod["volumes"] = [dict(v) for v in volumes]
        if gang is not None:
            pod["schedulerName"] = GANG_SCHEDULER
        if sched is not None and isinstance(sched.priority, str):
            pod["priorityClassName"] = sched.priority
        pod.update(placement.pod_fields(pipeline, step))
        replicas[role] = {
            "replicas": count,
            "restartPolicy": "Never",
            "template": {"metadata": {"labels": pod_labels(pipeline, name, step)}, "spec": pod},
        }
    spec: dict[str, Any] = {"runPolicy": run_policy, "tfReplicaSpecs": replicas}
    return {
        "apiVersion": TFJOB_API,
        "kind": "TFJob",
        "metadata": _metadata(job_name, namespace, labels, annotations),
        "spec": spec,
    }


def tfjob_conditions(step: Train) -> tuple[str, str]:
    """Resource conditions on the TFJob: Kubernetes label selectors over its JSON, every success requirement
    must hold, any one failure requirement fails (argo-workflows v4 workflow/executor/resource.go
    matchConditions). The training operator ends a job when its chief, else worker 0, completes, sets
    `completionTime`, and may delete the other workers (cleanPodPolicy), so no worker count is waited for
    (training-operator pkg/controller.v1/tensorflow/tfjob_controller.go UpdateJobStatus). Pods run with
    restartPolicy Never, so a failed one stays Failed and is seen."""
    decider = "Chief" if step.strategy == "parameter_server" else "Worker"
    failure = ", ".join(f"status.replicaStatuses.{role}.failed > 0" for role, _ in tfjob_roles(step))
    return f"status.completionTime, status.replicaStatuses.{decider}.succeeded", failure


def tfjob_limits(step: Train) -> list[tuple[str, str, str]]:
    """(attribute, what, help) of what a TFJob cannot express exactly (each cluster target: DML100)."""
    if step.elastic is not None:
        help_ = (
            "drop `elastic` and keep `restarts` (the job restarts with all its workers from the checkpoint), "
            'or accept exactly that with `target argo|kfp { elastic = "ignore" }`'
        )
        what = (
            "an elastic TFJob: with enableDynamicWorker the training operator gives each allreduce worker a "
            "TF_CONFIG of its own and a parameter-server chief an empty cluster, so the job cannot run"
        )
        return [("elastic", what, help_)]
    return []


def readiness_probe(port: int) -> dict[str, Any]:
    """Ready = the model is loaded (the router: every shard is ready): the runtime answers
    `/v2/health/ready` 200 only then, 503 before. Without it Knative's default TCP probe would call a
    server ready as soon as its supervisor holds the port, and clients would get 503s while it loads."""
    return {"httpGet": {"path": READY_PATH, "port": port}, "periodSeconds": 2}


def _predictor(
    pipeline: Pipeline, step: Serve, call: RuntimeCall, volumes: Sequence[dict], mounts: Sequence[dict], port: int
) -> dict:
    container = _container(step, "kserve-container", "serve", call, mounts)
    container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    container["readinessProbe"] = readiness_probe(port)
    predictor: dict[str, Any] = {}
    predictor.update(_scaling(step))
    predictor["containers"] = [container]
    if volumes:
        predictor["volumes"] = [dict(v) for v in volumes]
    predictor.update(placement.pod_fields(pipeline, step))  # KServe's PredictorSpec inlines a PodSpec
    return predictor


def _scaling(step: Serve) -> dict[str, Any]:
    """replicas / autoscale / events -> KServe scaling fields."""
    scale: dict[str, Any] = {"minReplicas": step.replicas}
    auto = step.autoscale
    if auto is None and step.events is None:
        scale["maxReplicas"] = step.replicas
    if auto is not None:
        scale["minReplicas"] = step.replicas if auto.min is None else auto.min
        if auto.max is not None:
            scale["maxReplicas"] = auto.max
        scale["scaleMetric"] = _METRICS[auto.metric]
        scale["scaleTarget"] = int(auto.target)
    if step.events is not None:
        scale["minReplicas"] = 0
        scale["containerConcurrency"] = step.events.max_concurrency
    return scale


def _isvc_annotations(step: Serve) -> dict[str, str] | None:
    if step.events is None:
        return None
    retention = format_duration(step.events.idle_timeout)
    return {"autoscaling.knative.dev/scale-to-zero-pod-retention-period": retention}


def inference_service(
    pipeline: Pipeline,
    name: str,
    step: Serve,
    *,
    isvc_name: str,
    call: RuntimeCall,
    volumes: Sequence[dict] = (),
    volume_mounts: Sequence[dict] = (),
    namespace: str | None = None,
    port: int = 8080,
    dns_namespace: str = "default",
) -> list[dict[str, Any]]:
    """One InferenceService, or N shard InferenceServices + router Deployment + Service. The router
    reaches the shards at `<shard>-predictor.<namespace>.svc`: `namespace`, else `dns_namespace` (the
    engine's placeholder for the namespace the objects land in)."""
    labels = pod_labels(pipeline, name, step)
    annotations = _isvc_annotations(step)

    def isvc(obj_name: str, shard_call: RuntimeCall) -> dict[str, Any]:
        predictor = _predictor(pipeline, step, shard_call, volumes, volume_mounts, port)
        meta = _metadata(obj_name, namespace, dict(labels), annotations)
        return {"apiVersion": ISVC_API, "kind": "InferenceService", "metadata": meta, "spec": {"predictor": predictor}}

    if not step.shards:
        return [isvc(isvc_name, call)]
    names = [f"{isvc_name}-shard-{i}" for i in range(step.shards)]
    shards = [isvc(n, call.with_spec(shard=i)) for i, n in enumerate(names)]
    urls = [f"http://{n}-predictor.{namespace or dns_namespace}.svc.cluster.local" for n in names]
    router_call = call.with_spec(role="router", shard_urls=urls)
    routing = router(pipeline, name, step, router_name=isvc_name, call=router_call, namespace=namespace)
    return [*shards, *routing]


def router(
    pipeline: Pipeline,
    name: str,
    step: Serve,
    *,
    router_name: str,
    call: RuntimeCall,
    namespace: str | None,
    port: int = 8080,
) -> list[dict[str, Any]]:
    """The scatter-gather router of a sharded service: a Deployment of the runtime image + its Service."""
    labels = pod_labels(pipeline, name, step)
    selector = {"dmlc.io/pipeline": pipeline.pipeline, "dmlc.io/step": name, "dmlc.io/role": "router"}
    container = _container(step, "router", "serve", call, ())
    container["ports"] = [{"containerPort": port, "protocol": "TCP"}]
    container["readinessProbe"] = readiness_probe(port)
    pod_spec = {"containers": [container], **placement.pod_fields(pipeline, step)}
    pod = {"metadata": {"labels": {**labels, **selector}}, "spec": pod_spec}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(router_name, namespace, dict(labels), None),
        "spec": {"replicas": step.replicas, "selector": {"matchLabels": selector}, "template": pod},
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(router_name, namespace, dict(labels), None),
        "spec": {"selector": selector, "ports": [{"name": "http", "port": 80, "targetPort": port}]},
    }
    return [deployment, service]
