"""S3 artifacts of container templates, as Argo's executor handles them (argo-workflows v4.1.2).

- Inputs (`workflow/executor/executor.go` LoadArtifacts, before the main container): each input
  artifact with an `s3` location is fetched to its `path`, which the main container sees (the
  `input-artifacts` volume, `workflow/controller/workflowpod.go` addInputArtifactsVolumes). The S3
  driver (`workflow/artifacts/s3/s3.go` LoadS3Artifact) gets the key as an object, else, when the key is
  a prefix ("directory", IsDirectory), every object under `key/` into `path/<rest of the key>`; a key
  that is neither is NotFound, which an `optional` artifact skips (LoadArtifacts: `art.Optional &&
  argoerrs.IsCode(argoerrs.CodeNotFound, err)`), else the pod fails (init: Error).
- Outputs (executor.go SaveArtifacts, in the wait container after the main container): each output
  artifact's `path` is uploaded to its key; with `archive: {none: {}}` a file is one object and a
  folder one object per file under `key/` (s3.go PutDirectory); a missing path fails the node unless
  `optional` (executor.go: "no such file or directory").
- Endpoint: `http://` when `insecure`, else `https://`; credentials from the Secrets named by
  `accessKeySecret` / `secretKeySecret`, which the replay takes from `Ctx.secrets` ({name: {key: value}}).
  Only `s3` is replayed; a `gcs` / other location is an Error "not replayed".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.argo_replay.model import Ctx


class ArtifactError(Exception):
    """The executor failed on an artifact: the node is an Error with this message."""


def _client(ctx: Ctx, s3: dict[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    secrets = getattr(ctx, "secrets", {}) or {}

    def secret(ref: dict[str, Any] | None) -> str | None:
        return None if not ref else secrets.get(ref.get("name"), {}).get(ref.get("key"))

    scheme = "http" if s3.get("insecure") else "https"
    return boto3.client(
        "s3",
        endpoint_url=f"{scheme}://{s3['endpoint']}",
        aws_access_key_id=secret(s3.get("accessKeySecret")),
        aws_secret_access_key=secret(s3.get("secretKeySecret")),
        region_name=s3.get("region") or "us-east-1",
        config=Config(retries={"max_attempts": 1}),
    )


def _s3(art: dict[str, Any]) -> dict[str, Any]:
    if "s3" not in art:
        where = ", ".join(k for k in art if k not in ("name", "path", "optional", "archive")) or "no location"
        raise ArtifactError(f"artifact {art.get('name')}: {where} is not replayed")
    return art["s3"]


def load_inputs(ctx: Ctx, tmpl: dict[str, Any], pod_dir: Path) -> dict[str, Path]:
    """Input artifacts fetched into the pod's folder; mount path -> folder (or file) for the main container."""
    out: dict[str, Path] = {}
    for art in (tmpl.get("inputs") or {}).get("artifacts") or []:
        s3 = _s3(art)
        client, bucket, key = _client(ctx, s3), s3["bucket"], s3["key"]
        dest = pod_dir / "input-artifacts" / art["name"]
        if not _guarded(lambda c=client, b=bucket, k=key, d=dest: _get(c, b, k, d), key):
            if art.get("optional"):
                continue
            raise ArtifactError(f"failed to load artifact '{art['name']}': key {key} does not exist")
        out[art["path"].rstrip("/")] = dest
    return out


def _get(client: Any, bucket: str, key: str, dest: Path) -> bool:
    from botocore.exceptions import ClientError

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        client.download_file(bucket, key, str(dest))
        return True
    except ClientError as err:
        if err.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
            raise ArtifactError(f"s3 GetObject {key}: {err}") from None
    prefix = key.rstrip("/") + "/"
    found = False
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            target = dest / obj["Key"][len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))
            found = True
    return found


def save_outputs(ctx: Ctx, tmpl: dict[str, Any], mapped: Any) -> None:
    """Output artifacts uploaded from the main container's paths (`mapped`: its mount map)."""
    for art in (tmpl.get("outputs") or {}).get("artifacts") or []:
        s3 = _s3(art)
        if "none" not in (art.get("archive") or {}):
            raise ArtifactError(f"artifact {art['name']}: only `archive: {{none: {{}}}}` is replayed")
        local = Path(mapped(art["path"]))
        if not local.exists():
            if art.get("optional"):
                continue
            raise ArtifactError(f"wait: Error (exit code 1): open /mainctrfs{art['path']}: no such file or directory")
        client, bucket, key = _client(ctx, s3), s3["bucket"], s3["key"]
        files = [(local, key)] if local.is_file() else _walk(local, key)
        for path, name in files:
            _guarded(lambda c=client, p=path, b=bucket, n=name: c.upload_file(str(p), b, n), name)


def _guarded(action: Any, key: str) -> Any:
    """The S3 client's own failures (connection refused, access denied) are the node's Error."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return action()
    except (BotoCoreError, ClientError) as err:
        raise ArtifactError(f"s3 {key}: {err}") from None


def _walk(folder: Path, key: str) -> list[tuple[Path, str]]:
    return [(p, f"{key}/{p.relative_to(folder).as_posix()}") for p in sorted(folder.rglob("*")) if p.is_file()]
