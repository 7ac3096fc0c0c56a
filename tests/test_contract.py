"""The runtime contract (DESIGN §7.1): one step spec, embedded alike by every target.

Every example is compiled for argo, kfp and local; the step spec each target embeds for each step is
read back out of the compiled file (Argo: the `--spec-json` argument of the container, TFJob or
InferenceService; KFP: the `dmlc_spec` constant of the task; local: the plan) and compared after each
target's placeholders are replaced by one marker. Beyond that marker the specs must be identical,
and every seed equal and set. `dmlc run --local` must refuse exactly what `dmlc compile --target
local` refuses, because both go through the driver.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from dmlc_targets.argo.placeholders import escaped_braces

from dmlc.cli import main
from dmlc.driver import compile_file
from dmlc.semantics.spec import command
from dmlc.semantics.values import resolve

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))
MARK = "§"  # what every engine placeholder and every `${...}` becomes before comparing
PER_TARGET = ("outputs_dir", "work_dir")  # folders each target lays out its own way
LAUNCH_ONLY = ("role", "shard", "shard_urls")  # added to the manifests of a sharded service


def _marked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _marked(v) for k, v in value.items() if k not in PER_TARGET + LAUNCH_ONLY}
    if isinstance(value, list):
        return [_marked(v) for v in value]
    return MARK if isinstance(value, str) and MARK in value else value


def from_template(spec: dict[str, Any]) -> dict[str, Any]:
    """A template (references written `${...}`) with every reference replaced by the marker."""
    return _marked(resolve(spec, lambda ref: MARK))


def from_argo(text: str) -> dict[str, Any]:
    """A spec-json argument of an Argo template: the template itself, user text escaped for Argo."""
    for passes in (2, 4):  # a template without / with a retryStrategy
        text = text.replace(escaped_braces(passes), "{{")
    return from_template(json.loads(text))


# -- reading the specs back out of each target's output ------------------------------------------
def _spec_args(container: dict[str, Any]) -> list[str]:
    command = container.get("command") or []
    return [command[i + 1] for i, arg in enumerate(command) if arg == "--spec-json"]


def _containers(obj: Any) -> list[dict[str, Any]]:
    """Every container dict inside a Kubernetes object (TFJob replicas, predictors, deployments)."""
    if isinstance(obj, dict):
        found = [obj] if "image" in obj and "command" in obj else []
        return found + [c for v in obj.values() for c in _containers(v)]
    if isinstance(obj, list):
        return [c for v in obj for c in _containers(v)]
    return []


def argo_specs(path: Path) -> dict[str, dict[str, Any]]:
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    spec = workflow["spec"].get("workflowSpec") or workflow["spec"]  # a CronWorkflow wraps it
    found: dict[str, dict[str, Any]] = {}
    for template in spec["templates"]:
        objects = [template["container"]] if "container" in template else []  # not its init containers
        if "resource" in template:
            objects = list(yaml.safe_load_all(template["resource"]["manifest"]))
        for container in _containers(objects):
            for text in _spec_args(container):
                spec = from_argo(text)
                found.setdefault(spec["step"], spec)
            step = (template.get("metadata") or {}).get("labels", {}).get("dmlc.io/step")
            if not _spec_args(container) and step:  # a `command` task: Argo runs the command itself
                argv = container["command"] + container.get("args", [])
                found[step] = {"command": [MARK if "{{" in a else a for a in argv]}
    return found


def _dmlc_specs(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        here = node.get("dmlc_spec", {}).get("runtimeValue", {}).get("constant")
        found = [json.loads(here)] if isinstance(here, str) else []
        return found + [s for v in node.values() for s in _dmlc_specs(v)]
    if isinstance(node, list):
        return [s for v in node for s in _dmlc_specs(v)]
    return []


def _comparable(spec: dict[str, Any]) -> dict[str, Any]:
    """A template as the marker shows it; for a `command` task, the command it runs (all Argo embeds)."""
    argv = command(spec)
    return {"command": from_template(argv)} if argv is not None else from_template(spec)


def kfp_specs(path: Path) -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(compile_file(str(path), "kfp", {})) if d]
    tasks = [t for t in _dmlc_specs(docs[0]) if "spec" in t]  # `when` tasks carry only the condition
    return {t["spec"]["step"]: _comparable(t["spec"]) for t in tasks}


def local_specs(path: Path) -> dict[str, dict[str, Any]]:
    plan = json.loads(compile_file(str(path), "local"))
    return {name: _comparable(step["spec"]) for name, step in plan["steps"].items()}


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_target_embeds_the_same_step_spec(example: Path) -> None:
    local, kfp, argo = local_specs(example), kfp_specs(example), argo_specs(example)
    assert set(local) == set(kfp) == set(argo), "every step embeds a spec on every target"
    for step in local:
        assert kfp[step] == local[step], f"kfp spec of `{step}` differs from the local one"
        assert argo[step] == local[step], f"argo spec of `{step}` differs from the local one"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_seeds_are_set_and_equal_on_every_target(example: Path) -> None:
    seeds = [{n: s["seed"] for n, s in specs(example).items() if "seed" in s}
             for specs in (local_specs, kfp_specs, argo_specs)]  # fmt: skip
    assert seeds[0] == seeds[1] == seeds[2]
    assert all(isinstance(seed, int) for seed in seeds[0].values())


def test_the_comparison_sees_a_difference() -> None:
    """The normalisation keeps what differs: another value, or a reference where a value was."""
    base = {"step": "a", "seed": 1, "attrs": {"epochs": "${params.epochs}", "model": "cnn", "x": "a{{b"}}
    argo = json.dumps(base).replace("{{", escaped_braces(4))
    assert from_argo(argo) == from_template(base)
    assert from_argo(argo.replace('"cnn"', '"mlp"')) != from_template(base)
    assert from_argo(argo.replace('"seed": 1', '"seed": 2')) != from_template(base)
    assert from_template(base | {"attrs": {"epochs": 3, "model": "cnn", "x": "a{{b"}}) != from_template(base)


# -- dmlc run --local refuses what dmlc compile --target local refuses -----------------------------
REFUSED_LOCALLY = {
    "replace": 'pipeline r {\n  schedule {\n    cron = "0 * * * *"\n    concurrency = "replace"\n  }\n'
    '  task a { command = ["true"] }\n}\n',
    "bad_option": 'pipeline o {\n  target local { parallel = 2 }\n  task a { command = ["true"] }\n}\n',
}
ACCEPTED = {"plain": 'pipeline ok {\n  task a { command = ["true"] }\n}\n'}


def _diagnostic_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if re.match(r"^(error|warning)\[DML\d{3}\]", line)]


@pytest.mark.parametrize("name", sorted(REFUSED_LOCALLY | ACCEPTED))
def test_run_local_refuses_exactly_what_compile_local_refuses(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.dml").write_text((REFUSED_LOCALLY | ACCEPTED)[name])
    compiled = main(["compile", "p.dml", "--target", "local", "-o", "plan.json"])
    compile_err = _diagnostic_lines(capsys.readouterr().err)
    ran = main(["run", "p.dml", "--local"])
    run_err = _diagnostic_lines(capsys.readouterr().err)
    assert (compiled, ran) == ((1, 1) if name in REFUSED_LOCALLY else (0, 0))
    assert run_err == compile_err
    if name in REFUSED_LOCALLY:
        assert run_err and all("DML10" in line for line in run_err)
        assert not (tmp_path / ".dmlc" / "runs").exists(), "a refused pipeline starts no run"


# -- `${params.x}` inside `env` and `command`: one value on every target ---------------------------
GREET = """\
pipeline greet {
  params {
    label = "run"
    n = 3
    ratio = 0.5
  }
  task hello {
    command = ["sh", "-c", "printf %s/%s/%s $GREETING $COUNT $1 > $DMLC_OUTPUTS/out",
               "sh", "cmd-${params.label}-${params.ratio}"]
    env {
      GREETING = "CC-${params.label}"
      COUNT = "${params.n}"
    }
    outputs { out = "param" }
  }
}
"""


def _local_value(path: Path, params: dict[str, str]) -> str:
    argv = ["run", str(path), "--local"] + [a for k, v in params.items() for a in ("--param", f"{k}={v}")]
    assert main(argv) == 0
    (out,) = Path(".dmlc").glob("runs/*/steps/hello/main/outputs/out")
    return out.read_text()


def _kfp_value(path: Path, params: dict[str, str], root: Path) -> str:
    from kfp import components, local

    compiled = root / "greet.kfp.yaml"
    compiled.write_text(compile_file(str(path), "kfp", {}))
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root / "kfp"))
    typed = {k: yaml.safe_load(v) for k, v in params.items()}
    components.load_component_from_file(str(compiled))(**typed)
    (out,) = (root / "kfp").glob("*/hello/out")
    return out.read_text()


def _argo_value(path: Path, params: dict[str, str], root: Path) -> str:
    import os

    from tests.argo_replay import run_container_template, workflow_values

    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    (template,) = [t for t in workflow["spec"]["templates"] if t["name"] == "hello"]
    values = workflow_values(workflow, "greet-x7k2p", params)
    return run_container_template(template, values, root / "argo", dict(os.environ))["out"]


@pytest.mark.parametrize("params", [{}, {"label": "night", "n": "7"}], ids=["defaults", "overridden"])
def test_params_in_env_and_command_read_alike_on_every_target(
    params: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("kfp.local")
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "greet.dml"
    path.write_text(GREET)
    label, n = params.get("label", "run"), params.get("n", "3")
    expected = f"CC-{label}/{n}/cmd-{label}-0.5"
    assert _local_value(path, params) == expected
    assert _argo_value(path, params, tmp_path) == expected
    assert _kfp_value(path, params, tmp_path) == expected
