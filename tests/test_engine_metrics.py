"""Metrics in the engines' UIs (issue 16 item 5): the same numbers locally, on Argo and on KFP.

1. The core's list of metric names per step kind and the number files the runtime writes.
2. A pipeline of `select` steps (no TensorFlow: shell tasks write the candidates' `dmlc_metrics.json`),
   one fanned out and one per instance of a loop (`wait = "each"`), run three ways: `dmlc run --local`
   (the rows `dmlc runs show` lists), the Argo replay (output parameters `metric-<name>` and, with
   `prometheus = true`, the gauges the controller sets: one per instance) and the KFP harness (the
   scalars of each task's `Metrics` artifact, read from the executor output as the launcher reads it).
   All must equal the values the candidates wrote.
3. Argo's templates (a parameter per metric, gauges only when asked, valid names) and DML106; a failed
   step sets no gauge; KFP's direct path writes the `Metrics` output byte for byte as kfp's compiler.
The examples' differential tests (slow, TensorFlow) compare the same keys for train and evaluate.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlc.cli import main
from dmlc.diagnostics.model import DmlError
from dmlc.driver import compile_file, prepare
from dmlc.ir.model import Evaluate, Select, Task, Train
from dmlc.semantics import metrics as ui_metrics
from tests.argo_replay import replay
from tests.differential import outcome_argo, outcome_local
from tests.kfp_replay.outcome import outcome_kfp, run_kfp, step_of

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "engine_metrics.dml"
WRITE = 'mkdir -p $DMLC_OUTPUTS/model && printf \'{"accuracy": %s, "loss": 1.5}\' "$DMLC_ITEM" > $DMLC_OUTPUTS/model/dmlc_metrics.json'  # noqa: E501
ITEMS = [0.25, 0.75, 0.5]
SH = ["sh", "-c", WRITE]


def _doc(fanned: bool = True, **best: Any) -> dict[str, Any]:
    """`best` fanned out (KFP's compiler fails on a loop over items its body never reads: not here) and
    `each_one` once per candidate (`wait = "each"`: in the candidates' loop on Argo and KFP)."""
    doc = {
        "pipeline": "pick",
        "params": {"m": "accuracy"},
        "steps": {
            "cand": {"kind": "task", "for_each": ITEMS, "outputs": {"model": "artifact"}, "command": [*SH]},
            "best": {"kind": "select", "for_each": ["a", "b"], "models": "${cand[*].model}", "metric": "loss", **best},
            "each_one": {"kind": "select", "wait": "each", "models": ["${cand.model}"]},
        },
        "targets": {"argo": {"prometheus": True}},
    }
    if not fanned:
        del doc["steps"]["best"]["for_each"]
    return doc


def _write(tmp: Path, doc: dict[str, Any], name: str = "p.yaml") -> Path:
    path = tmp / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _shown(outcome: dict) -> dict[tuple[str, str], dict[str, float]]:
    """(step, instance) -> its `metric-<name>` numbers, for the steps that ran."""
    return {
        key: {k: v for k, v in outs.items() if k.startswith(ui_metrics.PREFIX)}
        for key, (state, outs) in outcome.items()
        if state == "ok" and key[0] != "cand"
    }


# -- 1. the core ----------------------------------------------------------------------------------
def test_each_step_kind_reports_its_own_metrics() -> None:
    train = Train(kind="train", data="d")
    assert ui_metrics.names(train) == ["accuracy", "loss"]
    # check refuses `auc` (DML023); a reference resolved to it fails the step before it reports anything
    evaluate = Evaluate.model_construct(kind="evaluate", model="m", data="d", metrics=["f1", "accuracy", "f1", "auc"])
    assert ui_metrics.names(evaluate) == ["f1", "accuracy"]  # in order, once
    assert ui_metrics.names(Select(kind="select", models=["a"], metric="loss")) == ["loss"]
    assert ui_metrics.names(Task(kind="task", command=["true"])) == []
    assert not ui_metrics.reports(Task(kind="task", command=["true"]))
    chosen = {"metric": "loss", "value": 0.5, "chosen": 1, "candidates": []}
    assert ui_metrics.values(Select(kind="select", models=["a"], metric="loss"), chosen) == {"loss": 0.5}
    scores = {"accuracy": 0.9, "loss": 0.3, "epochs": 2, "strategy": "single"}
    assert ui_metrics.values(train, scores) == {"accuracy": 0.9, "loss": 0.3}


@settings(max_examples=40, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_a_metric_file_reads_back_as_the_same_number(value: float) -> None:
    back = float(ui_metrics.text(value))  # Go's strconv.ParseFloat reads the same text (NaN, +Inf, -Inf)
    assert (math.isnan(value) and math.isnan(back)) or back == value


def test_the_runtime_writes_one_file_per_metric_and_a_missing_one_is_an_error(tmp_path: Path) -> None:
    evaluate = Evaluate(kind="evaluate", model="m", data="d", metrics=["accuracy", "f1"])
    ui_metrics.write(tmp_path, evaluate, {"accuracy": 0.875, "f1": 0.5, "n": 8})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metric-accuracy", "metric-f1"]
    assert (tmp_path / "metric-accuracy").read_text() == "0.875"
    assert ui_metrics.read(tmp_path, evaluate) == {"accuracy": 0.875, "f1": 0.5}
    (tmp_path / "metric-f1").unlink()
    with pytest.raises(FileNotFoundError, match="f1"):
        ui_metrics.read(tmp_path, evaluate)


# -- 2. three runs, the same numbers --------------------------------------------------------------
EXPECTED = {
    ("best", "-"): {"metric-loss": 1.5},
    **{("each_one", str(i)): {"metric-accuracy": v} for i, v in enumerate(ITEMS)},
}


def _per_step(shown: dict) -> dict[str, list]:
    """Step -> its instances' numbers in instance order: the local executor names an instance by its item
    (`best[a]`) or its upstream's (`each_one[0]`), Argo and KFP by the loop index; all in item order."""
    out: dict[str, list] = {}
    for key in sorted(shown):
        out.setdefault(key[0], []).append(shown[key])
    return out


def test_local_argo_and_kfp_show_the_same_numbers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(tmp_path, _doc(fanned=False))
    with monkeypatch.context() as patch:
        patch.chdir(tmp_path)
        local = outcome_local(path)
    argo, kfp = outcome_argo(path, tmp_path / "argo"), outcome_kfp(path, tmp_path / "kfp")
    assert _shown(argo) == _shown(kfp) == EXPECTED
    assert _per_step(_shown(local)) == _per_step(EXPECTED)


def test_argo_sets_one_gauge_per_instance_from_its_parameters(tmp_path: Path) -> None:
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(_write(tmp_path, _doc())), "argo")) if d]
    with replay(workflow, tmp_path / "argo") as done:
        assert done.phase == "Succeeded" and done.metric_errors == []
        gauges = done.gauges
        params = {n.task_path: n.outputs for n in done.nodes.values() if n.type == "Pod"}
    per_step: dict[str, list[float]] = {}
    for (name, labels), value in gauges.items():
        label = dict(labels)
        assert label["pipeline"] == "pick" and re.fullmatch(r"dmlc_[a-z]+", name)
        node = label["node"].split(".", 1)[1]  # `<workflow>.best(0:a)`: the instance's own node
        assert float(params[node][f"metric-{name.removeprefix('dmlc_')}"]) == value
        per_step.setdefault(f"{label['step']} {name}", []).append(value)
    assert {k: sorted(v) for k, v in per_step.items()} == {
        "best dmlc_loss": [1.5, 1.5],
        "each_one dmlc_accuracy": sorted(ITEMS),
    }


