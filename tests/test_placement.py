"""Placement and identity (issue 16 items 3 and 4): where the engines expect them, and nowhere else.

`node_selector`, `tolerations`, `affinity`, `service_account` (steps and `defaults`), `resources.accelerator`
and `image_pull_secrets`: Argo templates and `spec.imagePullSecrets`, KFP's Kubernetes platform spec
(kfp-kubernetes) and accelerator type, TFJob replica pods and InferenceService predictors (checked against
the shared CRD schemas when `../shared/schemas` or DMLC_SHARED_SCHEMAS is there), DML028 for values
Kubernetes refuses, DML100 for KFP's per-run service account, and a local run that says once it ignores them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmlc import memo, placement
from dmlc.cli import main
from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file, load
from dmlc.ir.effective import effective
from dmlc.semantics import spec as contract

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "gpu_placement.dml"
SCHEMAS = Path(os.environ.get("DMLC_SHARED_SCHEMAS") or ROOT.parent / "shared" / "schemas")

DEFAULTS = {
    "node_selector": {"pool": "ml"},
    "tolerations": [{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}],
    "affinity": {"require": {"zone": ["a", "b"]}},
    "service_account": "runner",
}
OWN = {
    "node_selector": {"pool": "gpu", "example.com/disk": "ssd"},
    "tolerations": [{"key": "gpu", "operator": "Exists"}],
    "affinity": {"prefer": {"example.com/rack": ["r1"]}},
    "service_account": "own",
}
K8S_FIELDS = {"node_selector": "nodeSelector", "tolerations": "tolerations", "affinity": "affinity",
              "service_account": "serviceAccountName"}  # fmt: skip


def write(tmp_path: Path, doc: dict[str, Any], name: str = "p.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(json.loads(json.dumps(doc)), sort_keys=False))  # no anchors
    return str(path)


def inherited_pipeline(tmp_path: Path) -> str:
    """`plain` inherits every default, `own` sets every attribute itself."""
    steps = {"plain": {"kind": "task", "command": ["true"]}, "own": {"kind": "task", "command": ["true"], **OWN}}
    return write(tmp_path, {"pipeline": "p", "defaults": DEFAULTS, "steps": steps})


def templates(text: str) -> dict[str, dict[str, Any]]:
    (wf,) = [d for d in yaml.safe_load_all(text) if d and d.get("kind") == "Workflow"]
    return {t["name"]: t for t in wf["spec"]["templates"]}


def manifests(text: str) -> list[dict[str, Any]]:
    return [yaml.safe_load(t["resource"]["manifest"]) for t in templates(text).values() if "resource" in t]


# -- defaults ------------------------------------------------------------------------------------------
def test_defaults_reach_every_step_and_a_steps_own_value_wins(tmp_path: Path) -> None:
    path = inherited_pipeline(tmp_path)
    pipeline = load(path).pipeline
    plain, own = effective(pipeline, "plain"), effective(pipeline, "own")
    for attr, value in DEFAULTS.items():
        dumped = getattr(plain, attr)
        assert (dumped if isinstance(dumped, (str, dict)) else _plain(dumped)) == _normal(attr, value), attr
    assert own.node_selector == OWN["node_selector"] and own.service_account == "own"
    assert [t.key for t in own.tolerations or ()] == ["gpu"]
    assert own.affinity is not None and not own.affinity.require  # the step's block replaces the default's
    tmpl = templates(compile_file(path, "argo"))
    for attr, key in K8S_FIELDS.items():
        assert key in tmpl["plain"], f"the default {attr} is dropped"
    assert tmpl["plain"]["nodeSelector"] == {"pool": "ml"} and tmpl["own"]["nodeSelector"] == OWN["node_selector"]
    assert tmpl["plain"]["serviceAccountName"] == "runner" and tmpl["own"]["serviceAccountName"] == "own"
    assert tmpl["plain"]["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml",
                                              "effect": "NoSchedule"}]  # fmt: skip
    assert tmpl["own"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    required = tmpl["plain"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert required == {"nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                                       "values": ["a", "b"]}]}]}  # fmt: skip
    assert "requiredDuringSchedulingIgnoredDuringExecution" not in tmpl["own"]["affinity"]["nodeAffinity"]


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value.model_dump(exclude_none=True) if hasattr(value, "model_dump") else value


def _normal(attr: str, value: Any) -> Any:
    if attr == "tolerations":
        return [{"operator": "Equal", **t} for t in value]
    if attr == "affinity":
        return {"prefer": {}, **value}
    return value


def test_a_step_can_opt_out_of_a_default_with_an_empty_value(tmp_path: Path) -> None:
    steps = {"t": {"kind": "task", "command": ["true"], "node_selector": {}, "tolerations": []}}
    path = write(tmp_path, {"pipeline": "p", "defaults": DEFAULTS, "steps": steps})
    tmpl = templates(compile_file(path, "argo"))["t"]
    assert "nodeSelector" not in tmpl and "tolerations" not in tmpl and "affinity" in tmpl


# -- Argo ---------------------------------------------------------------------------------------------
def test_argo_places_container_templates_and_launched_workloads_in_their_manifests() -> None:
    text = compile_file(str(EXAMPLE), "argo")
    (wf,) = [d for d in yaml.safe_load_all(text) if d]
    assert wf["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    tmpl = templates(text)
    data = tmpl["data"]
    assert data["nodeSelector"] == {"cloud.google.com/gke-nodepool": "ml"} and "serviceAccountName" not in data
    assert data["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]
    # the pod creating a TFJob or an InferenceService is Argo's, not the workload's: no placement on it
    for name in ("model", "classifier"):
        assert not set(K8S_FIELDS.values()) & set(tmpl[name]), name
    job, isvc = manifests(text)
    for replica in job["spec"]["tfReplicaSpecs"].values():
        pod = replica["template"]["spec"]
        assert pod["nodeSelector"] == {"cloud.google.com/gke-nodepool": "gpu"}
        assert pod["serviceAccountName"] == "trainer" and pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["tolerations"] == [{"key": "amd.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        assert pod["containers"][0]["resources"]["limits"] == {"amd.com/gpu": "1"}
        affinity = pod["affinity"]["nodeAffinity"]
        assert affinity["preferredDuringSchedulingIgnoredDuringExecution"] == [
            {"weight": 1, "preference": {"matchExpressions": [
                {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-central1-a"]}]}}
        ]  # fmt: skip
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "predictor" and predictor["imagePullSecrets"] == [{"name": "regcred"}]
    assert predictor["nodeSelector"] == {"cloud.google.com/gke-nodepool": "ml"}


def test_argo_setup_binds_the_role_to_the_accounts_of_container_steps(tmp_path: Path) -> None:
    path = inherited_pipeline(tmp_path)
    docs = [d for d in yaml.safe_load_all(compile_file(path, "argo", {"with_setup": True})) if d]
    (binding,) = [d for d in docs if d["kind"] == "RoleBinding"]
    assert [s["name"] for s in binding["subjects"]] == ["default", "own", "runner"]
    assert not [d for d in docs if d["kind"] == "ServiceAccount"]  # the user's (workload identity): not made


def test_every_manifest_passes_the_crd_schemas() -> None:
    if not (SCHEMAS / "validate_argo.py").exists():
        pytest.skip("no ../shared/schemas (set DMLC_SHARED_SCHEMAS)")
    store = _shared("validate_argo").SchemaStore(str(SCHEMAS), strict=True, exact_scalars=False)
    sharded = EXAMPLE.read_text().replace('service_account = "predictor"', 'service_account = "predictor"\n'
                                          '    shards = 2  shard_key = "id"')  # fmt: skip
    objs = manifests(compile_file(str(EXAMPLE), "argo"))
    objs += manifests(_compile_text(sharded))
    checked = 0
    for obj in objs:
        validator = store.validator(obj["apiVersion"], obj["kind"])
        if validator is None:
            assert obj["kind"] in ("Deployment", "Service")
            assert obj["kind"] == "Service" or obj["spec"]["template"]["spec"]["serviceAccountName"] == "predictor"
            continue
        assert list(validator.iter_errors(obj)) == [], obj["kind"]
        checked += 1
    assert checked == 5  # the TFJob twice, the InferenceService, two shard InferenceServices


def _compile_text(text: str) -> str:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "p.dml"
        path.write_text(text)
        return compile_file(str(path), "argo")


# -- KFP ----------------------------------------------------------------------------------------------
def kfp_docs(path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(compile_file(path, "kfp")) if d]
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def test_kfp_task_placement_through_kfp_kubernetes(tmp_path: Path) -> None:
    step = {"kind": "task", "command": ["true"], "resources": {"gpu": 2, "accelerator": "amd.com/gpu"},
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoExecute", "toleration_seconds": 60}],
            "affinity": {"require": {"zone": ["a"]}, "prefer": {"rack": ["r1"], "disk": ["ssd"]}}}  # fmt: skip
    doc = {"pipeline": "p", "image_pull_secrets": ["regcred"], "defaults": {"node_selector": {"pool": "ml"}},
           "targets": {"kfp": {"node_selector": {"team": "a", "pool": "any"}}}, "steps": {"t": step}}  # fmt: skip
    spec, executors = kfp_docs(write(tmp_path, doc))
    (config,) = executors.values()
    assert config["nodeSelector"] == {"labels": {"pool": "ml", "team": "a"}}  # the step's label wins
    assert config["tolerations"] == [{"key": "gpu", "operator": "Exists", "effect": "NoExecute",
                                      "tolerationSeconds": "60"}]  # fmt: skip
    assert config["nodeAffinity"] == [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]},
        {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["r1"]}], "weight": 1.0},
        {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}], "weight": 1.0},
    ]
    assert [s["secretName"] for s in config["imagePullSecret"]] == ["regcred"]
    (executor,) = spec["deploymentSpec"]["executors"].values()
    accelerator = executor["container"]["resources"]["accelerator"]
    assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("amd.com/gpu", "2")
    if (SCHEMAS / "validate_kfp.py").exists():
        out = tmp_path / "out.yaml"
        out.write_text(compile_file(str(tmp_path / "p.yaml"), "kfp"))
        assert _shared("validate_kfp").validate_file(str(out), roundtrip=True) == []


def _shared(name: str) -> Any:
    """A validator module of ../shared/schemas."""
    module_spec = importlib.util.spec_from_file_location(f"dmlc_placement_{name}", SCHEMAS / f"{name}.py")
    module = importlib.util.module_from_spec(module_spec)  # type: ignore[arg-type]
    sys.modules[module_spec.name] = module  # type: ignore[union-attr]  # its dataclasses look it up
    module_spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_kfp_launched_steps_place_their_workload_not_their_launcher() -> None:
    spec, executors = kfp_docs(str(EXAMPLE))
    configs = {label.removeprefix("exec-"): c for label, c in executors.items()}
    assert configs["data"]["nodeSelector"] == {"labels": {"cloud.google.com/gke-nodepool": "ml"}}
    assert [s["secretName"] for s in configs["data"]["imagePullSecret"]] == ["regcred"]
    for name, config in configs.items():
        if name != "data":
            assert "nodeSelector" not in config and "nodeAffinity" not in config, name
            assert [s["secretName"] for s in config["imagePullSecret"]] == ["regcred"]  # it runs the step's image
    text = json.dumps(spec)
    assert '\\"serviceAccountName\\":\\"trainer\\"' in text and '\\"serviceAccountName\\":\\"predictor\\"' in text


def test_kfp_service_account_of_a_task_is_dml100_where_it_is_written(tmp_path: Path) -> None:
    path = inherited_pipeline(tmp_path)
    with pytest.raises(DmlError) as info:
        compile_file(path, "kfp")
    spots = sorted((d.code, d.span.line) for d in info.value.diagnostics)
    text = Path(path).read_text().splitlines()
    lines = [i + 1 for i, line in enumerate(text) if "service_account:" in line]
    assert spots == [("DML100", n) for n in lines]  # the default (for `plain`) and `own`'s own
    assert compile_file(str(EXAMPLE), "kfp")  # a TFJob's and an InferenceService's: exact, in the manifest


# -- checks -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("attrs", "code", "where"),
    [
        ({"tolerations": [{"key": "a", "operator": "Exists", "value": "x"}]}, "DML028", "value"),
        ({"tolerations": [{"value": "x"}]}, "DML028", "- value"),
        ({"tolerations": [{"key": "a", "effect": "NoSchedule", "toleration_seconds": 5}]}, "DML028", "toleration_"),
        ({"resources": {"accelerator": "amd.com/gpu"}}, "DML028", "accelerator"),
        ({"resources": {"gpu": 1, "accelerator": "gpu"}}, "DML020", "accelerator"),
        ({"service_account": "Trainer_1"}, "DML020", "service_account"),
        ({"node_selector": {"bad key": "x"}}, "DML019", "bad key"),
        ({"node_selector": {"pool": "-x"}}, "DML020", "pool"),
        ({"affinity": {"require": {"zone": []}}}, "DML022", "zone"),
        ({"tolerations": [{"key": "a", "operator": "In"}]}, "DML023", "operator"),
        ({"tolerations": [{"key": "a", "effect": "NoRun"}]}, "DML023", "effect"),
    ],
)
def test_bad_placement_is_a_coded_error_at_the_attribute(tmp_path: Path, attrs: dict, code: str, where: str) -> None:
    doc = {"pipeline": "p", "steps": {"t": {"kind": "task", "command": ["true"], **attrs}}}
    path = write(tmp_path, doc)
    (diag,) = check_file(path)
    line = Path(path).read_text().splitlines()[diag.span.line - 1]
    assert diag.code == code and where in line, (diag.code, diag.message, line)


def test_good_placement_checks_clean(tmp_path: Path) -> None:
    tolerations = [{"operator": "Exists"}, {"key": "a", "operator": "Exists", "effect": "NoExecute",
                                            "toleration_seconds": 0}, {"key": "b", "value": ""}]  # fmt: skip
    doc = {
        "pipeline": "p",
        "image_pull_secrets": ["reg.cred-1"],
        "defaults": {"tolerations": tolerations},
        "steps": {"t": {"kind": "task", "command": ["true"], "node_selector": {"kubernetes.io/arch": "amd64"}}},
    }
    assert check_file(write(tmp_path, doc)) == []
    assert check_file(str(EXAMPLE)) == []


# -- the step spec, the memo key and a local run ------------------------------------------------------
def test_placement_changes_neither_the_step_spec_nor_the_memo_key(tmp_path: Path) -> None:
    bare = {"kind": "task", "command": ["true"], "resources": {"gpu": 1}}
    placed = {**bare, **OWN, "resources": {"gpu": 1, "accelerator": "amd.com/gpu"}}
    doc = {"pipeline": "p", "steps": {"a": bare, "b": placed}}
    pipeline = load(write(tmp_path, doc)).pipeline
    specs = [contract.dump(contract.template(pipeline, n)) for n in ("a", "b")]
    for spec in specs:
        spec.pop("step"), spec.pop("seed")
    assert specs[0]["attrs"].keys() == specs[1]["attrs"].keys()
    assert not set(OWN) & set(specs[1]["attrs"])
    recipes = [memo.spec_recipe(pipeline, n)["step"] for n in ("a", "b")]
    assert {k: v for k, v in recipes[1].items() if k != "resources"} == {
        k: v for k, v in recipes[0].items() if k != "resources"
    }


def test_a_local_run_says_once_what_it_ignores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    steps = {"a": {"kind": "task", "command": ["true"]}, "b": {"kind": "task", "command": ["true"]}}
    doc = {"pipeline": "p", "image_pull_secrets": ["regcred"], "defaults": DEFAULTS, "steps": steps}
    assert main(["run", write(tmp_path, doc), "--local"]) == 0
    out = capsys.readouterr().out
    names = "node_selector, tolerations, affinity, service_account, image_pull_secrets"
    assert out.count("apply on a cluster only") == 1 and f"placement and identity ({names})" in out
    assert main(["run", write(tmp_path, {"pipeline": "q", "steps": steps}, "q.yaml"), "--local"]) == 0
    assert "cluster only" not in capsys.readouterr().out
    assert placement.local_note(load(str(EXAMPLE)).pipeline, {}) is not None  # image_pull_secrets alone


def test_the_argo_replay_runs_placed_pods_and_notes_it(tmp_path: Path) -> None:
    from tests.argo_replay import replay

    doc = {"pipeline": "p", "image_pull_secrets": ["regcred"], "defaults": DEFAULTS,
           "steps": {"t": {"kind": "task", "command": ["python", "-c", "print('ok')"]}}}  # fmt: skip
    (wf,) = [d for d in yaml.safe_load_all(compile_file(write(tmp_path, doc), "argo")) if d]
    with replay(wf, tmp_path / "replay") as done:
        assert done.phase == "Succeeded", done.message
        (node,) = [n for n in done.nodes.values() if n.labels.get("dmlc.io/step") == "t"]
        assert any("scheduling is not replayed" in note for note in node.notes)


def test_the_kfp_harness_runs_placed_tasks_as_locally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.differential import outcome_local
    from tests.kfp_replay.outcome import outcome_kfp

    placed = {k: v for k, v in DEFAULTS.items() if k != "service_account"}  # KFP: one per run (DML100)
    steps = {"a": {"kind": "task", "command": ["python", "-c", "print(1)"], "resources": {"gpu": 1}},
             "b": {"kind": "task", "command": ["python", "-c", "print(2)"], "after": ["a"], **OWN}}  # fmt: skip
    del steps["b"]["service_account"]
    doc = {"pipeline": "p", "image_pull_secrets": ["regcred"], "defaults": placed, "steps": steps}
    path = Path(write(tmp_path, doc))
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    assert outcome_kfp(path, tmp_path / "kfp") == local
    assert {key[0] for key in local} == {"a", "b"}


def test_both_argo_writers_write_the_same_placement(tmp_path: Path) -> None:
    from dmlc_targets.argo import stream, workflow

    doc = yaml.safe_load(Path(inherited_pipeline(tmp_path)).read_text())
    doc["image_pull_secrets"] = ["regcred"]
    plan = load_plan(write(tmp_path, doc, "w.yaml"))
    text = stream.workflow_text(plan)
    assert "serviceAccountName: own" in text and "nodeAffinity" in text and "imagePullSecrets" in text
    assert text == workflow.fastyaml.dump(workflow.to_plain(workflow.build(plan), plan.options.version))


def load_plan(path: str) -> Any:
    from dmlc.driver import prepare

    return prepare(path, "argo").plan
