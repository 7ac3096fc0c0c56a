"""The artifact store of a local run (local executor, stage 4): `artifacts { store }` through fsspec.

Takes the pipeline's `artifacts` block, the run's secrets file and dmlc's environment; gives a `Remote`
that writes each finished instance's artifacts to `dmlc.semantics.objstore`'s keys (the keys the
cluster targets use, so a local run and a cluster run share objects) and reads them back. The
content-addressed cache and the run folder stay as they are: the store is written beside them.

Credentials: the secret `credentials` names (keys `accessKey` / `secretKey`, Argo's convention) from
`--secrets FILE`, else `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` of the environment; without
`credentials`, s3fs's own chain (environment, profile, instance role). Values go to s3fs only, never
into a message, the store or a spec. Every upload is verified (size, and the MD5 against the ETag of a
single-part object); an object already there with the same size and digest is not sent again, so a
resumed run re-commits without re-uploading, and a resumed instance whose artifact is gone from the run
folder gets it back from the store, checked against the digest the run recorded. Every failure is a
coded error (DML212 cannot use the store: no endpoint, refused, bad credentials, no bucket; DML213 an
object is not what was written), never a traceback. s3fs is imported only when a run uses a store.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dmlc.diagnostics.catalogue import DML207, DML212, DML213
from dmlc.diagnostics.model import Diagnostic, DmlError, Label
from dmlc.ir.model import Artifacts
from dmlc.semantics.objstore import Location, artifact_key, instance_segment, location

CHUNK = 1 << 20


def _fail(code: Any, message: str, help_: str) -> DmlError:
    return DmlError([Diagnostic(code, message, Label(None), help=help_)])


def credentials(art: Artifacts, file: Mapping[str, Mapping[str, str]], environ: Mapping[str, str]) -> dict[str, str]:
    """s3fs's key/secret for the store; {} leaves s3fs to its own chain. DML207 when a named secret has no value."""
    if art.credentials is None:
        return {}
    keys = file.get(art.credentials, {})
    key = keys.get("accessKey", environ.get("AWS_ACCESS_KEY_ID"))
    secret = keys.get("secretKey", environ.get("AWS_SECRET_ACCESS_KEY"))
    if key is None or secret is None:
        help_ = (
            f"pass `--secrets FILE` with `{art.credentials}: {{accessKey: ..., secretKey: ...}}` in it, or export"
            " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY before `dmlc run`"
        )
        message = f"the artifact store's credentials `{art.credentials}` have no value for this run"
        raise _fail(DML207, message, help_)
    return {"key": key, "secret": secret}