def test_kfp_reads_a_metric_named_by_a_reference_once_it_is_resolved(tmp_path: Path) -> None:
    """Argo must name its outputs before the run (DML106); KFP's scalars carry the resolved name."""
    doc = _doc(fanned=False, metric="${params.m}")
    del doc["targets"]
    run = run_kfp(_write(tmp_path, doc), tmp_path / "kfp", params={"m": "loss"})
    scalars = [ex.artifacts["dmlc_metrics"].metadata for ex in run.containers() if step_of(ex) == "best"]
    assert scalars == [{"loss": 1.5}]
    (artifact,) = {ex.artifacts["dmlc_metrics"].schema for ex in run.containers() if step_of(ex) == "best"}
    assert artifact == "system.Metrics"


def test_runs_show_and_the_report_list_the_chosen_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    doc["steps"] = {k: v for k, v in doc["steps"].items() if k != "each_one"}
    doc["steps"]["best"] = {k: v for k, v in doc["steps"]["best"].items() if k != "for_each"} | {"metric": "accuracy"}
    path = _write(tmp_path, doc)
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(path), "--local"]) == 0
    (run,) = [p.name for p in (tmp_path / ".dmlc" / "runs").iterdir()]
    capsys.readouterr()
    main(["runs", "show", run])
    shown = capsys.readouterr().out
    assert re.search(r"best\s+accuracy\s+0\.75\b", shown), shown
    main(["runs", "report", run, "-o", str(tmp_path / "report.html")])
    html = (tmp_path / "report.html").read_text()
    assert re.search(r"<td>best</td><td>accuracy</td><td>0\.75</td>", html), html[-3000:]


