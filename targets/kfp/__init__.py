"""The Kubeflow Pipelines v2 target (stage 3 check + stage 4 emit): IR -> KFP PipelineSpec YAML.

Takes a validated `Pipeline`; gives kfp's compiler output for it: built with kfp's DSL and compiled by
kfp's compiler, or, for flat pipelines, built directly with kfp's protobuf classes to the same bytes
(`direct.py`); built-in steps are lightweight Python components calling `dmlc.runtime`, so the YAML
also runs under `kfp.local`. This module stays light: kfp is imported
only by `emit`, so `dmlc check` and `dmlc targets` do not pay for it. See README.md for the mapping.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dmlc_targets.kfp.options import KfpOptions

from dmlc.ir.model import Pipeline
from dmlc.targets import Checked, CompileContext, TargetOptions


class KfpTarget:
    name: ClassVar[str] = "kfp"
    suffix: ClassVar[str] = ".kfp.yaml"
    runs_in_image: ClassVar[bool] = True  # steps run container images: user code must be in them
    description: ClassVar[str] = "Kubeflow Pipelines v2 PipelineSpec (kfp SDK), runnable by kfp.local"
    options_model: ClassVar[type[TargetOptions]] = KfpOptions
    capabilities: ClassVar[dict[str, str]] = {
        "ingest / train / evaluate / select / run task": "lightweight Python component calling dmlc.runtime",
        "command task": "lightweight Python component running the command (exact $DMLC_OUTPUTS contract)",
        "for_each": "dsl.ParallelFor over a static list or a list output",
        "fan-in x[*].out": "dsl.Collected",
        "wait = each": "downstream task inside the same ParallelFor body",
        "when": "condition task evaluating the expression + dsl.If",
        "min_success": 'DML100, or every instance must succeed (target kfp { min_success = "all" })',
        "memoize": "task caching (fingerprint = spec, image, inputs, key); max_age: an uncached epoch input",
        "retry": 'set_retry with backoff (on = "any"); TFJob/serve launchers apply any/failure/transient/exit codes',
        "timeout": "pod activeDeadlineSeconds (kfp-kubernetes set_timeout)",
        "resources": "cpu/memory requests = limits, accelerator type (default nvidia.com/gpu) limit",
        "node_selector / tolerations / affinity": "kfp-kubernetes add_node_selector / add_toleration / "
        "add_node_affinity; TFJob / serve: the manifest's pods",
        "image_pull_secrets": "set_image_pull_secrets on every task, imagePullSecrets on manifests' pods",
        "service_account of a TFJob / serve step": "serviceAccountName of the manifest's pods",
        "env / secret_env": "set_env_variable / use_secret_as_env",
        "volume": "CreatePVC + mount_pvc",
        "labels / queue / priority (named)": "pod labels (dmlc.io/*, Kueue queue and workload priority class)",
        "train allreduce / parameter_server": "launcher task creating the TFJob of dmlc.k8s and waiting",
        "gang": "TFJob schedulingPolicy (Volcano); not for single-pod steps",
        "serve": "launcher task applying the InferenceService (+ router) of dmlc.k8s",
        "schedule": "recurring-run settings (header comment, document with --with-setup)",
        "metrics (train / evaluate / select)": "Metrics artifact (a scalar each); evaluate: ClassificationMetrics",
        "step priority": "",
        "service_account of a task": "",
        "numeric scheduling.priority": "",
        "retry.max_backoff": "",
        "schedule.concurrency = replace": "",
    }

    def check(self, pipeline: Pipeline, ctx: CompileContext) -> Checked:
        from dmlc_targets.kfp.check import check

        return check(pipeline, ctx)

    def emit(self, plan: Any, ctx: CompileContext) -> str:
        from dmlc_targets.kfp.emit import emit

        return emit(plan, ctx)

    def runs(self) -> Any:
        """`dmlc submit|status|logs` through the KFP v2beta1 API (targets/kfp/submit.py, loaded on use)."""
        from dmlc_targets.kfp.submit import KfpRuns

        return KfpRuns()


target = KfpTarget
