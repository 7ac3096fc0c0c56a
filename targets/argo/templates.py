"""Argo target, stage 4 (emit): one Argo template per step, as hera model objects.

Takes a `Plan` and a step name; gives `hera.workflows.models.Template`s: a container template running
the dmlc runtime (or the `task` command), a `resource` template creating the TFJob of a distributed
train step, and `resource` templates applying the KServe objects of a serve step (a small DAG of them
when the service is sharded). Memoize, retry, timeout, resources, env, labels and mounts are set here.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import hera.workflows.models as m
from dmlc_targets.argo import fast, fastyaml, objstore, placeholders, prometheus
from dmlc_targets.argo.dag import OK
from dmlc_targets.argo.plan import REFS_DIR, STORE_PREFIX, Plan

from dmlc import k8s, placement
from dmlc.ir.model import Retry, Serve, Task, Train
from dmlc.semantics import metrics as ui_metrics
from dmlc.semantics.retry import TRANSIENT_EXITS, by_codes
from dmlc.units import format_duration

# A timeout names no exit code and is no `failure` (dmlc.semantics.retry), yet the kubelet kills a pod
# past its activeDeadlineSeconds (main exits 137 or 143): Argo takes the pod's status message as the
# node's (argo-workflows v4.1.2 workflow/controller/operator.go inferFailedReason; getExitCode reads main's)
DEADLINE_MESSAGE = "longer than the specified deadline"  # "Pod was active on the node longer than ..."

# The local retry classes (DESIGN §2.3) as Argo retry expressions (argo-workflows docs/retries.md:
# `lastRetry.exitCode` is a string, "-1" when unknown; a process killed by a signal exits 128 + N).
# Argo's own OnTransientError means API and infrastructure errors, not an OOM kill or exit 75.
# dmlc.semantics.retry's classes over what Argo sees of an attempt: the container's exit code (a signal
# death shows as 128+signal) and the node's message (a missing command has no exit code)
RETRY_WHEN = {
    "any": None,
    "failure": f"asInt(lastRetry.exitCode) != 0 && !(lastRetry.message matches '{DEADLINE_MESSAGE}')"
    " || lastRetry.message matches 'no such file or directory'",
    "transient": f"asInt(lastRetry.exitCode) in {list(TRANSIENT_EXITS)}"
    " || lastRetry.message matches 'deadline|DeadlineExceeded|OOMKilled|Evicted|pod deleted|node shutdown'",
}
ISVC_READY = "status.modelStatus.states.activeModelState == Loaded"


def go_duration(seconds: float) -> str:
    """A Go duration (`time.ParseDuration` knows h, m, s but no days): 86400 -> `24h`."""
    text = format_duration(seconds)
    if text.endswith(("d", "w")):
        return f"{int(seconds // 3600)}h"
    return text


def manifest_text(obj: dict) -> str:
    return fastyaml.dump(obj)


# -- shared pieces ---------------------------------------------------------------------------------
def _inputs(plan: Plan, step: str) -> m.Inputs | None:
    names = ["item"] if plan.fanned(step) else []
    names += [inp.param for inp in plan.inputs(step)]
    if not names:
        return None
    return fast.Inputs(parameters=[fast.Parameter(name=n) for n in names])


def volume_mounts(plan: Plan) -> list[dict]:
    return [{"name": k8s.k8s_name(v), "mountPath": mount} for v, mount in plan.mounts.items()]


def pod_volumes(plan: Plan) -> list[dict]:
    claims = [{"name": k8s.k8s_name(v), "persistentVolumeClaim": {"claimName": c}} for v, c in plan.claims.items()]
    return claims + ([{"name": k8s.k8s_name(plan.scratch), "emptyDir": {}}] if plan.scratch else [])


def _metadata(plan: Plan, step: str, annotations: dict[str, str] | None = None) -> m.Metadata:
    eff = plan.steps[step]
    labels = {**eff.labels, "dmlc.io/step": step}
    if eff.priority is not None:
        labels["dmlc.io/priority"] = str(eff.priority)
    return fast.Metadata(labels=labels, annotations=annotations or None)


def _memoize(plan: Plan, step: str) -> m.Memoize | None:
    memo = plan.steps[step].memoize
    if memo is None:
        return None
    config_map = plan.options.memo_config_map or k8s.k8s_name(f"{plan.pipeline.pipeline}-memo")
    return m.Memoize(
        key=placeholders.memo_key(plan, step),
        max_age=go_duration(memo.max_age) if memo.max_age is not None else "",
        cache=m.Cache(config_map={"name": config_map}),
    )


def retry_when(on: str | list[int]) -> str | None:
    """`retry.on` as a retryStrategy expression. With retryPolicy Always, Argo evaluates it after every
    Failed or Errored attempt (argo-workflows v4.1.2 workflow/controller/operator.go processNodeRetries;
    OnFailure would end an Errored node before it): the expression alone decides, as `on` does locally."""
    if by_codes(on):
        return f"asInt(lastRetry.exitCode) in {list(on)} && !(lastRetry.message matches '{DEADLINE_MESSAGE}')"
    return RETRY_WHEN[str(on)]


def _retry(plan: Plan, step: str) -> m.RetryStrategy | None:
    """`retry`, plus a TFJob's `restarts` as further attempts (each a new job resuming from its checkpoint,
    as the local launcher restarts the job): every failure of the job counts for those."""
    eff = plan.steps[step]
    restarts = eff.restarts if isinstance(eff, Train) and eff.distributed else 0
    retry = eff.retry or (Retry(limit=0) if restarts else None)
    if retry is None:
        return None
    backoff = None
    if retry.backoff is not None or retry.factor is not None or retry.max_backoff is not None:
        backoff = m.Backoff(
            duration=go_duration(retry.backoff) if retry.backoff is not None else None,
            factor=m.IntOrString(int(retry.factor)) if retry.factor is not None else None,
            cap=go_duration(retry.max_backoff) if retry.max_backoff is not None else None,
        )
    launched = isinstance(eff, Serve) or (isinstance(eff, Train) and eff.distributed)
    when = None if launched else retry_when(retry.on)  # an object: every failure (`object_retry = "any"`)
    limit = m.IntOrString(retry.limit + restarts)
    return m.RetryStrategy(limit=limit, retry_policy="Always", expression=when, backoff=backoff)


def _common(plan: Plan, step: str) -> dict:
    """Template fields every step kind shares."""
    eff = plan.steps[step]
    return {
        "name": plan.name(step),
        "inputs": _inputs(plan, step),
        "memoize": _memoize(plan, step),
        "retry_strategy": _retry(plan, step),
        "active_deadline_seconds": m.IntOrString(int(eff.timeout)) if eff.timeout else None,
    }


def _param_outputs(plan: Plan, step: str) -> list[m.Parameter]:
    out = []
    for name, kind in plan.steps[step].outputs().items():
        path = f"{REFS_DIR}/{name}" if kind == "artifact" else f"{plan.outputs_dir(step)}/{name}"
        out.append(fast.Parameter(name=name, value_from=fast.ValueFrom(path=path)))
    for metric in ui_metrics.names(plan.steps[step]):  # one parameter per number, for Argo's UI
        path = f"{plan.outputs_dir(step)}/{ui_metrics.param_name(metric)}"
        out.append(fast.Parameter(name=ui_metrics.param_name(metric), value_from=fast.ValueFrom(path=path)))
    if plan.memo_store(step):  # the key prefix this run wrote, restored by a cache hit
        out.append(fast.Parameter(name=STORE_PREFIX, value_from=fast.ValueFrom(path=f"{REFS_DIR}/{STORE_PREFIX}")))
    return out + _ok_output(plan, step, fast.ValueFrom(path=f"{REFS_DIR}/{OK}", default="1"))


def _ok_output(plan: Plan, step: str, source: m.ValueFrom) -> list[m.Parameter]:
    """`dmlc-ok` of a step whose instances a `min_success` gate counts (only successful ones are aggregated)."""
    return [fast.Parameter(name=OK, value_from=source)] if plan.min_success_gate(step) else []


def _refs_volume(plan: Plan, step: str) -> tuple[dict[str, str], list[dict], list[dict]]:
    """Artifact outputs are paths known before the pod runs: pod annotations exposed by the downward API
    become files, so `valueFrom.path` reads them like any other output parameter (and memoization keeps them)."""
    arts = [n for n, kind in plan.steps[step].outputs().items() if kind == "artifact"]
    if not arts:
        return {}, [], []

    def where(n: str) -> str:  # with an object store: where readers find it once downloaded
        return objstore.published(plan, step, n) if plan.scratch else f"{plan.outputs_dir(step)}/{n}"

    refs = {n: where(n) for n in arts} | objstore.prefix_ref(plan, step)
    annotations = {f"dmlc.io/output.{n}": value for n, value in refs.items()}
    items = [{"path": n, "fieldRef": {"fieldPath": f"metadata.annotations['dmlc.io/output.{n}']"}} for n in refs]
    volume = {"name": "dmlc-refs", "downwardAPI": {"items": items}}
    return annotations, [volume], [{"name": "dmlc-refs", "mountPath": REFS_DIR, "readOnly": True}]


# -- container steps -------------------------------------------------------------------------------
def _command(plan: Plan, step: str) -> tuple[list[str], list[str] | None, dict[str, str]]:
    """argv, args and the contract variables of `dmlc.semantics.spec.environment` for this step."""
    eff = plan.steps[step]
    env = {"DMLC_OUTPUTS": plan.outputs_dir(step), "DMLC_STEP": step}
    if plan.fanned(step):
        env["DMLC_ITEM"] = placeholders.item_text(plan, step)
    if isinstance(eff, Task) and eff.command:
        command = [placeholders.arg_text(plan, step, a) for a in eff.command]
        args = [placeholders.arg_text(plan, step, a) for a in eff.args]
        return command, args or None, env
    env["DMLC_WORK_DIR"] = plan.work_dir(step)
    call = runtime_call(plan, step, b64=False)
    return k8s.runtime_command(eff.kind, call), None, env | call.env


def env_text(plan: Plan, step: str) -> Callable[[str], str]:
    """How a user's `env` value reads on Argo: its references as Argo placeholders."""
    return lambda value: placeholders.arg_text(plan, step, value)


