"""`dmlc graph` (issue 13): wait modes drawn differently, static fan-out widths, `when` on edges, user
text escaped for Mermaid and DOT."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dmlc.driver import load
from dmlc.graphviz import dot, mermaid
from dmlc.ir.model import Pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = r"""
pipeline g {
  params { go = true }
  ingest data { dataset = "digits" }
  train model {
    for_each = ["cnn", "mlp", "dropout"]
    data = data.dataset
    model = each
  }
  evaluate check {
    model = model.model
    data = data.dataset
    wait = "each"
  }
  select best {
    models = model[*].model
    metric = "accuracy"
    when = "data.dataset != 'x\"]|<b>'"
  }
  task note {
    command = ["true"]
    after = [best]
    when = "params.go"
  }
}
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    file = tmp_path / "g.dml"
    file.write_text(PIPELINE)
    return load(str(file)).pipeline


def test_wait_each_and_wait_all_are_drawn_differently(pipeline: Pipeline) -> None:
    text = mermaid(pipeline)
    assert "  model ==> check" in text  # one evaluation per model, as each finishes
    assert "  model --> best" in text  # a barrier over every model
    assert "  best -.-> note" in text  # `after`
    graph = dot(pipeline)
    assert re.search(r'"model" -> "check" \[penwidth', graph)
    assert '"model" -> "best";' in graph and '"best" -> "note" [style=dashed]' in graph


def test_static_widths_and_pairing_are_labelled(pipeline: Pipeline) -> None:
    text = mermaid(pipeline)
    assert 'model["train model x3"]' in text and 'check["evaluate check x3 per model"]' in text


def test_when_sits_on_the_edges_it_reads_and_is_escaped(pipeline: Pipeline) -> None:
    text = mermaid(pipeline)
    edge = next(line for line in text.splitlines() if line.startswith("  data ") and "best" in line)
    assert edge.startswith('  data -->|"when ') and "#quot;" in edge and "#124;" in edge and "#lt;" in edge
    assert '"]' not in edge.split('|"', 1)[1].rsplit('"|', 1)[0]  # the label cannot close the node early
    assert 'note["task note<br/>when params.go"]' in text  # a condition on params only: in the node
    for line in dot(pipeline).splitlines():  # every quoted DOT string is well formed
        assert re.fullmatch(r'[^"]*("(?:[^"\\]|\\.)*"[^"]*)*', line), line


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.dml")), ids=lambda p: p.stem)
def test_every_example_draws(example: Path) -> None:
    pipeline = load(str(example)).pipeline
    assert mermaid(pipeline).startswith("flowchart TD") and dot(pipeline).endswith("}\n")
