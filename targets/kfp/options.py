"""Options of the KFP target (stage 3, validate): the `target kfp { ... }` block, checked by pydantic (DML101).

Knobs that exist only on Kubeflow Pipelines and stay out of the core IR: where every task's pod may
run (node selector, tolerations), the zone the cluster's recurring-run controller reads cron in,
and the experiment a recurring run is filed under.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dmlc.targets import TargetOptions


class Toleration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str | None = None
    """Taint key the pod tolerates."""
    operator: Literal["Equal", "Exists"] = "Equal"
    """Equal (key and value match) or Exists (any value)."""
    value: str | None = None
    """Taint value."""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    """Taint effect (default: every effect)."""


class KfpOptions(TargetOptions):
    node_selector: dict[str, str] = Field(default_factory=dict)
    """Node labels every task pod requires, e.g. { "cloud.google.com/gke-nodepool" = "ml" }."""
    tolerations: list[Toleration] = Field(default_factory=list)
    """Taints every task pod tolerates."""
    scheduler_timezone: str = "UTC"
    """The zone of the cluster's scheduledworkflow controller (its CRON_SCHEDULE_TIMEZONE); KFP reads
    every cron expression in it, so a `schedule { timezone }` must name this zone."""
    experiment: str | None = None
    """Experiment of the recurring run (default: the pipeline's name)."""
    schedule_forbid: Literal["error", "delay"] = "error"
    """KFP cannot skip a cron tick while the previous run is going (`schedule { concurrency = "forbid" }`):
    "error" refuses it (DML100); "delay" is the explicit opt-in to KFP's behaviour of running it later."""
    elastic: Literal["error", "ignore"] = "error"
    """A TFJob cannot shrink to the workers that are left (`elastic`): "error" refuses it (DML100);
    "ignore" runs it with `workers` and restarts the whole job from its checkpoint instead."""
    data_volume_size: str = Field("10Gi", pattern=r"^[0-9]+(\.[0-9]+)?([KMGTPE]i?)?$")
    """Size of the run's volume (ReadWriteMany) through which TFJobs and InferenceServices get their
    input artifacts and hand back their outputs (created only when a step is launched)."""
    data_volume_class: str = Field("standard", min_length=1)
    """Storage class of that volume; it must offer ReadWriteMany (NFS, EFS, Filestore, CephFS...). KFP's
    CreatePVC cannot ask for the cluster's default class: the backend's own default is "standard"."""
    min_success: Literal["error", "all"] = "error"
    """KFP cannot run a step after a loop with a failed iteration: the backend (2.17) compiles
    `ignore_upstream_failure` into an exit hook, which a ParallelFor drops. "error" refuses
    `min_success` (DML100); "all" is the explicit opt-in to KFP's rule: every instance must succeed."""
    task_retry: Literal["error", "any"] = "error"
    """`retry.on` other than "any" on a container step: KFP's retry policy has a count and a backoff, no
    condition. "error" refuses it (DML100); "any" is the explicit opt-in to retrying every failure (a
    warning). Launched TFJob and InferenceService steps apply `on` in their launcher either way."""
    cache_max_age: Literal["epoch", "ignore"] = "epoch"
    """How `memoize.max_age` holds on KFP, whose cache has no age: "epoch" feeds the memoized task the
    number of `max_age` periods since 1970 from an uncached task run just before it, so its cache key
    changes every `max_age`; "ignore" adds no task and reuses cached results however old (a warning)."""
