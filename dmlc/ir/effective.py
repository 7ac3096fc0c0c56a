"""Effective step settings (used by every target): pipeline `defaults` and `image` folded into a step.

Targets and the executor call `effective(pipeline, name)` instead of reading defaults themselves,
so every target applies them the same way.
"""

from __future__ import annotations

from dmlc.ir.model import DEFAULT_IMAGE, GPU_IMAGE, Pipeline, Resources, Step
from dmlc.ir.placement import PLACEMENT

INHERITED = ("retry", "timeout", "resources", "memoize", *PLACEMENT)


def effective(pipeline: Pipeline, name: str) -> Step:
    """A copy of step `name` with unset `retry`/`timeout`/`resources`/`memoize`/`image` and placement
    (`node_selector`, `tolerations`, `affinity`, `service_account`) taken from the pipeline; `resources`
    merge field by field (a step that asks for GPUs on the stock image gets its GPU variant)."""
    step = pipeline.steps[name]
    updates: dict[str, object] = {}
    defaults = pipeline.defaults
    if defaults is not None:
        for attr in INHERITED:
            if attr == "memoize" and step.kind == "finally":  # the exit handler is never cached
                continue
            if getattr(step, attr) is None and getattr(defaults, attr) is not None:
                updates[attr] = getattr(defaults, attr)
        if step.resources is not None and defaults.resources is not None:
            updates["resources"] = merged_resources(defaults.resources, step.resources)
    if step.image is None:
        resources = updates.get("resources", step.resources)
        gpu = bool(getattr(resources, "gpu", None))  # the stock image's TensorFlow cannot use a GPU
        updates["image"] = GPU_IMAGE if gpu and pipeline.image == DEFAULT_IMAGE else pipeline.image
    return step.model_copy(update=updates) if updates else step


def merged_resources(defaults: Resources, own: Resources) -> Resources:
    """`resources` merge field by field, as Argo's templateDefaults do: a step's own field wins, the
    fields it leaves unset come from `defaults` (`gpu = 2` keeps the default `accelerator` and `cpu`)."""
    own_fields = {k: v for k, v in own if v is not None}
    return defaults.model_copy(update=own_fields)
