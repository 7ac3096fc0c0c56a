"""Examples are the golden tests: every example x every registered target vs a committed golden file.

Regenerate with `DMLC_REGEN_GOLDEN=1 pytest tests/test_examples.py` (never in CI). Twins `x.dml` and
`x.yaml` must lower to the same IR and compile to byte-identical output.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dmlc import targets
from dmlc.driver import compile_file, load

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.dml"))
GOLDEN = ROOT / "tests" / "golden"
REGEN = os.environ.get("DMLC_REGEN_GOLDEN") == "1" and not os.environ.get("CI")


def _cases() -> list[tuple[Path, str]]:
    return [(ex, name) for ex in EXAMPLES for name in targets.names()]


def test_examples_exist() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"quickstart", "fashion_mnist"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_twins_give_the_same_ir(example: Path) -> None:
    twin = example.with_suffix(".yaml")
    assert twin.exists(), f"{example.name} has no YAML twin"
    assert load(str(example)).pipeline == load(str(twin)).pipeline


@pytest.mark.parametrize(("example", "target"), _cases(), ids=lambda v: v if isinstance(v, str) else v.stem)
def test_golden(example: Path, target: str) -> None:
    suffix = targets.get(target).suffix  # type: ignore[union-attr]
    golden = GOLDEN / target / f"{example.stem}{suffix}"
    out = compile_file(str(example), target)
    if REGEN:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(out, encoding="utf-8")
    assert golden.exists(), f"missing golden {golden.relative_to(ROOT)}; run with DMLC_REGEN_GOLDEN=1"
    assert out == golden.read_text(encoding="utf-8"), f"{target} output of {example.name} changed"
    assert compile_file(str(example), target) == out, "compiling twice must give identical bytes"
    twin = example.with_suffix(".yaml")
    if twin.exists():
        assert _same_file(compile_file(str(twin), target)) == _same_file(out), "twins must compile to the same bytes"


def _same_file(text: str) -> str:
    """The local plan's crontab line runs the very file that was compiled (x.dml or x.yaml): the one
    place where twins may differ, by their file name."""
    return text.replace(".yaml --local", ".dml --local")
