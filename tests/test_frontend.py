"""Front ends, IR and validation: spans, references, units, twins, graph order."""

from __future__ import annotations

import json

import pytest

from dmlc.diagnostics.model import DmlError
from dmlc.ir.graph import dependencies, topological_order
from dmlc.ir.lower import lower
from dmlc.ir.types import Ref, parse_ref
from dmlc.parse import parse_text
from dmlc.validate import validate

SMALL = """\
pipeline p {
  params { n = 3 }
  ingest data { dataset = "digits"  batch = 16 }
  train model {
    for_each = ["cnn", "mlp"]
    data = data.dataset
    model = each
    epochs = params.n
    timeout = 30m
    resources { cpu = 500m, memory = 2Gi }
  }
  select best { models = model[*].model }
  task report {
    command = ["echo", "${best.metrics}"]
    after = [best]
    labels { "app.kubernetes.io/name" = "report" }
  }
}
"""


def load_text(text: str, path: str = "p.dml"):  # type: ignore[no-untyped-def]
    doc = parse_text(text, path)
    pipeline = lower(doc)
    errors = validate(pipeline, doc)
    if errors:
        raise DmlError(errors)
    return pipeline


def codes(text: str, path: str = "p.dml") -> list[str]:
    with pytest.raises(DmlError) as info:
        load_text(text, path)
    return [d.code for d in info.value.diagnostics]


def test_small_pipeline_lowers() -> None:
    p = load_text(SMALL)
    train = p.steps["model"]
    assert train.epochs == Ref("params", None, ("n",))
    assert train.timeout == 1800
    assert train.resources.cpu == 500 and train.resources.memory == 2 * 1024**3
    assert p.steps["report"].labels == {"app.kubernetes.io/name": "report"}
    assert topological_order(p) == ["data", "model", "best", "report"]
    assert dependencies(p)["report"] == ["best"]


def test_spans_point_at_values() -> None:
    doc = parse_text(SMALL, "p.dml")
    span = doc.spans[("steps", "model", "timeout")]
    assert (span.line, span.col) == (9, 15)
    key = doc.key_spans[("steps", "model")]
    assert (key.line, key.col) == (4, 9)


def test_yaml_twin_equal_ir() -> None:
    yaml_text = """\
pipeline: p
params: {n: 3}
steps:
  data: {kind: ingest, dataset: digits, batch: 16}
  model:
    kind: train
    for_each: [cnn, mlp]
    data: ${data.dataset}
    model: ${each}
    epochs: ${params.n}
    timeout: 30m
    resources: {cpu: 500m, memory: 2Gi}
  best: {kind: select, models: "${model[*].model}"}
  report:
    kind: task
    command: [echo, "${best.metrics}"]
    after: [best]
    labels: {app.kubernetes.io/name: report}
"""
    assert load_text(yaml_text, "p.yaml") == load_text(SMALL)


def test_ref_parsing() -> None:
    assert parse_ref("model[*].model") == Ref("model", "*", ("model",))
    assert parse_ref("a[2].b") == Ref("a", 2, ("b",))
    with pytest.raises(ValueError):
        parse_ref("a.b[0]")


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (("epochs = params.n", "epochs = params.m"), "DML016"),
        (("data = data.dataset", "data = data.datset"), "DML015"),
        (("data = data.dataset", "data = dta.dataset"), "DML012"),
        (("models = model[*].model", "models = model.model"), "DML018"),
        (("timeout = 30m", "timeout = 2GB"), "DML021"),
        (("batch = 16", 'batch = "x"'), "DML020"),
        (("ingest data", "ingset data"), "DML010"),
        (("batch = 16", "bacth = 16"), "DML011"),
        (("after = [best]", "after = [report]"), "DML030"),
        (("model = each", 'model = "resnet"'), "DML023"),
    ],
)
def test_semantic_errors(change: tuple[str, str], code: str) -> None:
    assert code in codes(SMALL.replace(*change))


