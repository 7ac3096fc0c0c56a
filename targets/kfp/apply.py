"""The KFP launcher (stage 5, run time, inside a KFP task): apply Kubernetes objects, wait, hand back outputs.

What the component shim runs for a distributed `train` (a TFJob) or a `serve` step (InferenceService(s),
plus a router Deployment and Service when sharded). Takes the launch description (`manifests.py`: the
objects built by `dmlc.k8s` with the step spec already filled in, the conditions to wait for, in the
Argo-style `status.a.b == value` form the Argo target puts on its resource templates, and the retry
policy); gives the step's outputs: a TFJob's outputs copied from the job's output location, a
service's `endpoint`. The `kubernetes` client is imported only when a step runs, so this module
imports without a cluster.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dmlc.runtime.step_io import UserError, write_param
from dmlc.semantics.retry import by_codes, covers, marks

POLL_S = 5.0
TRANSIENT_REASONS = ("OOMKilled", "Evicted", "DeadlineExceeded", "Preempted")
_EXISTS = re.compile(r"^!?[\w.]+$")
_CONDITION = re.compile(r"^\s*([\w.]+)\s*(==|!=|>=|<=|>|<)\s*(\S+)\s*$")
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">": lambda a, b: a > b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
}


# --- conditions ---------------------------------------------------------------------------------


def _field(obj: dict[str, Any], path: str) -> Any:
    """`status.replicaStatuses.Worker.succeeded`; under `conditions`, a name picks that condition's status."""
    value: Any = obj
    for part in path.split("."):
        if isinstance(value, list):  # status.conditions.Ready -> the status of condition type Ready
            value = next((c.get("status") for c in value if isinstance(c, dict) and c.get("type") == part), None)
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
    return value


