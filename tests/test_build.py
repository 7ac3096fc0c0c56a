"""User code reaches the cluster (issue 14): `dmlc build` makes a reproducible context from which the
step runs, `compile` uses the recorded image or says DML104 at the reference, steps that ask for
GPUs get the runtime's GPU variant."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dmlc import build
from dmlc.cli import main
from dmlc.diagnostics.model import DmlError
from dmlc.driver import compile_file
from dmlc.ir.model import Pipeline

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = """pipeline u {
  task prep {
    run = "mymod:fn"
    outputs { v = "param" }
  }
  task plain {
    command = ["echo", "${prep.v}"]
  }
}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "p.dml").write_text(PIPELINE)
    (tmp_path / "mymod.py").write_text("import helpers\nraise_at_import = False\n\ndef fn():\n    return helpers.X\n")
    (tmp_path / "helpers.py").write_text("X = 41 + 1\n")
    (tmp_path / "unrelated.py").write_text("raise SystemExit('never imported, never packaged')\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no builder: the tests never need an engine
    return tmp_path


@pytest.mark.parametrize("target", ["argo", "kfp"])
def test_user_code_not_in_the_image_is_dml104_at_the_reference(project: Path, target: str) -> None:
    with pytest.raises(DmlError) as info:
        compile_file("p.dml", target)
    (diag,) = info.value.diagnostics
    assert diag.code == "DML104" and (diag.span.line, diag.span.col) == (3, 11)
    assert "dmlc build p.dml" in (diag.help or "")
    compile_file("p.dml", "local")  # a local run imports the code from the pipeline's folder


def test_build_records_an_image_that_compile_uses(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "p.dml"]) == 0
    out = capsys.readouterr().out
    assert "not built; build it with:\n  docker build -t localhost/dmlc-u:" in out
    files = sorted(p.relative_to(project).as_posix() for p in (project / ".dmlc/build/u").rglob("*") if p.is_file())
    assert files == [".dmlc/build/u/Dockerfile", ".dmlc/build/u/app/helpers.py", ".dmlc/build/u/app/mymod.py"]
    image = next(line.split()[1] for line in out.splitlines() if line.startswith("image: "))
    for target in ("argo", "kfp"):
        text = compile_file("p.dml", target)
        assert text.count(image) >= 1 and build.DEFAULT_IMAGE in text  # `plain` keeps the stock image


def test_the_context_is_reproducible_and_follows_the_code(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "p.dml"]) == 0
    first = (project / ".dmlc/build/u/Dockerfile").read_bytes(), capsys.readouterr().out.splitlines()[-1]
    assert main(["build", "p.dml"]) == 0
    assert ((project / ".dmlc/build/u/Dockerfile").read_bytes(), capsys.readouterr().out.splitlines()[-1]) == first
    (project / "helpers.py").write_text("X = 7\n")  # the code changes: the recorded image is stale
    with pytest.raises(DmlError) as info:
        compile_file("p.dml", "argo")
    assert "changed since `dmlc build`" in info.value.diagnostics[0].message


