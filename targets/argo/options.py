"""Argo target options (stage 4 input): the `target argo { ... }` block, validated by the driver (DML101).

Knobs that only make sense on Argo and stay out of the core IR: service account, pod GC, artifact
repository, memoization ConfigMap, how volumes are claimed, and a few workflow-level settings.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from dmlc.ir.types import Duration, Memory
from dmlc.targets import TargetOptions


class ArtifactRepository(BaseModel):
    """An artifact repository configured in a ConfigMap (`spec.artifactRepositoryRef`)."""

    model_config = ConfigDict(extra="forbid")
    config_map: str = "artifact-repositories"
    """ConfigMap holding the repository configurations."""
    key: str
    """Key of the repository in that ConfigMap."""


class ArgoOptions(TargetOptions):
    service_account: str | None = None
    """Service account of the workflow pods (it needs the RBAC from `--with-setup`)."""
    pod_gc: Literal["OnPodCompletion", "OnPodSuccess", "OnWorkflowCompletion", "OnWorkflowSuccess", "Never"] = (
        "OnPodSuccess"
    )
    """When finished pods are deleted (the book uses OnPodSuccess: failed pods stay for debugging)."""
    artifact_repository: ArtifactRepository | None = None
    """Artifact repository for logs and Argo-managed artifacts."""
    memo_config_map: str | None = None
    """ConfigMap of the memoization cache (default: <pipeline>-memo)."""
    volume_claims: Literal["existing", "template"] = "existing"
    """existing: PVCs named <pipeline>-<volume> (made by --with-setup) that outlive a run;
    template: volumeClaimTemplates, deleted with the workflow."""
    work_volume_size: Memory = 10 * 2**30
    """Size of the artifact volume added when the pipeline declares none."""
    generate_name: StrictBool = True  # strict: pydantic's lax mode would take "yes" / 1, the JSON Schema not
    """metadata.generateName (a fresh name per submission) instead of metadata.name."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Image pull policy of every step container."""
    ttl_after_finished: Duration | None = Field(None, gt=0)
    """Delete the finished workflow after this long."""
    controller_service_account: str = "argo/argo"
    """NAMESPACE/NAME of the workflow controller's service account, which writes memoization ConfigMaps
    (`--with-setup` binds it to the pipeline's Role)."""
    version: Literal["3.5", "3.6", "3.7", "4"] = "4"
    """The Argo Workflows release the output is for: 3.6 and later (the default) take a CronWorkflow's
    `schedules` list, 3.5 its single `schedule`. Older releases lack retry expressions' `lastRetry.message`."""
    elastic: Literal["error", "ignore"] = "error"
    """A TFJob cannot shrink to the workers that are left (`elastic`): "error" refuses it (DML100);
    "ignore" runs it with `workers` and restarts the whole job from its checkpoint instead."""
    prometheus: StrictBool = False
    """Export the metrics of train / evaluate / select steps as template-level Prometheus gauges
    (`dmlc_<metric>`, labels pipeline, step and, per instance, node) from the controller's metrics endpoint."""
    object_retry: Literal["error", "any"] = "error"
    """`retry.on` = "failure" / "transient" on a TFJob or InferenceService step: Argo sees no exit code of
    such an object, so the classes cannot be told apart. error: DML100; any: retry every failure."""