def runtime_call(plan: Plan, step: str, b64: bool) -> k8s.RuntimeCall:
    """The step spec and the handover of its values; inside a manifest (`b64`) values travel base64
    and `env` values literally (the runtime sets the resolved ones itself)."""
    bindings, env = placeholders.handover(plan, step)
    refs = json.dumps(bindings, sort_keys=True, separators=(",", ":")) if bindings else None
    env_of = (lambda text: placeholders.literal(text, plan.passes(step))) if b64 else env_text(plan, step)
    return k8s.RuntimeCall(placeholders.runtime_spec(plan, step), refs, env, env_of)


def container_template(plan: Plan, step: str) -> m.Template:
    eff = plan.steps[step]
    command, args, extra_env = _command(plan, step)
    annotations, ref_volumes, ref_mounts = _refs_volume(plan, step)
    container = m.Container(
        name="main",
        image=eff.image,
        image_pull_policy=plan.options.image_pull_policy,
        command=command,
        args=args,
        env=k8s.env(eff, extra_env, env_text(plan, step)) or None,
        resources=k8s.resources(eff),
        volume_mounts=volume_mounts(plan) + ref_mounts or None,
    )
    outputs = _param_outputs(plan, step)
    arts_out, arts_in = objstore.output_artifacts(plan, step), objstore.input_artifacts(plan, step)
    common = _common(plan, step)
    if arts_in:
        params = common["inputs"].parameters if common["inputs"] is not None else None
        common["inputs"] = fast.Inputs(parameters=params, artifacts=arts_in)
    return m.Template(
        **common,
        **_placement(plan, step),
        metadata=_metadata(plan, step, annotations),
        init_containers=_make_outputs_dir(plan, step) if "DMLC_WORK_DIR" not in extra_env else None,
        container=container,
        volumes=ref_volumes or None,
        outputs=fast.Outputs(parameters=outputs or None, artifacts=arts_out or None) if outputs or arts_out else None,
        metrics=prometheus.template_metrics(plan, step),
    )


