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
def test_an_accelerator_no_effective_step_uses_is_dml028(tmp_path: Path, defaults: dict, own: dict, where: str) -> None:
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
def test_a_boolean_target_option_takes_only_true_or_false(tmp_path: Path, target: str, option: str, value: Any) -> None:
    doc = {"pipeline": "p", "steps": {"a": {"kind": "task", "command": ["true"]}}, "targets": {target: {}}}
    doc["targets"][target][option] = value
    with pytest.raises(DmlError) as info:
        compile_file(write(tmp_path, doc), target)
    assert [d.code for d in info.value.diagnostics] == ["DML101"]
    doc["targets"][target][option] = True
    assert compile_file(write(tmp_path, doc), target)


# -- 3: `accelerator` is an extended resource name (not native, not a quota name) ---------------------
@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("amd.com/gpu", True),
        ("nvidia.com/gpu", True),
        ("kubernetes.io/gpu", False),
        ("foo.kubernetes.io/gpu", False),
        ("xkubernetes.io/gpu", False),  # helper.IsPrefixedNativeResource: strings.Contains "kubernetes.io/"
        ("requests.nvidia.com/gpu", False),
        ("my-requests.example.com/gpu", True),
    ],
)
def test_accelerator_refuses_native_and_quota_names_as_the_schema_does(tmp_path: Path, name: str, ok: bool) -> None:
    import jsonschema

    from dmlc.schema import schema

    doc = gpu_doc({}, {"gpu": 1, "accelerator": name})
    diags = check_file(write(tmp_path, doc))
    assert (diags == []) is ok
    if not ok:
        (diag,) = diags
        assert diag.code == "DML020" and "accelerator" in diag.message and "kubernetes.io" in (diag.help or "")
    assert jsonschema.Draft202012Validator(schema()).is_valid(doc) is ok


# -- 5: the diagnostics say what is wrong, once ----------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "label", "help_"),
    [
        ("Trainer", "not in the expected format", "a Kubernetes name"),
        ("${params.pool}", "not in the expected format", "a Kubernetes name"),
        ("a" * 254, "254 characters", None),
    ],
)
def test_a_bad_service_account_says_what_format_is_expected(
    tmp_path: Path, value: str, label: str, help_: str | None
) -> None:
    doc = {"pipeline": "p", "params": {"pool": "x"}, "steps": {"a": {"kind": "task", "command": ["true"]}}}
    doc["steps"]["a"]["service_account"] = value
    (diag,) = check_file(write(tmp_path, doc))
    assert diag.code == "DML020" and diag.primary.note == label, diag
    assert "wrong type" not in diag.primary.note and "expects a string" not in diag.message
    assert help_ is None or help_ in (diag.help or "")
    assert help_ is not None or "longer than 253" in diag.message


def test_a_retry_code_out_of_range_is_named_by_its_index(tmp_path: Path) -> None:
    doc = {"pipeline": "p", "steps": {"a": {"kind": "task", "command": ["true"], "retry": {"on": [75, 999]}}}}
    (diag,) = check_file(write(tmp_path, doc))
    assert diag.code == "DML022" and diag.message.startswith("`on[1]`"), diag.message


def test_a_default_kfp_cannot_express_is_reported_once(tmp_path: Path) -> None:
    steps = {n: {"kind": "task", "command": ["true"]} for n in "abc"}
    steps["d"] = {"kind": "task", "command": ["true"], "service_account": "own"}
    path = write(tmp_path, {"pipeline": "p", "defaults": {"service_account": "runner"}, "steps": steps})
    with pytest.raises(DmlError) as info:
        compile_file(path, "kfp")
    lines = Path(path).read_text().splitlines()
    spots = [(d.code, lines[d.span.line - 1].strip()) for d in info.value.diagnostics]
    assert spots == [("DML100", "service_account: runner"), ("DML100", "service_account: own")]


# -- 4: metric names the runtime cannot compute are refused by check (and by the JSON Schema) -----------
def metrics_doc(evaluate: list[str] | None = None, select: str | None = None) -> dict[str, Any]:
    steps: dict[str, Any] = {
        "data": {"kind": "ingest", "dataset": "digits"},
        "model": {"kind": "train", "data": "${data.dataset}"},
    }
    if evaluate is not None:
        steps["ev"] = {"kind": "evaluate", "model": "${model.model}", "data": "${data.dataset}", "metrics": evaluate}
    if select is not None:
        steps["best"] = {"kind": "select", "models": ["${model.model}"], "metric": select}
    return {"pipeline": "p", "params": {"m": "f1"}, "steps": steps, "targets": {"argo": {"prometheus": True}}}


@pytest.mark.parametrize(
    ("evaluate", "select", "code", "where", "help_"),
    [
        (["accuracy", "top-5"], None, "DML023", "- top-5", "use one of: accuracy, loss, error"),
        (["acuracy"], None, "DML023", "- acuracy", "`accuracy`"),
        (["f1", "precison"], None, "DML023", "- precison", "`precision`"),
        (None, "", "DML022", "metric: ''", None),
    ],
)
def test_a_metric_the_runtime_cannot_compute_is_refused_at_the_attribute(
    tmp_path: Path, evaluate: list[str] | None, select: str | None, code: str, where: str, help_: str | None
) -> None:
    import jsonschema

    from dmlc.schema import schema

    doc = metrics_doc(evaluate, select)
    path = write(tmp_path, doc)
    (diag,) = check_file(path)
    line = Path(path).read_text().splitlines()[diag.span.line - 1]
    assert diag.code == code and line.strip() == where, (diag.code, diag.message, line)
    assert help_ is None or help_ in (diag.help or ""), diag.help
    assert evaluate is None or diag.message.startswith(f"`metrics[{len(evaluate) - 1}]`"), diag.message
    assert not jsonschema.Draft202012Validator(schema()).is_valid(doc)


@pytest.mark.parametrize(
    ("evaluate", "select"),
    [(["accuracy", "loss", "error", "precision", "recall", "f1"], None), (["${params.m}"], None), (None, "loss")],
)
def test_metrics_the_runtime_computes_check_and_compile(tmp_path: Path, evaluate: Any, select: Any) -> None:
    import jsonschema

    from dmlc.schema import schema

    doc = metrics_doc(evaluate, select)
    path = write(tmp_path, doc)
    assert check_file(path) == []
    assert jsonschema.Draft202012Validator(schema()).is_valid(doc)
    assert compile_file(path, "kfp")


def test_check_knows_exactly_what_the_evaluate_runtime_computes() -> None:
    import numpy as np

    from dmlc.ir.metric_names import EVALUATE
    from dmlc.runtime.evaluate import SUPPORTED, score

    computed = score(np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1]))
    assert set(EVALUATE) == set(SUPPORTED) == set(computed)
