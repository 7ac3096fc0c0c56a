"""Run results a person can read (issue 14): the end of `dmlc run` names the chosen model, metrics and
endpoints and shows a failed step's error; `dmlc runs show latest` labels instances by item and sorts
metrics, per-epoch ones on one row; `dmlc runs report` writes one offline HTML page (DAG, timeline,
plots per epoch and per instance, log tails), checked by structure always and by a headless Chromium
screenshot where Chromium is installed. Task steps only (no TensorFlow), but for one quickstart test.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.executor.executor_support import Project
from tests.report_support import CHROMIUM, colours_in, screenshot

TRAIN = r"""
import json, os, sys
name = sys.argv[1]
acc = {"cnn": 0.8, "mlp": 0.9}[name]
out = os.environ["DMLC_OUTPUTS"]
print(f"training {name}")
os.makedirs(os.path.join(out, "model"))
json.dump({"accuracy": acc}, open(os.path.join(out, "model", "dmlc_metrics.json"), "w"))
history = {"epoch": [1, 2, 3], "accuracy": [acc - 0.2, acc - 0.1, acc], "loss": [1.0, 0.6, 0.3]}
json.dump({"accuracy": acc, "loss": 0.3, "seconds": 1.5, "history": history}, open(os.path.join(out, "metrics"), "w"))
"""

PIPELINE = """
pipeline rep {
  task make {
    for_each = ["cnn", "mlp"]
    command = ["python", "train.py", "${each}"]
    outputs {
      model = "artifact"
      metrics = "param"
    }
  }
  select best {
    models = make[*].model
    metric = "accuracy"
    goal = "max"
  }
  task hello {
    after = [best]
    command = ["echo", "hi"]
  }
}
"""

BROKEN = """
pipeline broken {
  task boom {
    command = ["python", "-c", "print('loading'); raise ValueError('bad input: 42')"]
  }
}
"""


@pytest.fixture
def ran(project: Project) -> Project:
    (project.path / "train.py").write_text(TRAIN)
    project.write(PIPELINE)
    code, out = project.execute()
    assert code == 0, out
    project.out = out  # type: ignore[attr-defined]
    return project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def test_end_of_run_names_the_chosen_model_and_its_metrics(ran: Project) -> None:
    out = ran.out  # type: ignore[attr-defined]
    assert "selected   best: make[mlp] by accuracy = 0.9 (highest accuracy among 2 candidate(s))" in out
    assert "candidates make[cnn] 0.8, make[mlp] 0.9" in out
    assert "metrics    make[cnn]: accuracy 0.8, loss 0.3" in out and "seconds" not in out
    assert re.search(r"^make\[cnn\]\s+succeeded", out, re.M), out  # the summary names instances by item
    assert "dmlc runs report rep-" in out


def test_every_epoch_is_a_metric_row(ran: Project) -> None:
    store = ran.store()
    rows = {(m["instance"], m["name"]): m["value"] for m in store.metrics(store.runs()[0]["id"])}
    assert rows["1", "accuracy@3"] == pytest.approx(0.9) and rows["1", "accuracy@1"] == pytest.approx(0.7)
    assert rows["0", "loss@2"] == pytest.approx(0.6) and rows["0", "accuracy"] == pytest.approx(0.8)


def test_runs_show_latest_labels_sorts_and_points_at_the_logs(ran: Project) -> None:
    shown = ran.run("runs", "show", "latest")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "make[cnn]" in out and "make[0]" not in out
    assert re.search(r"make\[mlp\]\s+accuracy \(per epoch\)\s+0\.7 0\.8 0\.9", out), out
    table = out.split("\nmetrics")[-1].splitlines()
    metrics = [re.split(r"\s{2,}", line.strip())[:2] for line in table if line.startswith("make")]
    assert metrics == sorted(metrics) and len(metrics) == 10, metrics  # 3 metrics + 2 per-epoch rows each
    assert re.search(r"^hello\s+succeeded.*\bhi\s*$", out, re.M), out  # the step's own output
    assert "logs: dmlc logs rep-" in out
    assert ran.run("runs", "show", "nope").returncode == 1


def test_a_failed_step_shows_its_error_not_only_the_log_path(project: Project) -> None:
    project.write(BROKEN)
    code, out = project.execute()
    assert code == 3
    assert "error: step `boom` failed: exit 1; log: " in out
    assert "  | loading" in out and "  | ValueError: bad input: 42" in out
    shown = project.run("runs", "show", "latest").stdout
    assert "boom failed: exit 1" in shown and "ValueError: bad input: 42" in shown


class Page(HTMLParser):
    """What the structural checks need: tags, attributes, the text of each <section>."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_report_is_one_offline_page_with_dag_timeline_plots_and_logs(ran: Project) -> None:
    made = ran.run("runs", "report", "latest", "-o", "r.html")
    assert made.returncode == 0, made.stderr
    html = (ran.path / "r.html").read_text()
    page = Page()
    page.feed(html)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "link" not in tags and "img" not in tags and "iframe" not in tags
    for _, attrs in page.tags:  # nothing to fetch: no src, no href but in-page anchors
        assert "src" not in attrs and not (attrs.get("href") or "#").startswith(("http", "//", "file"))
    assert "url(http" not in html and "@import" not in html
    ids = {a.get("id") for _, a in page.tags}
    assert {"results", "pipeline", "timeline", "metrics", "steps", "logs"} <= ids
    steps = {a.get("data-step") for t, a in page.tags if t == "g" and a.get("data-step")}
    assert steps == {"make", "best", "hello"}
    assert html.count('class="edge data"') == 1 and html.count('class="edge control"') == 1
    labels = {a.get("aria-label") for t, a in page.tags if t == "svg"}
    assert {"pipeline DAG", "timeline of the steps", "accuracy per epoch", "loss per epoch"} <= labels
    assert "accuracy by instance" in labels
    text = " ".join(page.text)
    assert "make[cnn]" in text and "make[mlp]" in text and "training mlp" in text and "hi" in text
    assert "best: make[mlp] by accuracy = 0.9" in text


