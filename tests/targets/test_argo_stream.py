"""The Argo workflow written template by template equals the whole `Workflow` model dumped at once.

`stream.workflow_text` builds, dumps and drops one template (and one entrypoint task) at a time so that
100,000 steps fit in memory; `workflow.build` + `fastyaml.dump` is the reference it must equal, on every
example (Workflow and CronWorkflow, Argo 4 and 3.5) and on generated pipelines.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from dmlc_targets.argo import fastyaml, stream, workflow
from hypothesis import given

from dmlc.diagnostics.model import DmlError
from dmlc.driver import prepare
from tests.pipeline_gen import generated_settings, pipelines

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))


def assert_streamed_equals_whole(path: Path) -> None:
    try:
        plan = prepare(str(path), "argo").plan
    except DmlError:
        return
    whole = fastyaml.dump(workflow.to_plain(workflow.build(plan), plan.options.version))
    assert stream.workflow_text(plan) == whole


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples(example: Path) -> None:
    assert_streamed_equals_whole(example)


def test_cron_workflow_for_argo_3_5(tmp_path: Path) -> None:
    path = tmp_path / "cron.dml"
    path.write_text(
        'pipeline cron {\n  schedule { cron = "0 3 * * *" }\n  target argo { version = "3.5" }\n'
        '  task a { command = ["echo", "1"]  outputs { out = "param" } }\n'
        '  task b { command = ["echo", "${a.out}"]  min_success = 1  for_each = [1, 2] }\n}\n'
    )
    assert_streamed_equals_whole(path)
    assert "workflowSpec" in stream.workflow_text(prepare(str(path), "argo").plan)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("argo-stream")


@generated_settings(10)
@given(doc=pipelines())
def test_generated_pipelines(workdir: Path, doc: dict) -> None:
    path = workdir / "gen.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert_streamed_equals_whole(path)
