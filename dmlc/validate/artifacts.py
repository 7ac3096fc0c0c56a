"""Validation of the pipeline's `artifacts { }` store (stage 3): attributes that only an S3 store reads.

Takes the validation context; gives DML026 at `endpoint` / `region` / `insecure` of a `gs://` store,
which Argo's `gcs:` artifact and KFP's GCS provider would drop without a word.
"""

from __future__ import annotations

from dmlc.diagnostics.catalogue import DML026
from dmlc.diagnostics.model import Diagnostic
from dmlc.validate.context import Ctx

S3_ONLY = ("endpoint", "region", "insecure")


def check_artifacts(ctx: Ctx) -> list[Diagnostic]:
    art = ctx.pipeline.artifacts
    if art is None or not art.store.startswith("gs://"):
        return []
    help_ = "a gs:// store is Google Cloud Storage itself: remove it (S3-compatible stores use s3://)"
    return [
        ctx.diag(DML026, f"`{attr}` applies to an s3:// store only", ("artifacts", attr), "not with gs://", help_)
        for attr in S3_ONLY
        if getattr(art, attr) is not None
    ]