def test_report_of_a_failed_run_opens_its_log(project: Project) -> None:
    project.write(BROKEN)
    assert project.execute()[0] == 3
    html = project.run("runs", "report", "latest", "-o", "-").stdout
    assert re.search(r"<details open><summary>boom \(failed\)", html)
    assert "ValueError: bad input: 42" in html and 'class="step failed"' in html


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium here (apt-get install chromium)")
def test_report_renders_in_headless_chromium_without_network(ran: Project) -> None:
    assert ran.run("runs", "report", "latest", "-o", "r.html").returncode == 0
    shot = screenshot(ran.path / "r.html", ran.path / "r.png")
    found = colours_in(shot)
    assert found["dag green"] > 200, found  # the DAG boxes' outlines
    assert found["line blue"] > 200 and found["line orange"] > 200, found  # make[cnn], make[mlp] per epoch


@pytest.mark.slow
@pytest.mark.tf
def test_quickstart_report_shows_each_models_accuracy_per_epoch(project: Project) -> None:
    """The issue's acceptance: the quickstart's report opens offline with the DAG and the per-epoch
    accuracy of each model (and its screenshot shows them, where Chromium is installed)."""
    pytest.importorskip("tensorflow")
    source = Path(__file__).resolve().parents[1] / "examples" / "quickstart.dml"
    project.write(source.read_text().replace("epochs = 3", "epochs = 2"), "quickstart.dml")
    code, out = project.execute("quickstart.dml")
    assert code == 0, out
    assert re.search(r"selected   best: model\[(cnn|dropout|mlp)\] by accuracy = 0\.\d+", out), out
    assert project.run("runs", "report", "latest", "-o", "q.html").returncode == 0
    html = (project.path / "q.html").read_text()
    plot = html[html.index('aria-label="accuracy per epoch"') :]
    plot = plot[: plot.index("</svg>")]
    assert all(f"model[{m}]" in plot for m in ("cnn", "dropout", "mlp"))
    store = project.store()
    names = {m["name"] for m in store.metrics(store.runs()[0]["id"])}
    assert {"accuracy@1", "accuracy@2", "loss@2"} <= names
    if CHROMIUM is not None:
        found = colours_in(screenshot(project.path / "q.html", project.path / "q.png"))
        assert found["dag green"] > 200 and found["line green"] > 100, found


def test_report_without_a_run_is_exit_1(project: Project) -> None:
    result = project.run("runs", "report", "latest")
    assert result.returncode == 1 and "no runs yet" in result.stderr