def _literal(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def holds(obj: dict[str, Any], condition: str, every: bool = True) -> bool:
    """Whether an Argo-style resource condition holds for `obj` (empty: never): comma-separated
    requirements `path op value`, `path` (it exists) or `!path` (it does not); all of them must hold
    for a success condition (`every`), any one for a failure condition, as Argo's executor reads them."""
    requirements = [r.strip() for r in condition.split(",") if r.strip()]
    if not requirements:
        return False
    results = (_requirement(obj, r) for r in requirements)
    return all(results) if every else any(results)


def _requirement(obj: dict[str, Any], requirement: str) -> bool:
    if _EXISTS.match(requirement):
        present = _field(obj, requirement.lstrip("!")) is not None
        return present != requirement.startswith("!")
    match = _CONDITION.match(requirement)
    if match is None:
        raise UserError(f"cannot read the condition `{requirement}`")
    path, op, expected = match.groups()
    actual = _field(obj, path)
    if actual is None:
        return False
    expected_value = _literal(expected)
    if isinstance(actual, bool) or isinstance(expected_value, str):
        actual = str(actual)
    try:
        return _OPS[op](actual, expected_value)
    except TypeError:
        return False


# --- the cluster --------------------------------------------------------------------------------


class Cluster:
    """The few calls the launcher makes, over the kubernetes dynamic client (in-cluster or kubeconfig)."""

    def __init__(self) -> None:
        from kubernetes import client, config, dynamic

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        self.api = dynamic.DynamicClient(client.ApiClient())
        self.core = client.CoreV1Api()

    def _resource(self, manifest: dict[str, Any]) -> Any:
        return self.api.resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])

    def create(self, manifest: dict[str, Any], namespace: str) -> dict[str, Any]:
        """A fresh object (`generateName`: a TFJob per attempt), or one with a fixed name (a service)
        created or replaced by server-side apply, as Argo's `action: apply`: a re-run updates it."""
        resource = self._resource(manifest)
        if manifest["metadata"].get("name"):
            applied = resource.server_side_apply(body=manifest, namespace=namespace, field_manager="dmlc",
                                                 force_conflicts=True)  # fmt: skip
            return applied.to_dict()
        return resource.create(body=manifest, namespace=namespace).to_dict()

    def get(self, manifest: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
        return self._resource(manifest).get(name=name, namespace=namespace).to_dict()

    def pod_reasons(self, job: str, namespace: str) -> list[tuple[str, int]]:
        """(reason, exit code) of every terminated container of a TFJob's pods."""
        pods = self.core.list_namespaced_pod(namespace, label_selector=f"training.kubeflow.org/job-name={job}")
        found = []
        for pod in pods.items:
            if pod.status.reason:
                found.append((pod.status.reason, -1))
            for status in pod.status.container_statuses or []:
                term = status.state.terminated or (status.last_state and status.last_state.terminated)
                if term is not None:
                    found.append((term.reason or "", term.exit_code))
        return found


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


def current_namespace() -> str:
    """The namespace of this pod, from its service-account token folder: where the launched objects go
    (the run's data volume is there; on multi-user KFP, the profile's namespace)."""
    path = SERVICE_ACCOUNT / "namespace"
    return path.read_text().strip() if path.exists() else "default"


# --- one attempt --------------------------------------------------------------------------------


def apply_and_wait(cluster: Any, launch: dict[str, Any], sleep: Callable[[float], None] = time.sleep) -> list[dict]:
    """Create every object, then poll until each success condition holds; raises on a failure condition."""
    created = []
    for manifest in launch["manifests"]:
        namespace = manifest["metadata"].get("namespace") or current_namespace()
        obj = cluster.create(manifest, namespace)
        created.append((manifest, obj["metadata"]["name"], namespace))
        print(f"launch: created {manifest['kind']} {namespace}/{obj['metadata']['name']}", flush=True)
    pending = {w["object"]: w for w in launch["wait"] if w.get("success")}
    latest: dict[int, dict] = {}
    while pending:
        for index, wait in sorted(pending.items()):
            manifest, name, namespace = created[index]
            latest[index] = obj = cluster.get(manifest, name, namespace)
            if holds(obj, wait.get("failure", ""), every=False):
                raise JobFailed(manifest["kind"], name, namespace)
            if holds(obj, wait["success"]):
                print(f"launch: {manifest['kind']} {name} succeeded", flush=True)
                del pending[index]
        if pending:
            sleep(POLL_S)
    return [latest.get(i) or cluster.get(m, n, ns) for i, (m, n, ns) in enumerate(created)]


class JobFailed(Exception):
    def __init__(self, kind: str, name: str, namespace: str) -> None:
        super().__init__(f"{kind} {namespace}/{name} failed")
        self.kind, self.name, self.namespace = kind, name, namespace


def retryable(cluster: Any, failure: JobFailed, on: str | list[int]) -> bool:
    """DESIGN §2.3: any = every failure; failure = a non-zero exit; transient = killed, OOM, timeout, exit 75;
    a list: a pod's container exited with one of these codes, the job not stopped at its deadline
    (dmlc.semantics.retry: a timeout names no exit code)."""
    if on == "any":
        return True
    reasons = cluster.pod_reasons(failure.name, failure.namespace) if failure.kind == "TFJob" else []
    if by_codes(on):
        timed_out = any(reason == "DeadlineExceeded" for reason, _ in reasons)
        return any(covers(on, marks(code if code >= 0 else None, None, timed_out)) for _, code in reasons)
    if on == "failure":
        return any(code > 0 for _, code in reasons)
    return any(reason in TRANSIENT_REASONS or code in (75, 137, 143) for reason, code in reasons)


def _backoff(retry: dict[str, Any], attempt: int) -> float:
    wait = float(retry.get("backoff") or 0)
    return wait * float(retry.get("factor") or 1) ** attempt


def launch_with_retries(cluster: Any, launch: dict[str, Any], sleep: Callable[[float], None] = time.sleep) -> list:
    retry = launch.get("retry") or {"limit": 0}
    attempt = 0
    while True:
        try:
            return apply_and_wait(cluster, launch, sleep)
        except JobFailed as failure:
            if attempt >= retry["limit"] or not retryable(cluster, failure, retry.get("on", "any")):
                raise UserError(str(failure)) from None
            print(f"launch: {failure}; retry {attempt + 1} of {retry['limit']}", flush=True)
            sleep(_backoff(retry, attempt))
            attempt += 1


# --- outputs ------------------------------------------------------------------------------------


def fetch(source: str, target: Path) -> None:
    """Copy a job output from the run's data volume (mounted here too) to `target`."""
    local = Path(source)
    if not local.exists():
        raise UserError(f"the job did not write its output {local.name}")
    if local.is_dir():
        shutil.copytree(local, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(local, target)


def endpoint(objects: list[dict[str, Any]]) -> str:
    """The URL clients call: a router Service's cluster DNS name, else the InferenceService's status.url."""
    for obj in objects:
        if obj.get("kind") == "Service":
            meta = obj["metadata"]
            return f"http://{meta['name']}.{meta.get('namespace') or 'default'}.svc.cluster.local"
    return str(_field(objects[0], "status.url") or "")


def run(launch: dict[str, Any], kind: str, outputs_dir: Path, cluster: Any = None) -> None:
    """Launch the objects of a `kind` step (train | serve) and write its outputs into `outputs_dir`."""
    if not launch.get("manifests"):
        raise UserError("the launch description has no manifests")
    objects = launch_with_retries(cluster or Cluster(), launch)
    outputs_dir.mkdir(parents=True, exist_ok=True)
    if kind == "serve":
        write_param(outputs_dir, "endpoint", endpoint(objects))
        return
    for name in launch.get("outputs") or {}:
        fetch(f"{launch['outputs_dir'].rstrip('/')}/{name}", outputs_dir / name)