def _placement(plan: Plan, step: str) -> dict:
    """A container step's pod placement and service account as template fields: argo-workflows v4.1
    workflow/controller/workflowpod.go (addSchedulingConstraints, setupServiceAccount) puts the
    template's nodeSelector, affinity, tolerations and serviceAccountName on the pod, and every pod gets
    the workflow's `spec.imagePullSecrets`. dmlc sets none of these on the workflow, so a step without
    them gets none. A TFJob or InferenceService step places its workload's pods in the manifest
    instead (`dmlc.k8s`), not the pod creating it."""
    fields = placement.pod_fields(plan.pipeline, plan.steps[step], identity=False)
    account = plan.steps[step].service_account
    return {
        "node_selector": fields.get("nodeSelector"),
        "service_account_name": account,
        "affinity": m.Affinity.model_validate(fields["affinity"]) if "affinity" in fields else None,
        "tolerations": [m.Toleration.model_validate(t) for t in fields.get("tolerations", [])] or None,
    }


def _make_outputs_dir(plan: Plan, step: str) -> list[m.UserContainer]:
    """A `command` task writes into $DMLC_OUTPUTS itself (the runtime makes it for built-in steps)."""
    command = ["mkdir", "-p", plan.outputs_dir(step)]
    return [m.UserContainer(name="dmlc-outputs", image=plan.pipeline.image, command=command, mirror_volume_mounts=True)]


