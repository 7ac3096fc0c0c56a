"""task run="pkg.module:function": keyword inputs, param and artifact outputs."""

from __future__ import annotations

import json
from pathlib import Path

from tests.runtime.conftest import check, run_step

USER_CODE = """
import os
from pathlib import Path

def stats(numbers, scale=1):
    return {"total": sum(numbers) * scale, "count": len(numbers)}

def report(numbers):
    path = Path(os.environ["DMLC_OUTPUTS"]).parent / "report.txt"
    path.write_text(",".join(map(str, numbers)))
    return {"report": str(path), "n": len(numbers)}

def single(x):
    return x * 2
"""


def test_param_outputs(tmp_path: Path) -> None:
    (tmp_path / "usercode.py").write_text(USER_CODE)
    attrs = {
        "run": "usercode:stats",
        "inputs": {"numbers": [1, 2, 3], "scale": 2},
        "outputs": {"total": "param", "count": "param"},
    }
    check(run_step("task", attrs, tmp_path))
    assert json.loads((tmp_path / "outputs" / "total").read_text()) == 12
    assert json.loads((tmp_path / "outputs" / "count").read_text()) == 3


def test_single_output_and_artifact(tmp_path: Path) -> None:
    for sub in ("a", "b"):
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "usercode.py").write_text(USER_CODE)
    check(run_step("task", {"run": "usercode:single", "inputs": {"x": 21}, "outputs": {"y": "param"}}, tmp_path / "a"))
    assert json.loads((tmp_path / "a" / "outputs" / "y").read_text()) == 42
    attrs = {"run": "usercode:report", "inputs": {"numbers": [4, 5]}, "outputs": {"report": "artifact", "n": "param"}}
    check(run_step("task", attrs, tmp_path / "b"))
    assert (tmp_path / "b" / "outputs" / "report" / "report.txt").read_text() == "4,5"
    assert json.loads((tmp_path / "b" / "outputs" / "n").read_text()) == 2


def test_missing_function_is_a_user_error(tmp_path: Path) -> None:
    proc = run_step("task", {"run": "nosuchmodule:f", "outputs": {}}, tmp_path)
    assert proc.returncode == 1 and "cannot import" in proc.stderr
