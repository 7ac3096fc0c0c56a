"""The artifact store's layout, shared by every target: where a step instance's artifact lives.

`artifacts { store = "s3://bucket/prefix" }` puts each artifact output at
`<prefix>/<pipeline>/<run>/<step>/<instance>/<output>` (`<pipeline>` as a Kubernetes name): the shape
of KFP's output URIs (`<pipeline root>/<pipeline>/<run id>/<task>/<salt>/<name>`, kubeflow/pipelines 2.17.0
`backend/src/v2/metadata/client.go` GenerateOutputURI), with `<instance>` = `main` for a step that is
not fanned out, else the item when every item of a static `for_each` is a distinct path-safe string
(the Argo target's instance folder, `targets/argo/plan.py`), else the instance's index locally and a
digest of the node name on Argo. A local run and an Argo run therefore write the same keys under
their run's prefix; KFP's launcher picks a random salt for `<instance>`, the only part that differs.
No cloud library is imported here: `check` and `compile` use it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from dmlc.k8s import k8s_name

SAFE_SEGMENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # as the Argo target's instance folders
MAIN = "main"  # the instance segment of a step that is not fanned out


@dataclass(frozen=True)
class Location:
    scheme: str  # s3 | gs
    bucket: str
    prefix: str  # without leading or trailing "/"; may be ""

    def key(self, *parts: str) -> str:
        """The object key of `parts` under the prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def url(self, *parts: str) -> str:
        return f"{self.scheme}://{self.bucket}/{self.key(*parts)}".rstrip("/")


def location(store: str) -> Location:
    """`s3://bucket/a/b/` -> Location("s3", "bucket", "a/b") (the IR pattern has checked the shape)."""
    scheme, _, rest = store.partition("://")
    bucket, _, prefix = rest.partition("/")
    return Location(scheme, bucket, prefix.strip("/"))


def items_as_segments(items: Any) -> bool:
    """Do the items of a static `for_each` name their instances' folders and keys themselves?"""
    if not isinstance(items, list) or not items:
        return False
    if not all(isinstance(i, str) and re.match(SAFE_SEGMENT, i) for i in items):
        return False
    return len(set(items)) == len(items)


def instance_segment(for_each: Any, item: Any, index: int | None) -> str:
    """The `<instance>` part of a key for a local instance (see the module docstring)."""
    if index is None:
        return MAIN
    if items_as_segments(for_each):
        return str(item)
    return str(index)


def pipeline_segment(pipeline: str) -> str:
    """The pipeline's part of a key: its Kubernetes name, as KFP's `pipelineInfo.name` (`my_pipe` -> `my-pipe`)."""
    return k8s_name(pipeline)


def artifact_key(loc: Location, pipeline: str, run: str, step: str, instance: str, output: str) -> str:
    return loc.key(pipeline_segment(pipeline), run, step, instance, output)
