"""Hostile step outputs (issue 12): what a step writes to `$DMLC_OUTPUTS` is not trusted.

A param output that is not UTF-8, nests JSON 100,000 deep, is a FIFO, a folder or a device, holds a
NUL or a lone surrogate, or is larger than 1 MiB fails its step with DML206 naming the step and the
output (it crashed the executor with DML900 and left the run `running`, or hung, or took it to
2.9 GB). An artifact must be files and folders: a FIFO, a device behind a link or a loop of links
would block or never end the copy into the cache. Add a case by adding a row: (name, shell that
writes the output `v` or `d`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path

import pytest

from dmlc.semantics.outputs import DEPTH_LIMIT, PARAM_LIMIT, OutputError, param_value, parse_param
from tests.executor.executor_support import PYTHONPATH, Project

DEEP = "python3 -c \"print('[' * 100000 + ']' * 100000)\""
PARAMS = [
    ("not UTF-8", r"printf '\377\376abc'", "is not UTF-8 text"),
    ("100k-deep array", DEEP, "nests JSON more than 100 levels"),
    ("100k-deep object", "python3 -c \"print('{\\\"a\\\":' * 100000 + '1' + '}' * 100000)\"", "nests JSON"),
    ("2 MB", "head -c 2000000 /dev/zero | tr '\\0' a", "a param holds at most 1 MiB"),
    ("NUL", "printf '\"a\\\\u0000b\"'", "holds a NUL character"),
    ("lone surrogate", "printf '\"\\\\ud800\"'", "holds a lone UTF-16 surrogate"),
    ("raw NUL byte", r"printf 'a\000b'", "holds a NUL character"),
]
# Devices are /dev/null: behind /dev/zero, a regression copies without end into the cache (27 GB in a
# minute, before the fix) and fills the disk; /dev/null shows the same refusal and ends.
SPECIAL = [  # written in place of the output file, not into it
    ("FIFO", "mkfifo $DMLC_OUTPUTS/v", "is a named pipe (FIFO)"),
    ("folder", "mkdir $DMLC_OUTPUTS/v", "is a folder"),
    ("link to /dev/null", "ln -s /dev/null $DMLC_OUTPUTS/v", "is a character device"),
]
ARTIFACTS = [
    ("FIFO", "mkfifo $DMLC_OUTPUTS/d", "is a named pipe (FIFO)"),
    ("FIFO inside", "mkdir $DMLC_OUTPUTS/d && mkfifo $DMLC_OUTPUTS/d/f", "holds `f`, which is a named pipe"),
    ("device link inside", "mkdir $DMLC_OUTPUTS/d && ln -s /dev/null $DMLC_OUTPUTS/d/z", "which is a character device"),
    ("loop of links", "mkdir -p $DMLC_OUTPUTS/d/x && ln -s .. $DMLC_OUTPUTS/d/x/up", "links back to a folder above"),
]


def _pipeline(project: Project, write: str, kind: str = "param") -> None:
    (project.path / "w.sh").write_text(write + "\n")
    name = "v" if kind == "param" else "d"
    project.write(f"""
pipeline p {{
  task a {{
    command = ["sh", "{project.path / "w.sh"}"]
    outputs {{ {name} = "{kind}" }}
    memoize {{ }}
  }}
  task b {{
    command = ["sh", "-c", "echo ${{a.{name}}} > $DMLC_OUTPUTS/w"]
    outputs {{ w = "param" }}
  }}
}}""")


def _run_fails_with_dml206(project: Project, expected: str, output: str = "v") -> None:
    proc = project.run("run", "p.dml", "--local", timeout=60)
    text = proc.stdout + proc.stderr
    assert "DML900" not in text and "Traceback" not in text, text
    assert proc.returncode == 3, text
    (line,) = [x for x in text.splitlines() if x.startswith("error: step `a` failed")]
    assert line.startswith(f"error: step `a` failed: exit 0, but DML206: output `{output}` ") and expected in line
    store = project.store()
    run = store.runs()[0]
    assert run["status"] == "failed"
    assert {r["step"]: r["state"] for r in store.steps(run["id"])} == {"a": "failed", "b": "upstream failed"}
    assert not list(project.path.glob(".dmlc/cache/entries/*/*")), "a refused output was cached"


@pytest.mark.parametrize(("name", "shell", "expected"), PARAMS, ids=[c[0] for c in PARAMS])
def test_a_hostile_param_output_fails_its_step(name: str, shell: str, expected: str, tmp_path: Path) -> None:
    """DML206 naming the step and the output; the run ends `failed` (was DML900, the run left `running`)."""
    project = Project(tmp_path)
    _pipeline(project, f"{shell} > $DMLC_OUTPUTS/v")
    _run_fails_with_dml206(project, expected)


@pytest.mark.parametrize(("name", "shell", "expected"), SPECIAL, ids=[c[0] for c in SPECIAL])
def test_a_param_output_that_is_no_file_fails_its_step(name: str, shell: str, expected: str, tmp_path: Path) -> None:
    project = Project(tmp_path)
    _pipeline(project, shell)
    _run_fails_with_dml206(project, expected + "; a param output must be a file")


@pytest.mark.parametrize(("name", "shell", "expected"), ARTIFACTS, ids=[c[0] for c in ARTIFACTS])
def test_an_artifact_that_is_no_files_fails_its_step(name: str, shell: str, expected: str, tmp_path: Path) -> None:
    project = Project(tmp_path)
    _pipeline(project, shell, kind="artifact")
    _run_fails_with_dml206(project, expected, output="d")


def _peak_kb_of(project: Project, *argv: str) -> tuple[int, int]:
    """Exit code and peak memory (KiB) of `dmlc ARGV` and everything it ran, in a fresh wrapper."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "code = subprocess.run(sys.argv[1:]).returncode\n"
        "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    env = {**os.environ, "PYTHONPATH": PYTHONPATH}
    cmd = [sys.executable, "-c", wrapper, sys.executable, "-m", "dmlc.cli", *argv]
    out = subprocess.run(cmd, cwd=project.path, env=env, capture_output=True, text=True, timeout=120).stdout
    code, peak = out.split()[-2:]
    return int(code), int(peak)


