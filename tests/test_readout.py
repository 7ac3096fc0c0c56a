"""The pieces of a readable run (issue 14), without running anything: instance labels by item, log
tails, per-epoch history and its metric rows, the highlights of a selection, the DAG's layers and SVG,
and a report whose pipeline file is gone or whose plots have no matplotlib.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dmlc_targets.local import readout, report, report_dag, report_plots
from dmlc_targets.local.records import metric_rows, split_epoch

from dmlc.runtime.callbacks import summarize_log
from tests.executor.executor_support import Project


@pytest.mark.parametrize(
    ("item", "text"),
    [
        ("mlp", "mlp"),
        ("  cnn ", "cnn"),
        (3, None),  # a number reads as an index: keep the index
        ("3", None),
        ({"lr": 0.1, "opt": "adam"}, "lr=0.1,opt=adam"),
        ({"deep": {"x": 1}}, None),
        ("x" * 40, None),
        ("a]b", None),
        ([1, 2], None),
        (None, None),
    ],
)
def test_item_text(item: object, text: str | None) -> None:
    assert readout.item_text(item) == text


def test_labels_fall_back_to_the_index_when_items_do_not_name_instances() -> None:
    rows = [("m", "0", "cnn"), ("m", "1", "mlp"), ("d", "main", None), ("x", "0", "a"), ("x", "1", "a")]
    assert readout.labels(rows) == {
        ("m", "0"): "m[cnn]",
        ("m", "1"): "m[mlp]",
        ("d", "main"): "d",
        ("x", "0"): "x[0]",  # two instances with the same item
        ("x", "1"): "x[1]",
    }


def test_log_tail_keeps_the_error_above_a_long_tail(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("start\nValueError: bad\n" + "".join(f"cleanup {n}\n" for n in range(20)))
    tail = readout.log_tail(str(log), 5)
    assert tail == ["ValueError: bad", "...", *(f"cleanup {n}" for n in range(15, 20))]
    log.write_text("x\n" * 100_000 + "Traceback (most recent call last)\nboom\n")  # read from the end only
    assert readout.log_tail(str(log), 2) == ["Traceback (most recent call last)", "boom"]
    assert readout.log_tail(str(tmp_path / "missing"), 5) == [] and readout.log_tail(None) == []


def test_history_counts_an_epoch_run_again_after_a_restart_once() -> None:
    log = [
        {"attempt": 0, "event": "begin", "epoch": 0},
        {"attempt": 0, "event": "end", "epoch": 0, "loss": 1.0, "accuracy": 0.5, "time": 1.0, "workers": 2},
        {"attempt": 0, "event": "end", "epoch": 1, "loss": 0.9, "accuracy": 0.55},
        {"attempt": 1, "event": "begin", "epoch": 1},
        {"attempt": 1, "event": "end", "epoch": 1, "loss": 0.8, "accuracy": 0.6},
        {"attempt": 1, "event": "end", "epoch": 2, "loss": 0.5, "accuracy": 0.7},
    ]
    summary = summarize_log(log)
    assert summary["history"] == {"epoch": [1, 2, 3], "accuracy": [0.5, 0.6, 0.7], "loss": [1.0, 0.8, 0.5]}
    assert summary["train_loss_first"] == 1.0 and summary["resumed_from_epoch"] == 1
    assert summarize_log([])["history"] == {}


def test_a_history_is_a_metric_row_per_epoch() -> None:
    value = {"accuracy": 0.9, "history": {"epoch": [1, 2], "loss": [1.0, 0.5], "odd": [1.0]}, "ok": True}
    rows = {r["name"]: r["value"] for r in metric_rows("metrics", value)}
    assert rows == {"accuracy": 0.9, "loss@1": 1.0, "loss@2": 0.5}  # a list of another length is no series
    assert split_epoch("loss@12") == ("loss", 12) and split_epoch("a@b") == ("a@b", None)
    assert split_epoch("@3") == ("@3", None)


def _steps() -> list[dict]:
    def inst(step: str, key: str, item: object, outputs: dict) -> dict:
        return {"step": step, "instance": key, "item": item, "state": "succeeded", "log": "", "outputs": outputs}

    model = "/r/steps/model/{}/outputs/model"
    chosen = {"metric": "accuracy", "goal": "max", "value": 0.9, "chosen": 1, "reason": "highest accuracy"}
    chosen["candidates"] = [{"index": i, "path": model.format(i), "value": v} for i, v in enumerate([0.8, 0.9])]
    return [
        inst("model", "0", "cnn", {"model": model.format(0), "metrics": {"loss": 0.2, "accuracy": 0.8, "n": 5}}),
        inst("model", "1", "mlp", {"model": model.format(1), "metrics": {"accuracy": 0.9, "workers": 2}}),
        inst("best", "main", None, {"metrics": chosen}),
        inst("serve", "main", None, {"endpoint": "http://127.0.0.1:1/v1/models/m"}),
    ]


def test_highlights_name_the_chosen_instance_by_its_item() -> None:
    lines = readout.highlights(_steps())
    assert lines == [
        ("selected", "best: model[mlp] by accuracy = 0.9 (highest accuracy)"),
        ("candidates", "model[cnn] 0.8, model[mlp] 0.9"),
        ("metrics", "model[cnn]: accuracy 0.8, loss 0.2"),  # the usual metrics first, bookkeeping left out
        ("metrics", "model[mlp]: accuracy 0.9"),
        (
            "endpoint",
            "serve served (stopped with the run; --keep-serving keeps it up) at http://127.0.0.1:1/v1/models/m",
        ),
    ]
    assert readout.grouped(lines)[3] == ("", "model[mlp]: accuracy 0.9")


def test_highlights_of_a_wide_fan_out_are_counted_not_listed() -> None:
    wide = [
        {"step": "w", "instance": str(n), "item": n, "state": "succeeded", "outputs": {"metrics": {"loss": n}}}
        for n in range(30)
    ]
    lines = readout.highlights(wide)
    assert len(lines) == readout.MAX_LINES + 1 and lines[-1] == ("metrics", "w: 18 more (dmlc runs show)")


def test_dag_layers_follow_the_edges() -> None:
    edges = [("a", "b", "data"), ("a", "c", "data"), ("b", "d", "data"), ("c", "d", "control"), ("a", "d", "data")]
    assert report_dag.layers(["a", "b", "c", "d", "lone"], edges) == [["a", "lone"], ["b", "c"], ["d"]]
    svg = report_dag.dag_svg([report_dag.Node(n, f"task {n}", ["succeeded"]) for n in "abcd"], edges)
    assert svg.count("<g class=") == 4 and svg.count('class="edge control"') == 1
    assert report_dag.Node("x", "x", ["succeeded", "failed"]).outcome == "failed"
    assert report_dag.Node("x", "x", ["cached", "cached"]).outcome == "cached"
    assert report_dag.Node("x", "x", []).note == "not run"
    title = report_dag.dag_svg([report_dag.Node("<b>", "task <b>&", [])], [])
    assert "<b>" not in title and "&lt;b&gt;&amp;" in title


def test_report_draws_the_dag_from_the_store_when_the_file_is_gone(project: Project) -> None:
    (project.path / "v.py").write_text("import os; open(os.environ['DMLC_OUTPUTS'] + '/v', 'w').write('1')")
    file = project.write(
        'pipeline gone {\n  task a {\n    command = ["python", "v.py"]\n    outputs { v = "param" }\n  }\n'
        '  task b {\n    command = ["echo", "${a.v}"]\n  }\n}\n'
    )
    assert project.execute()[0] == 0
    file.unlink()
    store = project.store()
    page = report.build(store, store.runs()[0])
    assert page.count('class="edge data"') == 1 and 'data-step="a"' in page and 'data-step="b"' in page
    assert "task a" not in page  # the kinds were in the file


def test_report_without_matplotlib_says_how_to_get_the_plots(project: Project, monkeypatch) -> None:
    project.write('pipeline p {\n  task t {\n    command = ["echo", "hi"]\n  }\n}\n')
    assert project.execute()[0] == 0
    monkeypatch.setattr(report_plots, "available", lambda: False)
    store = project.store()
    page = report.build(store, store.runs()[0])
    assert 'pip install "dmlc[report]"' in page and "<svg" in page  # the DAG needs no matplotlib
    assert re.search(r"<summary>t \(succeeded\)", page)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)
