"""Argo target, stage 4 (emit): `artifacts { store }` as S3 / GCS artifacts of the container templates.

Takes a `Plan`; gives the pieces `templates.py` adds when the pipeline declares an object store:

- each artifact output `n` of a step instance becomes an output artifact at `<outputs dir>/n`, uploaded by
  Argo's executor to `<prefix>/<pipeline>/{{workflow.name}}/<step>/<instance>/n`
  (`dmlc.semantics.objstore`'s layout, the local executor's too) with `archive: {none: {}}`, so a file is
  one object and a folder one object per file (argo-workflows v4.1.2 `workflow/executor/executor.go`
  saveArtifact: `archive.none` uploads the path as is; `workflow/artifacts/s3/s3.go` Save puts a directory
  file by file);
- the path handed to readers is `/dmlc/store/<step>/<instance>/n`, and a reader downloads each producer's
  whole prefix `<prefix>/<pipeline>/{{workflow.name}}/<step>` to `/dmlc/store/<step>` as an optional input
  artifact (s3.go Load: a key that is a prefix is downloaded as a directory; `optional` for a producer
  that was skipped), so one instance, a fan-in of all of them, and a `wait = "each"` pairing all find their
  paths;
- the step's scratch space (`/dmlc/work`) is the pod's own `emptyDir`: no PVC, so pods on different
  nodes never share a ReadWriteOnce volume. User `volumes` stay PVCs.

- a memoized step (not fanned out, in no loop body) also outputs `dmlc-store`, the key prefix its run
  wrote (a downward-API reference, like its paths); its readers download from that prefix, fed by the DAG
  from `tasks.<step>.outputs.parameters.dmlc-store`. Argo's cache keeps output parameters
  (argo-workflows v4.1.2 `workflow/controller/cache/configmap_cache.go`: an Entry's `outputs`), so on a
  hit the readers get the earlier run's prefix and read its objects, as a local cache hit does; a
  memoized reader's key digests that prefix, so it hits only for the same objects.

What needs the shared volume is DML107 (`check`): a TFJob or an InferenceService (resource templates
have no artifacts, their pods would find nothing); a memoized loop with artifacts (one prefix per
instance, which a reader of the aggregated outputs cannot be handed); a memoized reader of a producer
that is not memoized (the paths it reads are the same in every run, so its key cannot tell runs apart).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hera.workflows.models as m
from dmlc_targets.argo.plan import STORE_PREFIX, Input, Plan

from dmlc.diagnostics.catalogue import DML107
from dmlc.diagnostics.model import Diagnostic
from dmlc.ir.model import Artifacts, Serve, Step, Train
from dmlc.k8s import RuntimeCall
from dmlc.semantics.objstore import MAIN, location, pipeline_segment
from dmlc.targets import CompileContext

STORE_MOUNT = "/dmlc/store"  # where readers find the producers' objects


def segment(plan: Plan, step: str) -> str:
    if not plan.fanned(step) and plan.scope(step) is None:
        return MAIN
    return plan.instance_segment(step)


def published(plan: Plan, step: str, output: str) -> str:
    """The path a reader of `step.output` opens (its input artifact's download)."""
    return f"{STORE_MOUNT}/{step}/{segment(plan, step)}/{output}"


def _run_key(art: Artifacts, plan: Plan, *parts: str) -> str:
    return location(art.store).key(pipeline_segment(plan.pipeline.pipeline), "{{workflow.name}}", *parts)


def _location(art: Artifacts, key: str) -> dict[str, Any]:
    """`s3:` / `gcs:` of an artifact at `key`; credentials by secret reference only (Argo's key names)."""
    loc = location(art.store)
    if loc.scheme == "gs":
        secret = m.SecretKeySelector(name=art.credentials, key="serviceAccountKey") if art.credentials else None
        return {"gcs": m.GCSArtifact(bucket=loc.bucket, key=key, service_account_key_secret=secret)}
    endpoint = (art.endpoint or "").split("://", 1)[-1].rstrip("/") or "s3.amazonaws.com"
    insecure = art.insecure if art.insecure is not None else bool(art.endpoint and art.endpoint.startswith("http:"))
    access = secret = None
    if art.credentials:
        access = m.SecretKeySelector(name=art.credentials, key="accessKey")
        secret = m.SecretKeySelector(name=art.credentials, key="secretKey")
    s3 = m.S3Artifact(
        endpoint=endpoint, bucket=loc.bucket, key=key, region=art.region, insecure=insecure,
        access_key_secret=access, secret_key_secret=secret,
    )  # fmt: skip
    return {"s3": s3}


def output_artifacts(plan: Plan, step: str) -> list[m.Artifact]:
    art = plan.pipeline.artifacts
    if art is None:
        return []
    out = []
    for name, kind in plan.steps[step].outputs().items():
        if kind != "artifact":
            continue
        key = _run_key(art, plan, step, segment(plan, step), name)
        path = f"{plan.outputs_dir(step)}/{name}"
        out.append(m.Artifact(name=name, path=path, archive=m.ArchiveStrategy(none={}), **_location(art, key)))
    return out


def input_artifacts(plan: Plan, step: str) -> list[m.Artifact]:
    art = plan.pipeline.artifacts
    if art is None:
        return []
    return [_input(art, plan, up) for up in _producers(plan, step)]


def prefix_ref(plan: Plan, step: str) -> dict[str, str]:
    """The key prefix a memoized step writes, as a reference its pod hands back (`STORE_PREFIX`)."""
    art = plan.pipeline.artifacts
    return {STORE_PREFIX: _run_key(art, plan, step)} if art is not None and plan.memo_store(step) else {}


def _producers(plan: Plan, step: str) -> list[str]:
    return list(
        dict.fromkeys(i.root for i in plan.inputs(step) if plan.steps[i.root].outputs().get(i.output) == "artifact")
    )


def _input_key(art: Artifacts, plan: Plan, up: str) -> str:
    """The key prefix a reader downloads `up`'s objects from: this run's, or the one `up`'s node reports."""
    if plan.memo_store(up):  # a cache hit reports the earlier run's prefix
        return f"{{{{=sprig.b64dec(inputs.parameters['{Input(up, STORE_PREFIX, False).param}'])}}}}"
    return _run_key(art, plan, up)


def _input(art: Artifacts, plan: Plan, up: str) -> m.Artifact:
    where = _location(art, _input_key(art, plan, up))
    return m.Artifact(name=f"store-{plan.name(up)}", path=f"{STORE_MOUNT}/{up}", optional=True, **where)


# -- pods of resource templates: the runtime stages their artifacts itself ----------------------------
STORE_VOLUME = "dmlc-store"


def staged(plan: Plan, step: str, call: RuntimeCall, eff: Step) -> tuple[RuntimeCall, Step, list[dict], list[dict]]:
    """A TFJob's or InferenceService's call, step, extra volumes and mounts with an object store: the
    spec's `staging` (the input prefixes the step's artifact container would download, the keys its
    outputs would be uploaded to), the credentials as `secretKeyRef` environment, and an emptyDir at
    `/dmlc/store` for the downloads. Unchanged without a store."""
    art = plan.pipeline.artifacts
    if art is None:
        return call, eff, [], []
    loc = location(art.store)
    outputs = {
        n: _run_key(art, plan, step, segment(plan, step), n) for n, k in plan.steps[step].outputs().items()
        if k == "artifact"
    }  # fmt: skip
    inputs = {f"{STORE_MOUNT}/{up}": _input_key(art, plan, up) for up in _producers(plan, step)}
    where = {"endpoint": art.endpoint, "region": art.region, "insecure": art.insecure}
    staging = {"bucket": loc.bucket, **{k: v for k, v in where.items() if v is not None}}
    call = call.with_spec(staging={**staging, "inputs": inputs, "outputs": outputs})
    if art.credentials:
        keys = {"AWS_ACCESS_KEY_ID": "accessKey", "AWS_SECRET_ACCESS_KEY": "secretKey"}
        eff = eff.model_copy(
            update={"secret_env": {**eff.secret_env, **{e: f"{art.credentials}/{k}" for e, k in keys.items()}}}
        )
    volume = {"name": STORE_VOLUME, "emptyDir": {}}
    return call, eff, [volume], [{"name": STORE_VOLUME, "mountPath": STORE_MOUNT}]


def check(plan: Plan, ctx: CompileContext) -> Iterator[Diagnostic]:
    """DML107 where the store cannot replace the shared volume on Argo (see the module docstring)."""
    if plan.pipeline.artifacts is None:
        return
    gcs = location(plan.pipeline.artifacts.store).scheme != "s3"  # the runtime stages through s3fs
    for name, eff in plan.steps.items():
        base = ("steps", name)
        if gcs and isinstance(eff, Train) and eff.distributed:
            yield _store_error(ctx, (*base, "strategy"), "a distributed train step (a TFJob)")
        elif gcs and isinstance(eff, Serve):
            yield _store_error(ctx, base, "a serve step (an InferenceService)")
        why = _memo_inexact(plan, name) if eff.memoize is not None else None
        if why is not None:
            path = (*base, "memoize") if plan.pipeline.steps[name].memoize else ("defaults", "memoize")
            help_ = "drop `memoize` here, or drop `artifacts` to keep the shared volume"
            message = f"with `artifacts`, Argo cannot memoize this step exactly: {why}"
            yield ctx.error(DML107, message, path, "not with an artifact store on Argo", help_)


def _memo_inexact(plan: Plan, step: str) -> str | None:
    """Why a cache hit of memoized `step` would not find the objects a local hit finds, if it would not.
    A memoized producer hands its readers the prefix it wrote (`Plan.memo_store`); an instance of a
    loop has a prefix of its own, which Argo's aggregated outputs cannot name for a reader."""
    arts = "artifact" in plan.steps[step].outputs().values()
    if arts and not plan.memo_store(step):
        return "each instance of a loop writes its own key prefix, which a cache hit cannot hand its readers"
    read = {i.root for i in plan.inputs(step) if plan.steps[i.root].outputs().get(i.output) == "artifact"}
    if any(not plan.memo_store(up) for up in read):
        return "it reads artifacts at paths that are the same in every run, so its cache key cannot tell runs apart"
    return None


def _store_error(ctx: CompileContext, path: tuple, what: str) -> Diagnostic:
    message = (
        f"with a gs:// `artifacts` store, Argo cannot run {what}: its pods stage their artifacts "
        "themselves, through s3fs (an s3:// store only)"
    )
    help_ = (
        "use GCS's S3 interoperability (an s3:// store with endpoint https://storage.googleapis.com), or `--target kfp`"
    )
    return ctx.error(DML107, message, path, "not with an artifact store on Argo", help_)
