"""Secrets are usable locally and never written down (issue 12, DESIGN §7.3).

`secret_env { K = "name/key" }` takes its value from `dmlc run --secrets FILE` or from $K of dmlc's
environment; the value reaches the step's environment and nothing else: no file under `.dmlc/` (the
store, its WAL, specs, results, cache entries, logs), no compiled output, no command's output. A step
that prints it gets it masked in its log; one that writes it into an output fails.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dmlc_targets.local.redact import Redactor
from hypothesis import given, settings
from hypothesis import strategies as st

from dmlc.cli import main
from tests.executor.executor_support import Project

SECRET = "s3cr3t-VALUE-42"
STEP = r"""
import os, sys
value = os.environ["TOKEN"]
open("proof.txt", "w").write(value)          # outside .dmlc: the step did get the value
print("token is", value, flush=True)          # its log must mask it
print("and on stderr:", value, file=sys.stderr)
out = os.environ["DMLC_OUTPUTS"]
open(os.path.join(out, "v"), "w").write(value if sys.argv[1] == "leak" else '"fine"')
"""


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "step.py").write_text(STEP)
    return Project(tmp_path)


def _pipeline(project: Project, mode: str = "ok") -> None:
    project.write(f"""
pipeline s {{
  task t {{
    command = ["python", "{project.path / "step.py"}", "{mode}"]
    secret_env {{ TOKEN = "creds/token" }}
    outputs {{ v = "param" }}
    memoize {{ }}
  }}
  task u {{
    command = ["echo", "${{t.v}}"]
  }}
}}""")


def _run(project: Project, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    old = dict(os.environ)
    os.environ.update(env or {})
    cwd = os.getcwd()
    os.chdir(project.path)
    try:
        code = main(["run", "p.dml", "--local", *args])
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(old)
    return code, ""


def _files_holding(root: Path, value: str) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


def _assert_never_written(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    assert not _files_holding(project.path / ".dmlc", SECRET)
    run = project.store().runs()[0]["id"]
    for args in (["runs", "list"], ["runs", "show", run], ["cache", "explain", "p.dml", "t"]):
        cwd = os.getcwd()
        os.chdir(project.path)
        try:
            main(args)
        finally:
            os.chdir(cwd)
    out = capsys.readouterr()
    assert SECRET not in out.out + out.err


def test_secret_from_the_environment_reaches_the_step_and_nothing_else(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    _pipeline(project)
    code, _ = _run(project, env={"TOKEN": SECRET})
    out = capsys.readouterr()
    assert code == 0, out.out + out.err
    assert (project.path / "proof.txt").read_text() == SECRET
    logs = list(project.path.glob(".dmlc/runs/*/steps/t/main/attempt-*/log.txt"))
    assert logs and "token is ***" in logs[0].read_text() and "and on stderr: ***" in logs[0].read_text()
    assert SECRET not in out.out + out.err
    _assert_never_written(project, capsys)
    code, _ = _run(project, env={"TOKEN": SECRET})  # the memoized step is a hit: its entry holds no value
    assert code == 0 and not _files_holding(project.path / ".dmlc", SECRET)


def test_secrets_file_wins_over_the_environment(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _pipeline(project)
    secrets = project.path / "secrets.yaml"
    secrets.write_text(f"creds:\n  token: {SECRET}\n")
    code, _ = _run(project, "--secrets", str(secrets), env={"TOKEN": "from-the-environment"})
    assert code == 0, capsys.readouterr()
    assert (project.path / "proof.txt").read_text() == SECRET
    _assert_never_written(project, capsys)


def test_a_missing_secret_is_dml207_before_anything_runs(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOKEN", raising=False)
    _pipeline(project)
    code, _ = _run(project)
    err = capsys.readouterr().err
    assert code == 1 and "error[DML207]" in err and "creds/token" in err and "$TOKEN" in err
    assert not (project.path / ".dmlc" / "runs").exists() and not (project.path / "proof.txt").exists()


@pytest.mark.parametrize(
    "text",
    [f"creds: [{SECRET}]", f"- {SECRET}", f"creds: {{token: {{deep: {SECRET}}}}}", f"creds: {{token: [{SECRET}", ""],
    ids=["list of keys", "a list", "nested", "not YAML", "empty"],
)
def test_a_malformed_secrets_file_is_dml200_and_never_echoed(
    project: Project, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    _pipeline(project)
    (project.path / "secrets.yaml").write_text(text)
    code, _ = _run(project, "--secrets", "secrets.yaml", env={"TOKEN": "x"})
    out = capsys.readouterr()
    assert code == 1 and "error[DML200]" in out.err, out.err
    assert SECRET not in out.out + out.err


def test_an_output_holding_the_secret_fails_its_step(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    _pipeline(project, mode="leak")
    code, _ = _run(project, env={"TOKEN": SECRET})
    out = capsys.readouterr()
    assert code == 3 and "holds the value of the secret in $TOKEN" in out.out, out.out
    assert not _files_holding(project.path / ".dmlc", SECRET)


def test_compiled_output_holds_only_the_reference(project: Project, tmp_path: Path) -> None:
    _pipeline(project)
    for target in ("argo", "kfp", "local"):
        assert main(["compile", str(project.path / "p.dml"), "--target", target, "-o", str(tmp_path / target)]) == 0
        assert "creds" in (tmp_path / target).read_text()


@pytest.mark.parametrize("cut", range(1, 20))
def test_the_log_mask_holds_across_any_chunking(cut: int) -> None:
    stream = f"a {SECRET} b {SECRET}{SECRET} c".encode()
    redactor = Redactor([SECRET, "VALUE"])
    chunks = [stream[i : i + cut] for i in range(0, len(stream), cut)]
    masked = b"".join(redactor.feed(c) for c in chunks) + redactor.flush()
    assert masked == b"a *** b ****** c"


@settings(max_examples=int(os.environ.get("DMLC_HYPOTHESIS_EXAMPLES", "200")), derandomize=True, deadline=None)
@given(
    values=st.lists(st.text("ab*-", min_size=1, max_size=6), min_size=1, max_size=3),
    stream=st.text("ab*-", max_size=60).map(str.encode),
    cuts=st.lists(st.integers(1, 9), max_size=20),
)
def test_chunked_masking_equals_masking_the_whole_stream(values: list[str], stream: bytes, cuts: list[int]) -> None:
    redactor = Redactor(values)
    whole = Redactor(values).flush_all(stream)
    chunks, pos = [], 0
    for cut in cuts:
        chunks.append(stream[pos : pos + cut])
        pos += cut
    chunks.append(stream[pos:])
    assert b"".join(redactor.feed(c) for c in chunks) + redactor.flush() == whole


def test_other_steps_never_get_the_secret_and_every_log_is_masked(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    _pipeline(project)
    text = (
        (project.path / "p.dml")
        .read_text()
        .replace(
            "  task u {",
            '  task nosy {\n    command = ["sh", "-c", "echo got=$TOKEN; echo ' + SECRET + '"]\n  }\n  task u {',
        )
    )
    project.write(text)
    code, _ = _run(project, env={"TOKEN": SECRET})
    assert code == 0, capsys.readouterr()
    [log] = project.path.glob(".dmlc/runs/*/steps/nosy/main/attempt-1/log.txt")
    assert log.read_text() == "got=\n***\n"  # not inherited from dmlc's environment; masked anyway
    assert not _files_holding(project.path / ".dmlc", SECRET)


def test_an_artifact_holding_the_secret_fails_its_step(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    project.write("""
pipeline s {
  task t {
    command = ["sh", "-c", "mkdir $DMLC_OUTPUTS/a && (head -c 3000000 /dev/zero; echo $TOKEN) > $DMLC_OUTPUTS/a/big"]
    secret_env { TOKEN = "creds/token" }
    outputs { a = "artifact" }
    memoize { }
  }
}""")
    code, _ = _run(project, env={"TOKEN": SECRET})
    out = capsys.readouterr().out
    assert code == 3 and "output `a` holds the value of the secret in $TOKEN" in out, out
    assert not _files_holding(project.path / ".dmlc", SECRET)


def test_secrets_file_values_are_the_text_written(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    (project.path / "step.py").write_text(
        'import os\nopen("proof.txt", "w").write(os.environ["TOKEN"])\n'
        'open(os.environ["DMLC_OUTPUTS"] + "/v", "w").write(\'"fine"\')\n'
    )
    _pipeline(project)
    for written in ("0123", "1_000", "0x1F", "1.50", "12:30", "yes", "~"):
        (project.path / "secrets.yaml").write_text(f"creds:\n  token: {written}\n")
        code, _ = _run(project, "--secrets", "secrets.yaml", "--no-cache")
        assert code == 0 and (project.path / "proof.txt").read_text() == written, capsys.readouterr()


@pytest.mark.parametrize("source", ["/dev/zero", "list"], ids=["endless", "not a mapping"])
def test_a_hostile_secrets_file_is_dml200(project: Project, capsys: pytest.CaptureFixture[str], source: str) -> None:
    _pipeline(project)
    if source == "list":
        (project.path / "list.yaml").write_text("- a\n- b\n")
        source = "list.yaml"
    code, _ = _run(project, "--secrets", source, env={"TOKEN": "x"})
    out = capsys.readouterr()
    assert code == 1 and "error[DML200]" in out.err and "DML900" not in out.err


def test_overlapping_values_are_masked_whole() -> None:
    redactor = Redactor(["abc", "bcdefgh"])
    assert redactor.feed(b"xxabcdefghyy") + redactor.flush() == b"xx***yy"
