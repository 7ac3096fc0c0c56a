"""The Python API (issue 14): `import dmlc` gives load / check / compile / run, the same operations the
CLI runs (it calls them), with a `Run` that holds states, outputs and metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dmlc
from dmlc.cli import main

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "executor" / "executor_support.py"
SQUARE = "import json, os, sys; v = int(sys.argv[1]) ** 2 + int(sys.argv[2]); print(json.dumps(v), end='')"
TOTAL = "import json, sys; print(json.dumps({'sum': sum(json.loads(' '.join(sys.argv[1:])))}), end='')"
FANOUT = """pipeline api {
  params { base = 10 }
  task square {
    for_each = [1, 2, 3]
    command = ["sh", "-c", "python square.py $0 $1 > $DMLC_OUTPUTS/value", "${each}", "${params.base}"]
    outputs { value = "param" }
  }
  task total {
    command = ["sh", "-c", "python total.py $0 > $DMLC_OUTPUTS/sum", "${square[*].value}"]
    outputs { sum = "param" }
  }
  task broken {
    after = [total]
    command = ["python", "-c", "raise SystemExit(4)"]
  }
}
"""


def test_check_and_compile_are_what_the_cli_prints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = ROOT / "examples" / "quickstart.dml"
    assert dmlc.check(quickstart) == []
    bad = tmp_path / "bad.dml"
    bad.write_text('pipeline b {\n  task t {\n    command = ["x"]\n    after = [trian]\n  }\n}\n')
    assert [d.code for d in dmlc.check(bad)] == ["DML012"]
    assert main(["compile", str(quickstart), "--target", "argo"]) == 0
    assert capsys.readouterr().out == dmlc.compile(quickstart, "argo").text
    with pytest.raises(dmlc.DmlError):
        dmlc.compile(bad, "kfp")
    assert dmlc.load(quickstart).steps["model"].kind == "train"


def test_run_gives_states_outputs_and_items(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.dml").write_text(FANOUT)
    (tmp_path / "square.py").write_text(SQUARE)
    (tmp_path / "total.py").write_text(TOTAL)
    run = dmlc.run("p.dml", {"base": 1})
    assert not run.ok and run.status == "failed" and run.exit_code == 3
    assert [i.item for i in run.of("square")] == [1, 2, 3]
    assert [i.outputs["value"] for i in run.of("square")] == [2, 5, 10]
    assert run.outputs("square", 2) == {"value": 10} and run.outputs("total") == {"sum": {"sum": 17}}
    assert run.state("total") == "succeeded" and run.state("broken") == "failed"
    assert "exit 4" in run.of("broken")[0].reason and Path(run.of("broken")[0].log).is_file()
    again = dmlc.run("p.dml", {"base": 1}, resume=run.id)  # the same run, resumed: finished work is kept
    assert again.id == run.id and again.outputs("total") == {"sum": {"sum": 17}}


def test_import_dmlc_is_light() -> None:
    heavy = "('tensorflow', 'kfp', 'hera', 'dmlc_targets')"
    code = f"import sys, dmlc; dmlc.check; print(' '.join(m for m in sys.modules if m.split('.')[0] in {heavy}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


@pytest.mark.slow
@pytest.mark.tf
def test_a_script_runs_the_quickstart_and_reads_the_winning_accuracy(tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    script = tmp_path / "script.py"
    script.write_text(
        "import dmlc\n"
        f"run = dmlc.run({str(ROOT / 'examples' / 'quickstart.dml')!r}, {{'epochs': 1}})\n"
        "best = run.outputs('best')['metrics']\n"
        "print(run.status, best['metric'], best['value'])\n"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    status, metric, value = done.stdout.split()
    assert (status, metric) == ("succeeded", "accuracy") and 0.0 < float(value) <= 1.0, done.stderr[-2000:]


def test_submit_sends_the_compiled_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.submit_standins.argo import ArgoStandin
    from tests.submit_standins.cli import QUICKSTART, isolate

    isolate(tmp_path, monkeypatch)
    monkeypatch.setenv("ARGO_TOKEN", "t0ken")
    with ArgoStandin(token="t0ken") as srv:
        record = dmlc.submit(QUICKSTART, "argo", {"epochs": 2}, server=srv.url)
    assert srv.violations == []  # the request matched Argo v4.1.2's OpenAPI definitions
    assert (record.target, record.server, record.pipeline) == ("argo", srv.url, "quickstart") and record.run
    body = next(c for c in srv.calls if c.method == "POST").body["workflow"]
    assert body["spec"]["arguments"]["parameters"] == [{"name": "epochs", "value": "2"}]


def test_misuse_is_a_type_error_and_refusals_are_coded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.dml").write_text('pipeline p {\n  task t { command = ["true"] }\n}\n')
    with pytest.raises(TypeError):
        dmlc.check("p.dml", text=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        dmlc.run("p.dml", ["x"])  # type: ignore[arg-type]
    for call, code in (
        (lambda: dmlc.run("p.dml", target="argo"), "DML100"),
        (lambda: dmlc.run("p.dml", resume="zzz"), "DML210"),
    ):
        with pytest.raises(dmlc.DmlError) as info:
            call()
        assert info.value.diagnostics[0].code == code
    assert [d.code for d in dmlc.check("x.dml", text=b"\xff")] == ["DML004"]
