"""KFP target, stage 4 (emit), direct path: the volumes of `build.py`'s `_volumes`, as kfp's compiler writes them.

Takes the pipeline's volumes (and whether a step is launched, which needs the run's data volume); gives
the `CreatePVC` tasks (kfp-kubernetes' own component, whose `ComponentSpec` is read from kfp-kubernetes
itself: it is imported only for pipelines that have volumes) and the `pvcMount` entries that mount a
claim in a task's pod. The byte-identity tests (`test_kfp_direct.py`) compare the result with kfp's.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from dmlc_targets.kfp import manifests

from dmlc.k8s import k8s_name
from dmlc.units import format_memory

DEFAULT_STORAGE_CLASS = "standard"  # as build.py: the 2.17 backend's own default


@lru_cache(maxsize=1)
def create_pvc() -> tuple[dict[str, Any], dict[str, Any]]:
    """kfp-kubernetes' CreatePVC component as its ComponentSpec and executor container (JSON form)."""
    from google.protobuf import json_format
    from kfp import kubernetes
    from kfp.compiler import pipeline_spec_builder

    spec = kubernetes.CreatePVC.component_spec
    component = pipeline_spec_builder._build_component_spec_from_component_spec_structure(spec)
    return json_format.MessageToDict(component), {"image": spec.implementation.container.image}


def claims(plan: Any) -> list[tuple[str | None, dict[str, Any], str]]:
    """(volume name or None for the data volume, CreatePVC arguments, display name) in `build.py`'s order."""
    out: list[tuple[str | None, dict[str, Any], str]] = []
    options = plan.options
    if any(p.launched for p in plan.steps.values()):
        data = {"pvc_name_suffix": f"-{manifests.DATA_VOLUME}", "access_modes": ["ReadWriteMany"],
                "size": options.data_volume_size, "storage_class_name": options.data_volume_class}  # fmt: skip
        out.append((None, data, "volume for launched workloads"))
    for name, vol in plan.pipeline.volumes.items():
        args = {"pvc_name_suffix": f"-{k8s_name(name)}", "access_modes": [vol.access], "size": format_memory(vol.size),
                "storage_class_name": vol.storage_class or DEFAULT_STORAGE_CLASS}  # fmt: skip
        out.append((name, args, f"volume {name}"))
    return out


def mount(mount_path: str, claim_task: str) -> dict[str, Any]:
    """kfp-kubernetes' mount_pvc of a claim made by task `claim_task` (its output `name`)."""
    output = {"taskOutputParameter": {"outputParameterKey": "name", "producerTask": claim_task}}
    return {"mountPath": mount_path, "pvcNameParameter": output, **output}
