"""The runtime's own artifact staging (`StepSpec.staging`): for pods the engine copies nothing for.

Argo's TFJob and InferenceService steps are resource templates, which have no artifacts: with an
object store their pods would find no inputs and their outputs would reach no reader. So the target
puts in the spec where the inputs are (key prefixes, downloaded whole below a folder, as Argo's S3
driver loads a prefix) and where the outputs go (`dmlc.semantics.objstore`'s keys); the runtime
downloads before the step runs and, once it succeeded, uploads, the chief only (TF_CONFIG: the
`chief`, else worker 0 when the cluster has none), so that one process writes each object. A file is
one object, a folder one object per file under the key (what Argo's executor writes with
`archive: none`, and what the local executor writes). Credentials come from the environment
(`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, set by `secretKeyRef`), never from the spec.
fsspec / s3fs are imported only here, only when a spec has `staging`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dmlc.runtime.step_io import TransientError, UserError
from dmlc.semantics.spec import Staging, StepSpec


def writer() -> bool:
    """Does this process write the step's outputs? Yes, unless TF_CONFIG names another chief."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task = config.get("task") or {}
    if not task:
        return True
    if task.get("type") == "chief":
        return True
    return "chief" not in (config.get("cluster") or {}) and task.get("type") == "worker" and task.get("index") == 0


def filesystem(staging: Staging) -> Any:
    try:
        import s3fs
    except ImportError:
        raise UserError(
            "this step stages its artifacts through s3fs, which the image lacks: pip install 'dmlc[store]'"
        ) from None
    insecure = staging.insecure if staging.insecure is not None else bool((staging.endpoint or "").startswith("http:"))
    client = {"region_name": staging.region} if staging.region else {}
    config = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 3}}
    return s3fs.S3FileSystem(
        endpoint_url=staging.endpoint, client_kwargs=client, use_ssl=not insecure, config_kwargs=config,
        skip_instance_cache=True,
    )  # fmt: skip


def download(spec: StepSpec) -> None:
    """Every object under each input prefix, below its folder (a prefix with nothing: nothing, as an
    optional artifact of a skipped producer)."""
    staging = spec.staging
    if staging is None or not staging.inputs:
        return
    fs = filesystem(staging)
    for folder, prefix in staging.inputs.items():
        root = f"{staging.bucket}/{prefix.rstrip('/')}"
        for key in _guard(lambda r=root: fs.find(r), root):
            target = Path(folder) / key[len(root) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            _guard(lambda k=key, t=target: fs.get_file(k, str(t)), key)


def upload(spec: StepSpec) -> None:
    """Each artifact output of this instance to its key (the chief only); a missing one is the step's error."""
    staging = spec.staging
    if staging is None or not staging.outputs or not writer():
        return
    fs = filesystem(staging)
    outputs = Path(spec.outputs_dir or ".")
    for name, key in staging.outputs.items():
        local = outputs / name
        if not local.exists():
            raise UserError(f"output `{name}` was not written ({local})")
        files = [(local, key)] if local.is_file() else _walk(local, key)
        for path, name_ in files:
            target = f"{staging.bucket}/{name_}"
            _guard(lambda p=path, t=target: fs.put_file(str(p), t), target)


def _walk(folder: Path, key: str) -> list[tuple[Path, str]]:
    return [(p, f"{key}/{p.relative_to(folder).as_posix()}") for p in sorted(folder.rglob("*")) if p.is_file()]


def _guard(action: Any, where: str) -> Any:
    """The store's failures as the runtime's exits: refused access is the user's (1), the rest transient (75)."""
    try:
        return action()
    except PermissionError as exc:
        raise UserError(f"the artifact store refused s3://{where}: {type(exc).__name__}") from None
    except (OSError, ValueError) as exc:
        raise TransientError(f"the artifact store failed on s3://{where}: {str(exc).splitlines()[0][:200]}") from None
