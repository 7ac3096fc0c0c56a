"""Argo target, stage 4 (emit): the Workflow / CronWorkflow document and the `--with-setup` manifests.

Takes a `Plan`; gives YAML text: a header comment, the workflow built from hera model objects (dumped
with `model_dump` and PyYAML's C emitter, keys in a fixed order), and with `with_setup` the cluster-side
objects it needs: PVCs, RBAC, PriorityClasses and the Kueue / Volcano queues.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hera.workflows.models as m
from dmlc_targets.argo import dag, fastyaml, placeholders, templates
from dmlc_targets.argo.plan import Plan

from dmlc import k8s
from dmlc.ir.model import Serve, Train
from dmlc.k8s import QUEUE_LABEL, k8s_name
from dmlc.units import format_cpu, format_memory

ARGO_API = "argoproj.io/v1alpha1"
CONCURRENCY = {"allow": "Allow", "forbid": "Forbid", "replace": "Replace"}


def free_name(wanted: list[str], taken: set[str]) -> str:
    """The first of `wanted` no template has, else the last one with the first free `-N`."""
    names = wanted + [f"{wanted[-1]}-{i}" for i in range(2, len(taken) + 3)]
    return next(n for n in names if n not in taken)


def step_side_templates(plan: Plan) -> Iterator[m.Template]:
    """The loop-body DAG templates, then each step's templates, built one at a time."""
    for root in plan.bodies:
        yield dag.body_template(plan, root)
    for step in plan.steps:
        yield from templates.step_templates(plan, step)


def entry_names(plan: Plan, taken: set[str]) -> tuple[str, str]:
    """The names of the gate template and of the entrypoint DAG, unlike every other template's."""
    gate = free_name(["dmlc-gate"], taken)
    return gate, free_name([plan.wf_name, "dmlc-main"], taken | {gate})


def all_templates(plan: Plan) -> list[m.Template]:
    out = list(step_side_templates(plan))
    gate, main = entry_names(plan, {t.name for t in out if t.name})
    if dag.needs_gates(plan):
        out.append(dag.gate_template(plan, gate))
    return [dag.main_template(plan, main, gate), *out]


def _gang(plan: Plan) -> bool:
    sched = plan.pipeline.scheduling
    return bool(sched and sched.gang) or any(getattr(s, "gang", False) for s in plan.steps.values())


def _pod_labels(plan: Plan) -> dict[str, str]:
    labels = {**plan.pipeline.labels, "dmlc.io/pipeline": plan.pipeline.pipeline}
    sched = plan.pipeline.scheduling
    if sched is not None and sched.queue:
        labels[QUEUE_LABEL] = sched.queue
    return labels


def _volumes(plan: Plan) -> dict[str, Any]:
    if plan.options.volume_claims == "existing":
        return {"volumes": templates.pod_volumes(plan) or None}
    claims = [
        m.PersistentVolumeClaim(metadata=m.ObjectMeta(name=k8s_name(vol)), spec=_pvc_spec(plan, vol))
        for vol in plan.mounts
        if vol != plan.scratch
    ]
    scratch = [{"name": k8s_name(plan.scratch), "emptyDir": {}}] if plan.scratch else None
    return {"volume_claim_templates": claims or None, "volumes": scratch}


def _pvc_spec(plan: Plan, vol: str) -> dict[str, Any]:
    spec_vol = plan.pipeline.volumes.get(vol)
    size = spec_vol.size if spec_vol else plan.options.work_volume_size
    spec: dict[str, Any] = {
        "accessModes": [spec_vol.access if spec_vol else "ReadWriteMany"],  # pods on several nodes share it
        "resources": {"requests": {"storage": format_memory(size)}},
    }
    if spec_vol is not None and spec_vol.storage_class:
        spec["storageClassName"] = spec_vol.storage_class
    return spec


def _scheduling(plan: Plan) -> dict[str, Any]:
    sched = plan.pipeline.scheduling
    if sched is None:
        return {}
    out: dict[str, Any] = {"parallelism": sched.parallelism}
    if isinstance(sched.priority, int):
        out["priority"] = sched.priority
    elif sched.priority:
        out["pod_priority_class_name"] = sched.priority
    return out


