"""Generated pipelines and mutated examples through every target: coded errors or output, never DML900.

The oracle of DESIGN §7.2 for the compile path: whatever `dmlc check` accepts compiles on each target or
gets a coded DML1xx at an attribute; nothing raises anything but `DmlError`. CI runs a modest number of
cases; set DMLC_HYPOTHESIS_EXAMPLES to run many locally.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given

from dmlc.diagnostics.catalogue import CATALOGUE
from dmlc.diagnostics.model import DmlError
from dmlc.driver import check_file, compile_file
from tests.pipeline_gen import generated_settings, pipelines
from tests.test_properties import mangled

TARGETS = ("argo", "kfp", "local")
SETTINGS = generated_settings(40)


def compiles_or_explains(path: Path) -> dict[str, str]:
    """Each target's outcome for a file that checks clean: "ok" or the codes it reported."""
    outcome = {}
    for target in TARGETS:
        try:
            compile_file(str(path), target, {})
            outcome[target] = "ok"
        except DmlError as exc:
            codes = [d.code for d in exc.diagnostics]
            assert codes and all(c in CATALOGUE and c.startswith("DML1") for c in codes), (target, exc.diagnostics)
            outcome[target] = ",".join(codes)
    return outcome


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated")


@SETTINGS
@given(doc=pipelines())
def test_generated_pipelines_compile_or_get_a_coded_error(workdir: Path, doc: dict) -> None:
    path = workdir / "gen.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    diags = check_file(str(path))
    assert all(d.code in CATALOGUE and d.code != "DML900" for d in diags), diags
    if not diags:
        compiles_or_explains(path)


@SETTINGS
@given(case=mangled())
def test_mutated_examples_that_check_clean_compile_on_every_target(workdir: Path, case: tuple[str, bytes]) -> None:
    suffix, data = case
    path = workdir / f"mutant{suffix}"
    path.write_bytes(data)
    if check_file(str(path)) == []:
        compiles_or_explains(path)