def test_errors_are_collected_and_sorted() -> None:
    bad = SMALL.replace("batch = 16", "bacth = 16").replace("timeout = 30m", "timeout = 2GB")
    found = codes(bad)
    assert found == ["DML011", "DML021"]


def test_each_outside_for_each() -> None:
    assert "DML017" in codes(
        SMALL.replace(
            "select best { models = model[*].model }", "select best { models = model[*].model  metric = each }"
        )
    )


def test_cycle_message_has_path() -> None:
    text = 'pipeline c { task a { command = ["x"] after = [b] } task b { command = ["y"] after = [a] } }'
    with pytest.raises(DmlError) as info:
        load_text(text)
    assert "a -> b -> a" in info.value.diagnostics[0].message or "b -> a -> b" in info.value.diagnostics[0].message


def test_parameter_server_needs_ps() -> None:
    text = SMALL.replace("model = each", 'model = each  strategy = "parameter_server"  workers = 2')
    assert "DML040" in codes(text)


def test_big_string_is_fine() -> None:
    text = 'pipeline big { description = "' + "x" * 5_000_000 + '" task t { command = ["true"] } }'
    assert len(load_text(text).description) == 5_000_000


@pytest.mark.parametrize("expr", ['__import__("os").system("x")', "(lambda: 1)()", "[x for x in params.n]"])
def test_when_allows_no_code(expr: str) -> None:
    text = SMALL.replace("after = [best]", "after = [best]\n    when = " + json.dumps(expr))
    assert "DML025" in codes(text)


def test_when_allows_comparisons_and_whitelisted_functions() -> None:
    text = SMALL.replace("after = [best]", 'after = [best]\n    when = "len(params.n) >= 0 and best.accuracy > 0.5"')
    assert load_text(text).steps["report"].when


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("on", "on"), ("yes", "yes"), ("Off", "Off"), ("y", "y"), ("true", True), ("FALSE", False),
        ("0123", 123), ("0o17", 15), ("0x1F", 31), ("1_000", "1_000"), ("1:30", "1:30"), ("-2.5e3", -2500.0),
        ("~", None), ("null", None), ("2024-01-01", "2024-01-01"), ("'on'", "on"), ("!!str 12", "12"),
    ],
)  # fmt: skip
def test_yaml_plain_scalars_follow_yaml_1_2_core_like_editors(text: str, value: object) -> None:
    """yaml-language-server and the JSON Schema read YAML 1.2: `on` is a string, not PyYAML's 1.1 true."""
    doc = parse_text(f"pipeline: p\nparams:\n  x: {text}\n", "p.yaml")
    assert doc.data["params"]["x"] == value and type(doc.data["params"]["x"]) is type(value)


def test_a_yaml_key_named_on_is_the_retry_classes_key() -> None:
    text = 'pipeline: p\nsteps:\n  t:\n    kind: task\n    command: ["true"]\n    retry: {limit: 1, on: [75]}\n'
    assert lower(parse_text(text, "p.yaml")).steps["t"].retry.on == [75]


@pytest.mark.parametrize("image", ["{{workflow.name}}", "img:${params.tag}", "a b", "x{{=sprig.env('X')}}", ""])
def test_an_image_that_is_not_an_image_reference_is_refused(image: str) -> None:
    """Template text in `image` would reach Argo's controller, which substitutes it (DESIGN: security)."""
    step = f'task a {{\n    image = "{image}"\n    command = ["true"]\n  }}'
    text = f'pipeline p {{\n  image = "ghcr.io/o/i:1"\n  {step}\n}}\n'
    with pytest.raises(DmlError) as err:
        lower(parse_text(text, "p.dml"))
    assert [d.code for d in err.value.diagnostics] == ["DML020"]
    good = text.replace(f'"{image}"', '"registry.local:5000/team/img:1.2@sha256:ab12"')
    assert lower(parse_text(good, "p.dml")).steps["a"].image.startswith("registry.local:5000/")