def workflow_spec(plan: Plan, templates_: list[m.Template] | None = None, entrypoint: str = "") -> m.WorkflowSpec:
    opts = plan.options
    params = [m.Parameter(name=k, value=placeholders.param_text(v)) for k, v in plan.pipeline.params.items()]
    repo = opts.artifact_repository
    if templates_ is None:
        templates_ = all_templates(plan)
        entrypoint = templates_[0].name or ""
    return m.WorkflowSpec(
        entrypoint=entrypoint,
        on_exit=plan.name(plan.exit_handler) if plan.exit_handler else None,
        arguments=m.Arguments(parameters=params) if params else None,
        service_account_name=opts.service_account,
        image_pull_secrets=[m.LocalObjectReference(name=n) for n in plan.pipeline.image_pull_secrets] or None,
        pod_gc=m.PodGC(strategy=opts.pod_gc),
        pod_metadata=m.Metadata(labels=_pod_labels(plan)),
        artifact_repository_ref=m.ArtifactRepositoryRef(config_map=repo.config_map, key=repo.key) if repo else None,
        ttl_strategy=m.TTLStrategy(seconds_after_completion=int(opts.ttl_after_finished))
        if opts.ttl_after_finished
        else None,
        templates=templates_,
        **_scheduling(plan),
        **_volumes(plan),
    )


def _metadata(plan: Plan, cron: bool) -> m.ObjectMeta:
    name = k8s_name(plan.pipeline.pipeline, 52 if cron else 63)
    annotations = (
        {"workflows.argoproj.io/description": plan.pipeline.description} if plan.pipeline.description else None
    )
    labels = {**plan.pipeline.labels, "dmlc.io/pipeline": plan.pipeline.pipeline}
    generate = plan.options.generate_name and not cron
    return m.ObjectMeta(
        name=None if generate else name,
        generate_name=f"{name}-" if generate else None,
        namespace=plan.pipeline.namespace,
        labels=labels,
        annotations=annotations,
    )


def build(plan: Plan, spec: m.WorkflowSpec | None = None) -> m.Workflow | m.CronWorkflow:
    spec = spec or workflow_spec(plan)
    schedule = plan.pipeline.schedule
    if schedule is None:
        return m.Workflow(api_version=ARGO_API, kind="Workflow", metadata=_metadata(plan, False), spec=spec)
    cron = m.CronWorkflowSpec(
        schedules=[schedule.cron.strip()],
        timezone=schedule.timezone,
        concurrency_policy=CONCURRENCY[schedule.concurrency],
        workflow_spec=spec,
    )
    return m.CronWorkflow(api_version=ARGO_API, kind="CronWorkflow", metadata=_metadata(plan, True), spec=cron)


def to_plain(obj: m.Workflow | m.CronWorkflow, version: str = "4") -> dict[str, Any]:
    """The document as plain data, in the form `version` of Argo reads (3.5: one `schedule`)."""
    doc = obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    if version == "3.5" and "schedules" in doc["spec"]:
        doc["spec"]["schedule"] = doc["spec"].pop("schedules")[0]
    return doc


def dump_all(docs: list[dict[str, Any]], header: str) -> str:
    return header + fastyaml.dump_all(docs)


# -- --with-setup ----------------------------------------------------------------------------------
def setup_docs(plan: Plan) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    if plan.options.volume_claims == "existing":
        docs += [_pvc(plan, vol, claim) for vol, claim in plan.claims.items()]
    docs += _rbac(plan)
    docs += _priority_classes(plan)
    docs += _queues(plan)
    return docs


def _meta(plan: Plan, name: str, namespaced: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespaced and plan.pipeline.namespace:
        meta["namespace"] = plan.pipeline.namespace
    meta["labels"] = {"dmlc.io/pipeline": plan.pipeline.pipeline}
    return meta


def _pvc(plan: Plan, vol: str, claim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(plan, claim),
        "spec": _pvc_spec(plan, vol),
    }


RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "watch", "patch"]},
    {"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch"]},
    {"apiGroups": ["kubeflow.org"], "resources": ["tfjobs"], "verbs": ["get", "list", "watch", "create", "delete"]},
    {
        "apiGroups": ["serving.kserve.io"],
        "resources": ["inferenceservices"],
        "verbs": ["get", "list", "watch", "create", "update", "patch"],
    },
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "create", "update", "patch"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "create", "update", "patch"]},
]