# -- distributed train -----------------------------------------------------------------------------
def tfjob_template(plan: Plan, step: str) -> m.Template:
    eff = plan.steps[step]
    assert isinstance(eff, Train)
    model_path = objstore.published(plan, step, "model") if plan.scratch else f"{plan.outputs_dir(step)}/model"
    call, job_step, volumes, mounts = objstore.staged(plan, step, runtime_call(plan, step, b64=True), eff)
    refs = {"model": model_path} | objstore.prefix_ref(plan, step)
    job = k8s.tfjob(
        plan.pipeline,
        step,
        job_step,
        job_name=f"{{{{workflow.name}}}}-{plan.name(step)}-",
        call=call,
        volumes=pod_volumes(plan) + volumes,
        volume_mounts=volume_mounts(plan) + mounts,
        namespace=None,
        annotations={f"dmlc.io/output.{n}": v for n, v in refs.items()},
    )
    success, failure = k8s.tfjob_conditions(eff)
    resource = m.ResourceTemplate(
        action="create",
        set_owner_reference=True,
        success_condition=success,
        failure_condition=failure,
        manifest=manifest_text(job),
    )
    params = [
        fast.Parameter(name=n, value_from=fast.ValueFrom(json_path=f"{{.metadata.annotations.dmlc\\.io/output\\.{n}}}"))
        for n in refs
    ]
    return m.Template(
        **_common(plan, step),
        metadata=_metadata(plan, step),
        resource=resource,
        outputs=fast.Outputs(
            parameters=[*params, *_ok_output(plan, step, fast.ValueFrom(json_path="{.metadata.name}"))]
        ),
    )


# -- serve -----------------------------------------------------------------------------------------
def _apply_template(plan: Plan, step: str, name: str, obj: dict, endpoint: str | None) -> m.Template:
    resource = m.ResourceTemplate(
        action="apply",
        success_condition=ISVC_READY if obj["kind"] == "InferenceService" else None,
        manifest=manifest_text(obj),
    )
    outputs = None
    if endpoint:
        outputs = fast.Outputs(
            parameters=[fast.Parameter(name="endpoint", value_from=fast.ValueFrom(json_path=endpoint))]
        )
    common = _common(plan, step) | {"name": name}
    if name != plan.name(step):
        common["memoize"] = common["retry_strategy"] = None
    return m.Template(**common, metadata=_metadata(plan, step), resource=resource, outputs=outputs)


def serve_templates(plan: Plan, step: str) -> list[m.Template]:
    eff = plan.steps[step]
    assert isinstance(eff, Serve)
    call, served, volumes, mounts = objstore.staged(plan, step, runtime_call(plan, step, b64=True), eff)
    objs = k8s.inference_service(
        plan.pipeline,
        step,
        served,
        isvc_name=k8s.isvc_name(plan.pipeline, step),
        call=call,
        volumes=pod_volumes(plan) + volumes,
        volume_mounts=volume_mounts(plan) + mounts,
        namespace=plan.pipeline.namespace,
        dns_namespace="{{workflow.namespace}}",
    )
    if len(objs) == 1:
        return [_apply_template(plan, step, plan.name(step), objs[0], "{.status.address.url}")]
    return _sharded(plan, step, objs)


def _sharded(plan: Plan, step: str, objs: list[dict]) -> list[m.Template]:
    """N shard InferenceServices, the router Deployment and its Service, applied side by side."""
    base = plan.name(step)
    templates, tasks = [], []
    shards = sum(1 for obj in objs if obj["kind"] == "InferenceService")
    suffixes = [f"shard-{i}" for i in range(shards)] + ["router", "router-service"]
    for obj, suffix in zip(objs, suffixes, strict=True):
        name = f"{base}-{suffix}"
        endpoint = None
        if obj["kind"] == "Service":
            namespace = plan.pipeline.namespace or "{{workflow.namespace}}"
            url = f"http://{obj['metadata']['name']}.{namespace}.svc.cluster.local"
            obj["metadata"]["annotations"] = {"dmlc.io/endpoint": url}
            endpoint = "{.metadata.annotations.dmlc\\.io/endpoint}"
        templates.append(_apply_template(plan, step, name, obj, endpoint))
        tasks.append(fast.DAGTask(name=name, template=name, arguments=_pass_inputs(plan, step)))
    service = templates[-1].name
    out = fast.Parameter(
        name="endpoint", value_from=fast.ValueFrom(parameter=f"{{{{tasks.{service}.outputs.parameters.endpoint}}}}")
    )
    common = _common(plan, step)
    common["retry_strategy"] = None
    dag = m.Template(
        **common, metadata=_metadata(plan, step), dag=m.DAGTemplate(tasks=tasks), outputs=fast.Outputs(parameters=[out])
    )
    return [dag, *templates]


def _pass_inputs(plan: Plan, step: str) -> m.Arguments | None:
    inputs = _inputs(plan, step)
    if inputs is None:
        return None
    params = [fast.Parameter(name=p.name, value=f"{{{{inputs.parameters.{p.name}}}}}") for p in inputs.parameters or []]
    return fast.Arguments(parameters=params)


def step_templates(plan: Plan, step: str) -> list[m.Template]:
    eff = plan.steps[step]
    if isinstance(eff, Serve):
        return serve_templates(plan, step)
    if isinstance(eff, Train) and eff.distributed:
        return [tfjob_template(plan, step)]
    return [container_template(plan, step)]