class Remote:
    """One run's view of the store: upload / verify / download under `loc`."""

    def __init__(self, art: Artifacts, creds: dict[str, str]) -> None:
        self.art, self.loc = art, location(art.store)
        self.fs = _filesystem(art, self.loc, creds)

    def check(self) -> None:
        """Before anything runs: the endpoint answers, the credentials are taken, the bucket exists."""
        self._call(lambda: self.fs.ls(self.loc.bucket, refresh=True), self.loc.bucket)

    def upload(self, local: Path, key: str) -> None:
        """`local` (a file, or a folder: one object per file under `key/`) at `key`, each object verified."""
        files = [(local, key)] if local.is_file() else _walk(local, key)
        for path, name in files:
            target = f"{self.loc.bucket}/{name}"
            if self._same(path, target):
                continue
            self._call(lambda p=path, t=target: self.fs.put_file(str(p), t), target)
            if not self._same(path, target):
                raise _fail(DML213, f"{self.loc.scheme}://{target} differs from {path} after the upload", _HELP_213)

    def download(self, key: str, dest: Path) -> None:
        """The object(s) at `key` into `dest` (a file, or a folder for a prefix)."""
        target = f"{self.loc.bucket}/{key}"
        info = self._call(lambda: self.fs.info(target), target)
        if info.get("type") == "directory":
            self._call(lambda: self.fs.get(target + "/", str(dest) + "/", recursive=True), target)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            self._call(lambda: self.fs.get_file(target, str(dest)), target)

    def instance_keys(self, where: tuple[str, str, str, Any, Any], outputs: dict[str, Any]) -> dict[str, str]:
        """artifact output -> key, for (pipeline, run id, step name, step, instance) of the executor."""
        pipeline, run, name, step, inst = where
        segment = instance_segment(step.for_each, inst.item, inst.index)
        return {
            out: artifact_key(self.loc, pipeline, run, name, segment, out)
            for out, kind in step.outputs().items()
            if kind == "artifact" and out in outputs
        }

    def put_instance(self, where: tuple[str, str, str, Any, Any], outputs: dict[str, Any]) -> None:
        """A finished instance's artifacts, each verified; before its commit, so a run killed meanwhile
        redoes only this instance."""
        for out, key in self.instance_keys(where, outputs).items():
            self.upload(Path(outputs[out]), key)

    def get_instance(self, where: tuple, outputs: dict[str, Any], digests: dict[str, str], digest: Any) -> None:
        """A resumed instance's artifacts gone from the run folder, read back and checked against the
        digests the run recorded (`digest`: the cache's digest of a file or folder)."""
        for out, key in self.instance_keys(where, outputs).items():
            path = Path(outputs[out])
            if path.exists():
                continue
            self.download(key, path)
            if digests.get(out) is not None and digest(path) != digests[out]:
                message = f"{path}, read back from the artifact store, is not what this run recorded"
                raise _fail(DML213, message, "the object was replaced since the run wrote it; run the step anew")

    def keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` (relative to it)."""
        base = f"{self.loc.bucket}/{prefix}".rstrip("/")
        found = self._call(lambda: self.fs.find(base), base)
        return sorted(f.removeprefix(base + "/") for f in found)

    def _same(self, path: Path, target: str) -> bool:
        try:
            info = self.fs.info(target, refresh=True)
        except FileNotFoundError:
            return False
        except Exception as exc:  # the store's own failure, as in _call
            raise _store_error(self.loc, target, exc) from None
        if info.get("size") != path.stat().st_size:
            return False
        etag = str(info.get("ETag", "")).strip('"')
        return "-" in etag or not etag or etag == _md5(path)  # a multipart ETag is no MD5: the size decides

    def _call(self, action: Any, what: str) -> Any:
        try:
            return action()
        except Exception as exc:  # s3fs / botocore / aiohttp: each mapped to a coded error below
            raise _store_error(self.loc, what, exc) from None


_HELP_213 = "run again with --resume: the instance is uploaded afresh; if it repeats, check the store's proxy or quota"


def _filesystem(art: Artifacts, loc: Location, creds: dict[str, str]) -> Any:
    if loc.scheme != "s3":
        help_ = "use an s3:// store locally (MinIO, Ceph and GCS's S3 interoperability all speak it)"
        raise _fail(DML212, f"a local run cannot use the {loc.scheme}:// store {art.store}", help_)
    try:
        import s3fs
    except ImportError:
        message = "the artifact store needs s3fs, which is not installed"
        raise _fail(DML212, message, "pip install 'dmlc[store]'") from None
    client: dict[str, Any] = {"region_name": art.region} if art.region else {}
    insecure = art.insecure if art.insecure is not None else bool(art.endpoint and art.endpoint.startswith("http:"))
    config = {"connect_timeout": 5, "read_timeout": 60, "retries": {"max_attempts": 2}}
    return s3fs.S3FileSystem(
        endpoint_url=art.endpoint, client_kwargs=client, use_ssl=not insecure, config_kwargs=config,
        skip_instance_cache=True, **creds,
    )  # fmt: skip


def _store_error(loc: Location, what: str, exc: BaseException) -> DmlError:
    where = f"{loc.scheme}://{what}"
    text = str(exc).split("\n")[0][:200]
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError) and "bucket" in text.lower():
        return _fail(DML212, f"the bucket of {where} does not exist", f"create the bucket `{loc.bucket}` first")
    if isinstance(exc, FileNotFoundError):
        return _fail(DML212, f"{where} is not in the artifact store", "was the run that wrote it cleaned up?")
    if isinstance(exc, PermissionError) or "credential" in text.lower() or "AccessDenied" in text:
        help_ = "check the secret named by `credentials` (keys accessKey and secretKey) and its permissions"
        return _fail(DML212, f"the artifact store refused the credentials for {where}: {text}", help_)
    if "connect" in (name + text).lower() or isinstance(exc, ConnectionError | TimeoutError):
        help_ = "check `endpoint` (and that the server runs); `insecure = true` for a plain http endpoint"
        return _fail(DML212, f"cannot reach the artifact store for {where}: {text}", help_)
    return _fail(DML212, f"the artifact store failed on {where}: {name}: {text}", "check the store's endpoint and logs")


def _walk(folder: Path, key: str) -> list[tuple[Path, str]]:
    return [(p, f"{key}/{p.relative_to(folder).as_posix()}") for p in sorted(folder.rglob("*")) if p.is_file()]


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def open_remote(art: Artifacts | None, file: Mapping[str, Mapping[str, str]], environ: Mapping[str, str] = os.environ):
    """The run's Remote, checked, or None without a store."""
    if art is None:
        return None
    remote = Remote(art, credentials(art, file, environ))
    remote.check()
    return remote
