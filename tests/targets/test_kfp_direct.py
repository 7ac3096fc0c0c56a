"""The KFP direct path equals kfp's compiler, byte for byte (kfp's compiler is the oracle and the fallback).

Every example, generated pipelines within the direct path's coverage (up to 1,000 steps) and the
existing generated pipelines (mostly beyond it: the fallback) compile to the same text both ways; the
YAML writer equals PyYAML's `dump_all` on generated data. CI runs a modest number of cases; set
DMLC_HYPOTHESIS_EXAMPLES to run many locally.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dmlc_targets.kfp import direct, specyaml
from dmlc_targets.kfp.emit import default_str_representer, pipeline_text
from hypothesis import given
from hypothesis import strategies as st

from dmlc.diagnostics.model import DmlError
from dmlc.driver import prepare
from tests.kfp_direct_gen import flat_pipelines, yaml_documents
from tests.pipeline_gen import generated_settings, pipelines

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))
# the examples with loops, or an exit handler (kfp's ExitHandler group): the fallback
LOOPS = {
    "engine_metrics",
    "fan_in_fan_out",
    "fashion_mnist",
    "object_store",
    "quickstart",
    "sync_async",
    "exit_handler",
}


def pyyaml(docs: list) -> str:
    """What kfp's compiler writes for `docs` (PyYAML's own str representer: importing hera replaces it)."""
    with default_str_representer():
        return yaml.dump_all(docs, sort_keys=True)


def both_ways(path: Path) -> tuple[str | None, str] | None:
    """(direct path's text or None when not covered, kfp compiler's text); None when it does not compile."""
    try:
        plan = prepare(str(path), "kfp").plan
    except DmlError:
        return None
    oracle = pipeline_text(plan, direct=False)
    if direct.unsupported(plan) is not None:
        return None, oracle
    return direct.compile_text(plan), oracle


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_examples_equal_kfp_compiler(example: Path) -> None:
    result = both_ways(example)
    assert result is not None
    ours, oracle = result
    if example.stem not in LOOPS:
        assert ours is not None, direct.unsupported(prepare(str(example), "kfp").plan)
    assert ours is None or ours == oracle


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kfp-direct")


def assert_same(workdir: Path, doc: dict) -> None:
    """When the pipeline compiles and the direct path covers it, its text is kfp's compiler's."""
    path = workdir / "pipeline.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = both_ways(path)
    if result is not None and result[0] is not None:
        assert result[0] == result[1]


@generated_settings(12)
@given(doc=flat_pipelines())
def test_generated_flat_pipelines_equal_kfp_compiler(workdir: Path, doc: dict) -> None:
    assert_same(workdir, doc)


@generated_settings(1)
@given(doc=flat_pipelines(max_steps=1000, min_steps=900))
def test_generated_pipelines_up_to_1000_steps_equal_kfp_compiler(workdir: Path, doc: dict) -> None:
    assert_same(workdir, doc)


@generated_settings(6)
@given(doc=pipelines())
def test_generated_pipelines_beyond_the_direct_path_fall_back(workdir: Path, doc: dict) -> None:
    assert_same(workdir, doc)


@generated_settings(300)
@given(docs=yaml_documents)
def test_yaml_writer_equals_pyyaml(docs: list) -> None:
    try:
        ours = specyaml.dump_all(docs)
    except specyaml.Unsupported:
        return  # complex keys and tags: the caller falls back to kfp's compiler
    assert ours == pyyaml(docs)


@generated_settings(100)
@given(text=st.text(st.sampled_from(list("ab' \"\\\t\né")), max_size=200), column=st.integers(0, 70))
def test_long_scalars_fold_like_pyyaml(text: str, column: int) -> None:
    """Scalars placed anywhere on the line: PyYAML folds at a space past column 80, or after an escape."""
    doc = {"k" * max(column, 1): [text, {"x": text}]}
    assert specyaml.dump_all([doc]) == pyyaml([doc])


def test_direct_path_imports_neither_kfp_dsl_nor_the_compiler() -> None:
    code = (
        "import sys; from dmlc.driver import compile_file\n"
        f"compile_file({str(ROOT / 'examples' / 'caching.dml')!r}, 'kfp')\n"
        "print(sorted(m for m in ('kfp.dsl', 'kfp.compiler', 'kfp.kubernetes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_the_full_sdk_is_there_after_a_direct_compile(tmp_path: Path) -> None:
    """The direct path imports kfp light; a later user of the process (dmlc.submit -> kfp.Client) must
    still get the whole SDK (the submit tests failed after any direct compile in the same session)."""
    (tmp_path / "s.dml").write_text('pipeline s {\n  ingest data { dataset = "digits" }\n}\n')
    code = (
        "import sys\nfrom dmlc.driver import compile_file\n"
        f"a = compile_file({str(tmp_path / 's.dml')!r}, 'kfp')\nassert 'kfp.dsl' not in sys.modules\n"
        "import kfp\nfrom kfp import dsl\nassert kfp.Client and dsl.pipeline\n"
        f"assert compile_file({str(tmp_path / 's.dml')!r}, 'kfp') == a\nprint('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]