def _rbac(plan: Plan) -> list[dict[str, Any]]:
    """What memoization (ConfigMaps), resource templates (TFJob, KServe) and the executor need; the
    controller writes the memoization ConfigMap itself, so its service account is bound too."""
    name = k8s_name(f"{plan.pipeline.pipeline}-dmlc")
    account = plan.options.service_account or "default"
    subject = {"kind": "ServiceAccount", "name": account}
    if plan.pipeline.namespace:
        subject["namespace"] = plan.pipeline.namespace
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(plan, name), "rules": RULES}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(plan, name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject, *_step_accounts(plan, account)],
    }
    docs = []
    if plan.options.service_account:
        docs.append({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(plan, account)})
    if any(step.memoize is not None for step in plan.steps.values()):
        namespace, _, controller = plan.options.controller_service_account.rpartition("/")
        memo = {**binding, "metadata": _meta(plan, f"{name}-controller")}
        memo["subjects"] = [{"kind": "ServiceAccount", "name": controller, "namespace": namespace or "argo"}]
        docs.append(memo)
    return [*docs, role, binding]


def _step_accounts(plan: Plan, workflow_account: str) -> list[dict[str, Any]]:
    """The `service_account`s of container steps: their pods run Argo's executor, which writes the step's
    results (workflowtaskresults) as that account, so the Role is bound to them too. The accounts
    themselves are the user's (annotated for workload identity), never created here."""
    names = sorted({s.service_account for s in plan.steps.values() if s.service_account and not _launched(s)})
    out = []
    for name in names:
        if name != workflow_account:
            subject = {"kind": "ServiceAccount", "name": name}
            if plan.pipeline.namespace:
                subject["namespace"] = plan.pipeline.namespace
            out.append(subject)
    return out


def _launched(step: Any) -> bool:
    return isinstance(step, Serve) or (isinstance(step, Train) and step.distributed)


PRIORITY_VALUES = {"low": 1000, "medium": 10000, "high": 100000, "critical": 1000000}


def _priority_classes(plan: Plan) -> list[dict[str, Any]]:
    sched = plan.pipeline.scheduling
    if sched is None or not isinstance(sched.priority, str):
        return []
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": _meta(plan, sched.priority, namespaced=False),
            "value": PRIORITY_VALUES.get(sched.priority, 10000),
            "globalDefault": False,
            "preemptionPolicy": "PreemptLowerPriority" if not sched.preemptible else "Never",
            "description": f"dmlc scheduling.priority = {sched.priority!r}",
        }
    ]


def _queues(plan: Plan) -> list[dict[str, Any]]:
    sched = plan.pipeline.scheduling
    if sched is None or not sched.queue:
        return []
    queue = sched.queue
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "kueue.x-k8s.io/v1beta1",
            "kind": "ResourceFlavor",
            "metadata": _meta(plan, "default-flavor", False),
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta1",
            "kind": "ClusterQueue",
            "metadata": _meta(plan, queue, namespaced=False),
            "spec": {"namespaceSelector": {}, "resourceGroups": [_quota(plan)]},
        },
        {
            "apiVersion": "kueue.x-k8s.io/v1beta1",
            "kind": "LocalQueue",
            "metadata": _meta(plan, queue),
            "spec": {"clusterQueue": queue},
        },
    ]
    if _gang(plan):
        docs.append(
            {
                "apiVersion": "scheduling.volcano.sh/v1beta1",
                "kind": "Queue",
                "metadata": _meta(plan, queue, namespaced=False),
                "spec": {"weight": 1, "reclaimable": True},
            }
        )
    return docs


DEFAULT_POD = (1000, 2**30)  # what a pod without `resources` is counted as: 1 cpu, 1Gi


def _quota(plan: Plan) -> dict[str, Any]:
    """A quota that admits this whole pipeline at once: every pod of every step instance, side by side."""
    cpu = memory = 0
    for step in plan.steps.values():
        res = step.resources
        pod_cpu = res.cpu if res is not None and res.cpu is not None else DEFAULT_POD[0]
        pod_mem = res.memory if res is not None and res.memory is not None else DEFAULT_POD[1]
        pods = _pods(step)
        cpu, memory = cpu + pods * pod_cpu, memory + pods * pod_mem
    quotas = [
        {"name": "cpu", "nominalQuota": format_cpu(cpu)},
        {"name": "memory", "nominalQuota": format_memory(memory)},
    ]
    return {
        "coveredResources": ["cpu", "memory"],
        "flavors": [{"name": "default-flavor", "resources": quotas}],
    }


def _pods(step: Any) -> int:
    instances = len(step.for_each) if isinstance(step.for_each, list) else 1
    if isinstance(step, Train) and step.distributed:
        return instances * sum(n for _, n in k8s.tfjob_roles(step))
    if isinstance(step, Serve):
        return instances * (step.shards or 1) * step.replicas
    return instances