# -- 3. compiled output -----------------------------------------------------------------------------
def _templates(path: Path | str) -> dict[str, dict[str, Any]]:
    (doc,) = [d for d in yaml.safe_load_all(compile_file(str(path), "argo")) if d]
    return {t["name"]: t for t in doc["spec"]["templates"]}


def test_argo_templates_have_a_parameter_per_metric_and_gauges_only_when_asked(tmp_path: Path) -> None:
    templates = _templates(EXAMPLE)
    expected = {"model": ["accuracy", "loss"], "best": ["accuracy"], "score": ["accuracy", "precision", "recall", "f1"]}
    for step, names in expected.items():
        params = [p["name"] for p in templates[step]["outputs"]["parameters"]]
        assert [p for p in params if p.startswith("metric-")] == [f"metric-{n}" for n in names]
        gauges = templates[step]["metrics"]["prometheus"]
        assert [g["name"] for g in gauges] == [f"dmlc_{n}" for n in names]
        for gauge in gauges:
            assert gauge["help"] and gauge["gauge"]["realtime"] is False
            assert re.fullmatch(r"\{\{outputs\.parameters\.metric-[a-z0-9]+\}\}", gauge["gauge"]["value"])
            assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", lab["key"]) for lab in gauge["labels"])
        keys = [lab["key"] for lab in gauges[0]["labels"]]
        assert keys == (["pipeline", "step", "node"] if step == "model" else ["pipeline", "step"])
    assert "metrics" not in templates["data"]
    quiet = yaml.safe_load(EXAMPLE.with_suffix(".yaml").read_text())
    del quiet["targets"]
    plain = _templates(_write(tmp_path, quiet))
    assert all("metrics" not in t for t in plain.values())
    assert [p["name"] for p in plain["best"]["outputs"]["parameters"]] == ["model", "metrics", "metric-accuracy"]


@pytest.mark.parametrize(
    ("best", "prometheus", "where"),
    [
        ({"metric": "${params.m}"}, False, ("best", "metric")),
        ({"metric": "val.acc"}, False, ("best", "metric")),
        ({"metric": "val-acc"}, True, ("best", "metric")),
    ],
)
def test_dml106_a_metric_name_argo_cannot_show(tmp_path: Path, best: dict, prometheus: bool, where: tuple) -> None:
    doc = _doc(fanned=False, **best)
    doc["targets"]["argo"]["prometheus"] = prometheus
    path = _write(tmp_path, doc)
    with pytest.raises(DmlError) as info:
        compile_file(str(path), "argo")
    (diag,) = info.value.diagnostics
    assert diag.code == "DML106" and diag.span is not None
    line = path.read_text().splitlines()[diag.span.line - 1]
    assert line.strip().startswith(f"{where[1]}:"), line
    compile_file(str(path), "kfp")  # KFP shows any name, resolved at run time


def test_dml106_an_evaluate_metric_named_by_a_reference(tmp_path: Path) -> None:
    text = (
        'pipeline e {\n  params { m = "f1" }\n  ingest data { dataset = "digits" }\n'
        "  train model { data = data.dataset }\n"
        "  evaluate score {\n    model = model.model\n    data = data.dataset\n"
        '    metrics = ["accuracy", params.m]\n  }\n}\n'
    )
    path = tmp_path / "e.dml"
    path.write_text(text)
    with pytest.raises(DmlError) as info:
        compile_file(str(path), "argo")
    assert [(d.code, d.span.line if d.span else 0) for d in info.value.diagnostics] == [("DML106", 8)]
    path.write_text(text.replace(", params.m]", "]"))  # the literal names are fine: only the reference is refused
    assert "metric-accuracy" in compile_file(str(path), "argo")


def test_a_failed_step_sets_no_gauge(tmp_path: Path) -> None:
    """A node that failed has no outputs: the controller cannot substitute the value (a MetricsError)."""
    doc = _doc(threshold=0.1, goal="min")  # every loss is 1.5: no candidate meets it
    (workflow,) = [d for d in yaml.safe_load_all(compile_file(str(_write(tmp_path, doc)), "argo")) if d]
    with replay(workflow, tmp_path / "argo") as done:
        assert done.node("best(0:a)").phase == "Failed"
        assert not any(dict(labels)["step"] == "best" for _, labels in done.gauges)
        assert len(done.metric_errors) == 2 and "metric-loss" in done.metric_errors[0]


