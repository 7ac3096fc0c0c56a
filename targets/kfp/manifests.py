"""Launcher specs of the KFP target (stage 4, emit): distributed train / serve -> Kubernetes manifests.

Takes a planned `train` (allreduce / parameter_server) or `serve` step; gives the `launch` part of
its task spec: the TFJob or InferenceService objects from `dmlc.k8s` (the very builders the Argo
target uses, so both targets create byte-identical objects), what to wait for, and the retry
policy the launcher applies. The runtime SPEC and this run's PVC names are not known at compile
time: the manifests carry placeholders that `shim.py` fills in inside the launcher task. Launched pods
have neither KFP's launcher nor object-store credentials: they mount the run's data volume, onto
which the launcher task copies their input artifacts and from which it copies their outputs back.
"""

from __future__ import annotations

from typing import Any

from dmlc_targets.kfp.plan import StepPlan

from dmlc import k8s
from dmlc.ir.model import Pipeline, Serve, Train

SPEC_MARKER = "dmlc_kfp_spec"
SPEC_PLACEHOLDER = '{"' + SPEC_MARKER + '":true}'
NAMESPACE_PLACEHOLDER = "__DMLC_NAMESPACE__"  # the launcher pod's namespace, filled in at run time
DATA_VOLUME = "dmlc-data"  # the run's volume that launched workloads read their inputs from and write to
DATA_MOUNT = "/dmlc-data"  # where the launcher task and the launched pods mount it
DATA_CLAIM = "__DMLC_PVC_DATA__"


def claim_placeholder(volume: str) -> str:
    return f"__DMLC_PVC_{volume}__"


def _volumes(pipeline: Pipeline) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes = [{"name": DATA_VOLUME, "persistentVolumeClaim": {"claimName": DATA_CLAIM}}]
    mounts = [{"name": DATA_VOLUME, "mountPath": DATA_MOUNT}]
    for name, vol in pipeline.volumes.items():
        volume = k8s.k8s_name(name)
        volumes.append({"name": volume, "persistentVolumeClaim": {"claimName": claim_placeholder(name)}})
        mounts.append({"name": volume, "mountPath": vol.mount})
    return volumes, mounts


def _job_name(pipeline: Pipeline, step: str) -> str:
    # generateName: every attempt (and every run) creates a fresh object
    return k8s.k8s_name(f"{pipeline.pipeline}-{step}", 52) + "-"


def _retry(p: StepPlan) -> dict[str, Any] | None:
    """`retry`, plus a TFJob's `restarts` as further attempts of the launcher (each a new job resuming
    from its checkpoint, as the local launcher restarts the job)."""
    step = p.step
    restarts = step.restarts if isinstance(step, Train) else 0
    retry = step.retry
    if (retry is None or not retry.limit) and not restarts:
        return None
    if retry is None:
        return {"limit": restarts, "backoff": None, "factor": None, "on": "any"}
    return {"limit": retry.limit + restarts, "backoff": retry.backoff, "factor": retry.factor, "on": retry.on}


def launch_spec(pipeline: Pipeline, p: StepPlan) -> dict[str, Any]:
    """The objects carry no namespace: they land in the launcher pod's, where the run's data volume is
    (KFP runs every pod of a run in the namespace of the profile that started it)."""
    volumes, mounts = _volumes(pipeline)
    common = {"volumes": volumes, "volume_mounts": mounts, "namespace": None,
              "call": k8s.RuntimeCall(SPEC_PLACEHOLDER)}  # fmt: skip
    dns = {"dns_namespace": NAMESPACE_PLACEHOLDER}
    step = p.step
    if isinstance(step, Train):
        manifest = k8s.tfjob(
            pipeline,
            p.name,
            step,
            job_name=_job_name(pipeline, p.name),
            **common,
        )
        success, failure = k8s.tfjob_conditions(step)
        manifests = [manifest]
        wait = [{"object": 0, "success": success, "failure": failure}]
    else:
        assert isinstance(step, Serve)
        manifests = k8s.inference_service(
            pipeline, p.name, step, isvc_name=k8s.isvc_name(pipeline, p.name), **common, **dns
        )
        wait = [{"object": i, "success": _ready(m), "failure": ""} for i, m in enumerate(manifests)]
    claims = {name: claim_placeholder(name) for name in pipeline.volumes}
    return {
        "data": {"claim": DATA_CLAIM, "mount": DATA_MOUNT},
        "manifests": manifests,
        "wait": wait,
        "claims": claims,
        "retry": _retry(p),
        "marker": SPEC_MARKER,
        "namespace_marker": NAMESPACE_PLACEHOLDER,
    }


def _ready(manifest: dict[str, Any]) -> str:
    kind = manifest["kind"]
    if kind == "InferenceService":
        return "status.conditions.Ready == True"
    if kind == "Deployment":
        return "status.conditions.Available == True"
    return ""  # a Service is ready once created