def test_a_step_runs_from_the_build_context_alone(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    assert main(["build", "p.dml", "-o", "ctx"]) == 0
    alone = tmp_path_factory.mktemp("alone")  # only the pipeline: no module next to it
    shutil.copy(project / "p.dml", alone / "p.dml")
    path = os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"
    env = {**os.environ, "PYTHONPATH": str(project / "ctx" / "app"), "PATH": path}
    cmd = [sys.executable, "-m", "dmlc.cli", "run", "p.dml", "--local"]
    done = subprocess.run(cmd, cwd=alone, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    [value] = alone.glob(".dmlc/runs/*/steps/prep/main/outputs/v")
    assert value.read_text().strip() == "42"
    without = subprocess.run(cmd, cwd=alone, env={**env, "PYTHONPATH": ""}, capture_output=True, text=True)
    assert without.returncode == 3, "without the context's code the step cannot run: the test has teeth"


def test_a_usable_builder_builds_and_a_broken_engine_does_not_count(project: Path) -> None:
    bin_ = project / "bin"
    bin_.mkdir()
    _script(bin_ / "docker", "exit 1")  # a docker CLI without an engine: `docker info` fails
    _script(bin_ / "buildah", f'echo "$@" > {project / "built"}')
    assert main(["build", "p.dml"]) == 0
    args = (project / "built").read_text().split()
    assert args[:3] == ["bud", "-t", args[2]] and args[2].startswith("localhost/dmlc-u:") and args[3].endswith("u")
    assert args[2] in compile_file("p.dml", "argo")
    _script(bin_ / "buildah", "exit 2")  # a failed build records nothing new
    (project / "helpers.py").write_text("X = 8\n")
    assert main(["build", "p.dml"]) == 1


def _script(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


def test_steps_that_ask_for_gpus_get_the_gpu_runtime(tmp_path: Path) -> None:
    (tmp_path / "g.dml").write_text(
        'pipeline g {\n  ingest data { dataset = "digits" }\n  train m {\n    data = data.dataset\n'
        "    resources { gpu = 1 }\n  }\n  train c { data = data.dataset }\n}\n"
    )
    for target in ("argo", "kfp"):
        text = compile_file(str(tmp_path / "g.dml"), target)
        stock = re.findall(re.escape(build.DEFAULT_IMAGE) + r"(?!-gpu)", text)
        assert build.GPU_IMAGE in text and stock, "m asks for a GPU, c does not"


def test_gpu_user_code_builds_from_the_gpu_runtime(project: Path) -> None:
    train = '  train t {\n    data = prep.v\n    model = "mymod:fn"\n    resources { gpu = 2 }\n  }\n'
    (project / "p.dml").write_text(PIPELINE.replace("  task plain", train + "  task plain"))
    assert main(["build", "p.dml"]) == 0
    assert (project / ".dmlc/build/u/Dockerfile").read_text().splitlines()[1] == f"FROM {build.GPU_IMAGE}"


@pytest.mark.slow
def test_the_runtime_dockerfile_builds_where_a_builder_exists(tmp_path: Path) -> None:
    command, found = build.builder_command("dmlc-runtime-test:latest", ROOT)
    if not found:
        pytest.skip("no usable OCI builder here (docker/podman/nerdctl engine or buildah): the build is not tested")
    done = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_code_that_is_not_next_to_the_pipeline_is_the_images(project: Path) -> None:
    (project / "p.dml").write_text(PIPELINE.replace("mymod:fn", "json:dumps"))  # the standard library
    compile_file("p.dml", "argo")
    assert main(["build", "p.dml"]) == 0 and not (project / ".dmlc" / "build").exists()


def test_hostile_files_in_a_package_are_coded_errors(project: Path) -> None:
    pkg = project / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("def fn():\n    return 1\n")
    (pkg / "zero.py").symlink_to("/dev/zero")  # a link out of the package: not its code
    os.mkfifo(pkg / "fifo.py")  # a FIFO inside: refused, never waited on
    (project / "p.dml").write_text(PIPELINE.replace("mymod:fn", "pkg:fn"))
    with pytest.raises(DmlError) as info:
        build.gather(_load(), project)
    assert info.value.diagnostics[0].code == "DML200" and "not a regular file" in info.value.diagnostics[0].message
    (pkg / "fifo.py").unlink()
    ctx = build.gather(_load(), project)
    assert sorted(ctx.files) == ["Dockerfile", "app/pkg/__init__.py"]


def test_compile_finds_the_record_from_another_folder(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["build", "p.dml"]) == 0
    monkeypatch.chdir(project.parent)
    compile_file(str(project / "p.dml"), "argo")  # no DML104: the record sits beside the pipeline


def _load() -> Pipeline:
    from dmlc.driver import load

    return load("p.dml").pipeline
