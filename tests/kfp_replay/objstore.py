"""The launcher's object store for `s3://` pipeline roots (kubeflow/pipelines 2.17.0).

- Pipeline root: the run's `pipeline_root`, which the API server takes from the compiled pipeline's
  `defaultPipelineRoot` when the run names none (`backend/src/apiserver/template/v2_template.go`
  RunWorkflow), else the `kfp-launcher` ConfigMap's `defaultPipelineRoot` (`backend/src/v2/config/env.go`);
  `metadata/client.go` GetPipeline appends `/<pipeline name>/<run id>`, and the driver gives each output
  artifact `<that>/<task>/<salt>/<name>` (`driver.go` provisionOutputs, GenerateOutputURI).
- Where the store is: the `kfp-launcher` ConfigMap's `providers.s3.default` (endpoint, disableSSL, region,
  credentials.secretRef {secretName, accessKeyKey, secretKeyKey}), given to `replay(..., store=...)` as
  `Store(endpoint_url, key, secret, region)`.
- Launcher (`component/launcher_v2.go`): before the executor, downloadArtifacts fetches each remote input
  artifact to its local path (`LocalPathForURI`: `s3://b/k` -> `/s3/b/k`, the pod's own folder),
  `objectstore.DownloadBlob` taking a key prefix as a folder; after it, uploadOutputArtifacts puts each
  output's local path to its URI, a folder file by file (`objectstore.UploadBlob` walks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class Store:
    endpoint_url: str
    key: str
    secret: str
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.key, aws_secret_access_key=self.secret,
            region_name=self.region,
        )  # fmt: skip


def split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def download(store: Store, uri: str, dest: Path) -> None:
    """DownloadBlob: the object at the URI, else every object under `uri/` into the folder `dest`."""
    from botocore.exceptions import ClientError

    client, (bucket, key) = store.client(), split(uri)
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        client.download_file(bucket, key, str(dest))
        return
    except ClientError:
        pass
    prefix = key.rstrip("/") + "/"
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents") or []:
            target = dest / obj["Key"][len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))


def upload(store: Store, local: Path, uri: str) -> None:
    """UploadBlob: a file as one object, a folder one object per file under `uri/`."""
    client, (bucket, key) = store.client(), split(uri)
    files = [(local, key)] if local.is_file() else [
        (p, f"{key}/{p.relative_to(local).as_posix()}") for p in sorted(local.rglob("*")) if p.is_file()
    ]  # fmt: skip
    for path, name in files:
        client.upload_file(str(path), bucket, name)
