"""Issue 16's reviewer-found defects: each fix and the input that showed it.

`resources` in `defaults` merge field by field (and DML028 judges the effective step), target options
are strict booleans, `accelerator` refuses Kubernetes' native and quota names, metric names the runtime
cannot compute are refused at check time, and the diagnostics' wording and counts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file, load
from dmlc.ir.effective import effective


def write(tmp_path: Path, doc: dict[str, Any], name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False))
    return str(path)


def gpu_doc(defaults: dict[str, Any], own: dict[str, Any] | None) -> dict[str, Any]:
    step: dict[str, Any] = {"kind": "task", "command": ["true"]}
    if own is not None:
        step["resources"] = own
    return {"pipeline": "p", "defaults": {"resources": defaults}, "steps": {"a": step}}


def argo_resources(path: str) -> dict[str, Any]:
    doc = yaml.safe_load(compile_file(path, "argo"))
    (template,) = [t for t in doc["spec"]["templates"] if t["name"] == "a"]
    return template["container"]["resources"]["limits"]


def kfp_resources(path: str) -> dict[str, Any]:
    docs = [d for d in yaml.safe_load_all(compile_file(path, "kfp")) if d]
    return docs[0]["deploymentSpec"]["executors"]["exec-a"]["container"]["resources"]


# -- 1: `resources` in `defaults` merge field by field --------------------------------------------------
def test_a_steps_gpu_keeps_the_default_accelerator_and_cpu(tmp_path: Path) -> None:
    path = write(tmp_path, gpu_doc({"cpu": 3, "gpu": 1, "accelerator": "amd.com/gpu"}, {"gpu": 2}))
    assert check_file(path) == []
    res = effective(load(path).pipeline, "a").resources
    assert (res.cpu, res.gpu, res.accelerator, res.memory) == (3000, 2, "amd.com/gpu", None)
    assert argo_resources(path) == {"cpu": "3", "amd.com/gpu": "2"}
    kfp = kfp_resources(path)
    assert (kfp["accelerator"]["resourceType"], kfp["accelerator"]["resourceCount"]) == ("amd.com/gpu", "2")
    assert kfp["resourceCpuLimit"] == "3"


def test_a_steps_own_field_wins_and_zero_gpus_opts_out(tmp_path: Path) -> None:
    defaults = {"cpu": 3, "memory": "1Gi", "gpu": 1}
    path = write(tmp_path, gpu_doc(defaults, {"cpu": 1, "gpu": 0}))
    res = effective(load(path).pipeline, "a").resources
    assert (res.cpu, res.memory, res.gpu) == (1000, 2**30, 0)
    assert argo_resources(path) == {"cpu": "1", "memory": "1Gi"}


def test_a_default_accelerator_serves_the_steps_that_ask_for_gpus(tmp_path: Path) -> None:
    path = write(tmp_path, gpu_doc({"accelerator": "amd.com/gpu"}, {"gpu": 2}))
    assert check_file(path) == []
    assert argo_resources(path) == {"amd.com/gpu": "2"}


@pytest.mark.parametrize(
    ("defaults", "own", "where"),
    [
        ({"accelerator": "amd.com/gpu"}, {"cpu": 1}, "defaults"),  # no step asks for GPUs
        ({"accelerator": "amd.com/gpu", "gpu": 1}, {"gpu": 0}, "defaults"),
        ({"cpu": 1}, {"accelerator": "amd.com/gpu"}, "steps"),
    ],
)
def test_an_accelerator_no_effective_step_uses_is_dml028(
    tmp_path: Path, defaults: dict, own: dict, where: str
) -> None:
    path = write(tmp_path, gpu_doc(defaults, own))
    (diag,) = check_file(path)
    lines = Path(path).read_text().splitlines()
    block = next(i for i, line in enumerate(lines) if line.startswith(where))
    assert diag.code == "DML028" and diag.span.line - 1 > block and "accelerator" in lines[diag.span.line - 1]
    assert where == "steps" or diag.span.line - 1 < next(i for i, x in enumerate(lines) if x.startswith("steps"))


# -- 2: target options are what the JSON Schema says (no lax "yes" / 1 for a boolean) -----------------
def _bool_options() -> list[tuple[str, str]]:
    from dmlc import targets

    found = []
    for name in targets.names():
        model = targets.get(name).options_model  # type: ignore[union-attr]
        props = model.model_json_schema()["properties"]
        found += [(name, field) for field, prop in props.items() if prop.get("type") == "boolean"]
    return found


def test_every_boolean_target_option_is_found() -> None:
    assert {("argo", "prometheus"), ("argo", "generate_name")} <= set(_bool_options())


@pytest.mark.parametrize(("target", "option"), _bool_options())
@pytest.mark.parametrize("value", ["yes", 1, "true", 0, "false"])
def test_a_boolean_target_option_takes_only_true_or_false(
    tmp_path: Path, target: str, option: str, value: Any
) -> None:
    doc = {"pipeline": "p", "steps": {"a": {"kind": "task", "command": ["true"]}}, "targets": {target: {}}}
    doc["targets"][target][option] = value
    with pytest.raises(DmlError) as info:
        compile_file(write(tmp_path, doc), target)
    assert [d.code for d in info.value.diagnostics] == ["DML101"]
    doc["targets"][target][option] = True
    assert compile_file(write(tmp_path, doc), target)