def test_kfp_direct_path_writes_the_metrics_output_as_kfps_compiler(tmp_path: Path) -> None:
    from dmlc_targets.kfp import direct
    from dmlc_targets.kfp.emit import pipeline_text

    steps = {
        "a": {"kind": "task", "outputs": {"model": "artifact"}, "command": [*SH]},
        "b": {"kind": "task", "outputs": {"model": "artifact"}, "command": [*SH]},
        "best": {"kind": "select", "models": ["${a.model}", "${b.model}"]},
    }
    plan = prepare(str(_write(tmp_path, {"pipeline": "flat", "steps": steps})), "kfp").plan
    assert direct.unsupported(plan) is None
    ours = direct.compile_text(plan)
    assert ours == pipeline_text(plan, direct=False)
    spec = next(yaml.safe_load_all(ours))
    outputs = spec["components"]["comp-best"]["outputDefinitions"]["artifacts"]
    assert outputs["dmlc_metrics"]["artifactType"]["schemaTitle"] == "system.Metrics"
    assert "dmlc_metrics" not in spec["components"]["comp-a"].get("outputDefinitions", {}).get("artifacts", {})


# -- 4. evaluate's confusion matrix: KFP's ClassificationMetrics ------------------------------------
def test_evaluate_writes_a_confusion_matrix_consistent_with_its_accuracy(tmp_path: Path) -> None:
    np = pytest.importorskip("numpy")
    from dmlc.runtime.evaluate import confusion, score

    y = np.array([0, 0, 1, 2, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 2, 0, 2]] * 0.9 + 0.05  # predictions 0 1 1 2 0 2
    categories, matrix = confusion(probs, y)
    assert categories == ["0", "1", "2"]
    assert matrix == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]  # a row per true class, a column per prediction
    assert sum(map(sum, matrix)) == len(y)
    assert sum(matrix[i][i] for i in range(3)) / len(y) == score(probs, y)["accuracy"]
    ui_metrics.write_confusion(tmp_path, categories, matrix)
    assert ui_metrics.read_confusion(tmp_path) == (categories, matrix)


def test_the_kfp_shim_logs_the_confusion_matrix_as_kfp_does(tmp_path: Path) -> None:
    from dmlc_targets.kfp import shim
    from kfp.dsl import ClassificationMetrics

    ui_metrics.write_confusion(tmp_path, ["0", "1"], [[3, 1], [0, 4]])
    artifact = ClassificationMetrics(name="dmlc_confusion", uri=str(tmp_path / "uploaded" / "dmlc_confusion"))
    shim._report_confusion(tmp_path, artifact)
    table = artifact.metadata["confusionMatrix"]  # what the run's UI draws (kfp 2.17 artifact_types)
    assert [a["displayName"] for a in table["annotationSpecs"]] == ["0", "1"]
    assert [r["row"] for r in table["rows"]] == [[3, 1], [0, 4]]
    (tmp_path / ui_metrics.CONFUSION).unlink()
    with pytest.raises(SystemExit, match="confusion matrix"):
        shim._report_confusion(tmp_path, ClassificationMetrics(name="c", uri=str(tmp_path / "c")))


@pytest.mark.slow
@pytest.mark.tf
def test_the_example_on_kfp_draws_the_confusion_matrix_of_its_accuracy(tmp_path: Path) -> None:
    """End to end with TensorFlow: `evaluate`'s scalars and its confusion matrix agree on the harness."""
    pytest.importorskip("tensorflow")
    run = run_kfp(EXAMPLE, tmp_path / "kfp")
    (score,) = [ex for ex in run.containers() if step_of(ex) == "score"]
    scalars = score.artifacts["dmlc_metrics"].metadata
    assert sorted(scalars) == ["accuracy", "f1", "precision", "recall"]
    # as the UI reads it: ML Metadata wraps a map as {"struct": ...} (MetricsVisualizations.tsx)
    table = score.artifacts["dmlc_confusion"].custom_properties()["confusionMatrix"]["struct"]
    rows = [r["row"] for r in table["rows"]]
    assert len(rows) == len(table["annotationSpecs"]) == 10  # digits
    assert sum(rows[i][i] for i in range(10)) / sum(map(sum, rows)) == pytest.approx(scalars["accuracy"])


def test_a_number_kfp_cannot_carry_goes_as_its_text(tmp_path: Path) -> None:
    """Go's protojson (the launcher reads executor_output.json with it) takes no NaN: the shim logs text."""
    from dmlc_targets.kfp import shim
    from kfp.dsl import Metrics

    train = Train(kind="train", data="d")
    ui_metrics.write(tmp_path, train, {"accuracy": 0.5, "loss": float("nan")})
    spec = {"spec_version": 1, "dmlc": "x", "pipeline": "p", "step": "t", "attrs": train.model_dump(mode="json"),
            "outputs": {}, "seed": 1, "volumes": {}}  # fmt: skip
    artifact = Metrics(name="dmlc_metrics", uri=str(tmp_path / "up" / "dmlc_metrics"))
    shim._report_metrics(spec, tmp_path, artifact)
    assert artifact.metadata == {"accuracy": 0.5, "loss": "NaN"}
    assert '"NaN"' in Path(artifact.path).read_text()
