"""The memoization key recipe (shared by every target, DESIGN §2.4).

key = sha256 of: the step's resolved spec (its attributes after defaults), its image, the dmlc
version, the `for_each` item, and the digests of its input artifacts/values. Targets that know
inputs only at run time (Argo, KFP) combine `spec_digest` with engine-substituted inputs.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from dmlc import __version__
from dmlc.ir.effective import effective
from dmlc.ir.model import Pipeline
from dmlc.semantics.spec import strip_placement

# Attributes that change how a step is run, not what it computes.
NOT_IN_KEY = ("memoize", "retry", "timeout", "priority", "labels", "after", "when", "wait", "min_success", "for_each")


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def spec_recipe(pipeline: Pipeline, name: str) -> dict[str, Any]:
    step = effective(pipeline, name)
    # placement says where the step runs, not what it computes (spec.strip_placement)
    spec = strip_placement(step.model_dump(mode="json", by_alias=True, exclude=set(NOT_IN_KEY)))
    return {"step": spec, "image": step.image, "dmlc": __version__}


def spec_digest(pipeline: Pipeline, name: str) -> str:
    return hashlib.sha256(canonical(spec_recipe(pipeline, name)).encode()).hexdigest()


def memo_recipe(pipeline: Pipeline, name: str, item: Any, inputs: dict[str, str]) -> dict[str, Any]:
    """The full recipe: spec + image + version + item + input digests (name -> sha256)."""
    recipe = spec_recipe(pipeline, name)
    recipe.update({"item": item, "inputs": dict(sorted(inputs.items()))})
    step = pipeline.steps[name]
    if step.memoize is not None and step.memoize.key:
        recipe["user_key"] = step.memoize.key
    return recipe


def memo_key(recipe: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(recipe).encode()).hexdigest()