def test_a_1_gb_param_output_is_refused_without_reading_it(tmp_path: Path) -> None:
    """The executor reached 2.9 GB reading a 1 GB param (3.9 GB measured here before the fix, 43 MB
    after). The file here is sparse: the executor must not read past the limit to refuse it."""
    project = Project(tmp_path)
    _pipeline(project, "truncate -s 1G $DMLC_OUTPUTS/v")
    project.write(project.path.joinpath("p.dml").read_text().replace("memoize { }", ""))  # no 1 GB copy
    code, peak_kb = _peak_kb_of(project, "run", "p.dml", "--local")
    assert code == 3
    assert peak_kb < 300 * 1024, f"peak {peak_kb // 1024} MB"
    assert project.store().runs()[0]["status"] == "failed"


def test_a_wide_param_of_almost_1_mib_is_taken(tmp_path: Path) -> None:
    project = Project(tmp_path)
    count = (PARAM_LIMIT - 2) // 2
    _pipeline(project, f"python3 -c \"print('[' + ','.join(['0'] * {count}) + ']', end='')\" > $DMLC_OUTPUTS/v")
    project.write(project.path.joinpath("p.dml").read_text().replace("echo ${a.v}", "echo ok"))
    assert project.run("run", "p.dml", "--local", timeout=60).returncode == 0
    result = json.loads(next(project.path.glob(".dmlc/runs/*/steps/a/main/result.json")).read_text())
    assert len(result["outputs"]["v"]) == count


def test_a_number_too_large_for_a_float_is_no_metric(tmp_path: Path) -> None:
    """A 400-digit integer in a param output: was DML900 (OverflowError) when it was stored as a metric."""
    project = Project(tmp_path)
    _pipeline(project, "python3 -c \"print('1' * 400)\" > $DMLC_OUTPUTS/v")
    proc = project.run("run", "p.dml", "--local", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert project.store().runs()[0]["status"] == "succeeded"


# --- the reader itself ----------------------------------------------------------------------------


def test_the_size_limit_is_exact(tmp_path: Path) -> None:
    path = tmp_path / "v"
    path.write_bytes(b"a" * PARAM_LIMIT)
    assert parse_param(path) == "a" * PARAM_LIMIT
    path.write_bytes(b"a" * (PARAM_LIMIT + 1))
    with pytest.raises(OutputError, match="at most 1 MiB"):
        parse_param(path)


def test_the_depth_limit_is_exact_and_counts_no_brackets_in_strings() -> None:
    assert param_value("[" * DEPTH_LIMIT + "]" * DEPTH_LIMIT) is not None
    with pytest.raises(OutputError, match="nests JSON"):
        param_value("[" * (DEPTH_LIMIT + 1) + "]" * (DEPTH_LIMIT + 1))
    text = json.dumps(["[" * 5000, {"k": "{" * 5000}])
    assert param_value(text) == ["[" * 5000, {"k": "{" * 5000}]
    assert param_value("a" + "[" * 5000) == "a" + "[" * 5000  # plain text: the parser never recurses


def test_a_fifo_is_never_opened_for_reading(tmp_path: Path) -> None:
    """Opening a FIFO without O_NONBLOCK waits for a writer forever; the reader must return at once."""
    fifo = tmp_path / "v"
    os.mkfifo(fifo)
    result: list[BaseException] = []

    def read() -> None:
        try:
            parse_param(fifo)
        except BaseException as exc:  # the thread's outcome is checked below
            result.append(exc)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive(), "reading a FIFO blocked"
    assert isinstance(result[0], OutputError) and "named pipe" in str(result[0])


def test_the_executor_stays_small_reading_an_output_at_the_limit(tmp_path: Path) -> None:
    """One param of 1 MiB of nested-looking text in strings: read, checked and parsed in bounded memory."""
    path = tmp_path / "v"
    path.write_text(json.dumps(["[{" * ((PARAM_LIMIT - 100) // 2)]))
    tracemalloc.start()  # not ru_maxrss: a pytest session that already peaked higher would hide any growth
    try:
        assert len(parse_param(path)[0]) > 1_000_000
        assert tracemalloc.get_traced_memory()[1] < 100 << 20
    finally:
        tracemalloc.stop()
