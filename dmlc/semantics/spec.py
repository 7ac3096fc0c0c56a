"""The step spec: the only description of what one step instance runs (DESIGN §7.1), versioned.

`template(pipeline, name)` builds it from the validated IR, once, for every target: the *effective*
step (pipeline `defaults` and `image` applied, every IR default filled in) as typed attributes with
references still in place, its outputs, its seed, the `min_success` gates of its fan-ins and the
pipeline's volumes. Targets only serialize it: Argo puts its own placeholders where references are,
KFP and the local executor resolve them at run time. `load` reads the JSON form back inside the step
(`python -m dmlc.runtime`) into the same model, with the attributes typed and checked, so the runtime
never re-declares a default; a spec of another format version is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from dmlc import __version__
from dmlc.ir.effective import effective
from dmlc.ir.graph import refs
from dmlc.ir.model import AnyStep, OutputKind, Pipeline, Step, Train
from dmlc.ir.placement import PLACEMENT
from dmlc.semantics.values import Lookup, ResolveError, apply_min_success, resolve, to_text

SPEC_VERSION = 1
EACH = "${each}"  # the item of a fanned-out step, filled in per instance by every target


class SpecError(Exception):
    """A spec this runtime cannot run: another format version, or attributes of the wrong type."""


class Staging(BaseModel):
    """Where a step's artifacts are in the object store, for a pod the engine copies nothing for (Argo's
    TFJob and InferenceService pods): the runtime downloads `inputs` before the step and uploads
    `outputs` after it (`dmlc.runtime.staging`). Credentials are never here: the pod's environment
    (`AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, from the Secret by reference) holds them."""

    model_config = ConfigDict(extra="forbid")

    bucket: str
    endpoint: str | None = None
    region: str | None = None
    insecure: bool | None = None
    inputs: dict[str, str] = {}
    """Local folder -> key prefix: every object under the prefix is downloaded below the folder."""
    outputs: dict[str, str] = {}
    """Artifact output name -> key: `outputs_dir/<name>`, a file or a folder (one object per file)."""


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec_version: int
    """Format version of this JSON; a runtime refuses any other."""
    dmlc: str
    """The dmlc version that wrote the spec (shown when versions differ)."""
    pipeline: str
    step: str
    attrs: AnyStep
    """The effective step: every attribute with defaults applied (`for_each` is replaced by `item`)."""
    outputs: dict[str, OutputKind]
    fanned: bool = False
    """One instance per `for_each` item."""
    item: Any = None
    index: int | None = None
    seed: int
    """The step's `seed`, else a stable one per pipeline and step; see `instance_seed`."""
    volumes: dict[str, str]
    """Pipeline volume name -> mount path."""
    min_success: dict[str, int] = {}
    """Attribute path -> N: a fan-in over a step with `min_success` needs N values."""
    outputs_dir: Path | None = None
    work_dir: Path | None = None
    role: Literal["router"] | None = None
    """Set in the manifests of a sharded service: this process is its router."""
    shard: int | None = None
    shard_urls: list[str] | None = None
    foreground: bool = False
    """Serve in this process (a pod, or `--foreground`)."""
    staging: Staging | None = None
    """Set by a target whose engine does not copy this step's artifacts (see `Staging`)."""

    @property
    def kind(self) -> str:
        return self.attrs.kind

    def config(self, kind: type[Step]) -> Any:
        """The typed attributes, checked to be of `kind` (e.g. `spec.config(Train).epochs`)."""
        if not isinstance(self.attrs, kind):
            raise SpecError(f"the spec is for a `{self.attrs.kind}` step, not `{kind.__name__.lower()}`")
        return self.attrs


def base_seed(pipeline: Pipeline, name: str, step: Step) -> int:
    if isinstance(step, Train) and step.seed is not None:
        return step.seed
    return zlib.crc32(f"{pipeline.pipeline}/{name}".encode()) % 2**31


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def instance_seed(spec: StepSpec) -> int:
    """One seed per instance, equal on every target: the step's own `seed` as written, else derived
    from the base seed and the item (every engine hands over the item; not every one an index)."""
    if not spec.fanned or getattr(spec.attrs, "seed", None) is not None:
        return spec.seed
    return zlib.crc32(f"{spec.seed}/{canonical(spec.item)}".encode()) % 2**31


def instance_key(spec: StepSpec) -> str | None:
    """A short name for this instance that every target derives alike (None when not fanned out)."""
    if not spec.fanned:
        return None
    return hashlib.sha1(canonical(spec.item).encode()).hexdigest()[:12]


def gates(pipeline: Pipeline, name: str) -> dict[str, int]:
    """Attribute path -> N for every fan-in `x[*].out` over a step with `min_success`."""
    found: dict[str, int] = {}
    for path, ref in refs(pipeline.steps[name]):
        up = pipeline.steps.get(ref.root)
        if up is not None and up.min_success and ref.index == "*" and path[:1] != ("when",):
            found[".".join(map(str, path))] = up.min_success
    return found


def template(pipeline: Pipeline, name: str) -> StepSpec:
    """The spec of step `name` with references in place: what every target serializes."""
    step = effective(pipeline, name)
    fanned = step.for_each is not None
    return StepSpec(
        spec_version=SPEC_VERSION,
        dmlc=__version__,
        pipeline=pipeline.pipeline,
        step=name,
        attrs=step.model_copy(update={"for_each": None}) if fanned else step,
        outputs=step.outputs(),
        fanned=fanned,
        item=EACH if fanned else None,
        seed=base_seed(pipeline, name, step),
        volumes={n: v.mount for n, v in pipeline.volumes.items()},
        min_success=gates(pipeline, name),
    )


def dump(spec: StepSpec) -> dict[str, Any]:
    """The JSON form (references as `${...}` strings); None-valued launch-only fields left out, and
    placement and identity too: they say where the pod runs, which the runtime in it never reads."""
    data = spec.model_dump(mode="json", by_alias=True)
    strip_placement(data["attrs"])
    for key in ("outputs_dir", "work_dir", "role", "shard", "shard_urls", "staging"):
        if data[key] is None:
            del data[key]
    if not data["foreground"]:
        del data["foreground"]
    return data


def strip_placement(attrs: dict[str, Any]) -> dict[str, Any]:
    """`attrs` (a dumped step) without placement and identity, and without an unset `accelerator`."""
    for key in PLACEMENT:
        attrs.pop(key, None)
    if isinstance(attrs.get("resources"), dict) and attrs["resources"].get("accelerator") is None:
        attrs["resources"].pop("accelerator", None)
    return attrs


def load(data: Any) -> StepSpec:
    """The spec of one instance from its JSON form, references already resolved; raises SpecError."""
    if not isinstance(data, dict):
        raise SpecError("the spec must be a JSON object")
    version = data.get("spec_version")
    if version != SPEC_VERSION:
        raise SpecError(
            f"this spec has format version {version!r} (written by dmlc {data.get('dmlc', '?')}); this runtime "
            f"(dmlc {__version__}) reads version {SPEC_VERSION}: compile with the dmlc of the image, or rebuild it"
        )
    try:
        attrs = apply_min_success(data.get("attrs") or {}, data.get("min_success") or {})
        return StepSpec.model_validate({**data, "attrs": attrs}, context={"resolved": True})
    except ResolveError as exc:
        raise SpecError(str(exc)) from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False))
        raise SpecError(f"invalid spec: {problems}") from None


# -- one instance at run time (the local executor and the KFP shim; Argo substitutes in the engine) ------
def instantiate(template: dict[str, Any], lookup: Lookup, **where: Any) -> dict[str, Any]:
    """The JSON spec of one instance: the template's attributes resolved through `lookup`, plus `where`
    (item, index, outputs_dir, work_dir, ...). The runtime checks the types when it loads it."""
    spec = {**template, **where, "attrs": resolve(template["attrs"], lookup)}
    if not spec.get("fanned"):
        spec["item"] = None
    return spec


def command(spec: dict[str, Any]) -> list[str] | None:
    """The argument list of a `command` task (references already resolved), None for runtime steps."""
    attrs = spec["attrs"]
    if attrs["kind"] not in ("task", "finally") or not attrs.get("command"):
        return None
    return [to_text(a) for a in attrs["command"] + attrs.get("args", [])]


def environment(spec: dict[str, Any]) -> dict[str, str]:
    """What every target puts in a step's environment: the step's `env`, then the contract variables
    (which win: a step cannot move its own outputs folder)."""
    env = {k: to_text(v) for k, v in (spec["attrs"].get("env") or {}).items()}
    env.update({"DMLC_OUTPUTS": str(spec["outputs_dir"]), "DMLC_STEP": spec["step"]})
    if command(spec) is None:
        env["DMLC_WORK_DIR"] = str(spec["work_dir"])
    if spec.get("fanned"):
        env["DMLC_ITEM"] = to_text(spec["item"])
    return env
