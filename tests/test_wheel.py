"""The grammar and explain pages ship inside the wheel: build it, unpack it, parse from the unpacked copy."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_contains_grammar_and_parses(tmp_path: Path) -> None:
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    if build.returncode != 0:
        pytest.skip(f"cannot build a wheel here: {build.stderr[-300:]}")
    wheel = next(tmp_path.glob("dmlc-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "dmlc/grammar/dml.lark" in names
    assert any(n.startswith("dmlc/diagnostics/pages/") for n in names)
    assert "dmlc_targets/argo/__init__.py" in names
    unpacked = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(unpacked)
    code = "from dmlc.parse import parse_text; print(parse_text('pipeline x { a = 1 }').data)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(unpacked)}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "'a': 1" in out.stdout


def test_every_package_is_listed_in_pyproject() -> None:
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "dmlc").rglob("__init__.py")}
    found |= {
        ".".join(("dmlc_targets", *p.parent.relative_to(ROOT / "targets").parts)).rstrip(".")
        for p in (ROOT / "targets").rglob("__init__.py")
    }
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
