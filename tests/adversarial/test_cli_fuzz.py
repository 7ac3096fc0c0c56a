"""Fuzz of the whole command line (issue 12): generated and mutated pipelines through every command.

Each case is a pipeline (drawn by `tests.pipeline_gen`, written as YAML or as .dml, or one of the
book's examples) mangled by up to four mutations: byte flips, truncation, deleted, duplicated or
swapped lines, and hostile tokens (huge numbers, NUL, deep nesting, `{{workflow.name}}`, odd Unicode).
It then goes through `check` (every format), `compile` for every target (sometimes with a hostile
`--param`), `fmt` (to stdout, in place, `--to yaml`, `--to dml`, `--check`, `--diff`), `graph`,
`cache explain` and `runs show`. The oracle, for every call: exit code 0, 1, 2 or 3; never DML900;
never a traceback; under 10 s. Where `fmt` succeeds, its output must mean the same pipeline (equal
IR) and be a fixed point of `fmt`. A few cases also run in a fresh interpreter limited to 1 GB of
address space.

CI runs a fixed, derandomized number of cases; DMLC_HYPOTHESIS_EXAMPLES=N runs N random ones.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from dmlc.cli import main
from dmlc.diagnostics.model import DmlError
from dmlc.driver import load
from tests.adversarial.cli_support import TARGETS
from tests.pipeline_gen import generated_settings, pipelines
from tests.test_properties import EXAMPLES, apply, mutation

HOSTILE = [
    b"1e999", b"-1e999", b"99999999999999999999", b"9" * 50, b"-0", b"0x10", b"1_000", b".inf", b".nan",
    b"\x00", b"\\u0000", b"{{workflow.name}}", b"{{=sprig.upper('x')}}", b"${params.", b"$${x}",
    b"[" * 80, b"{" * 80, b"(" * 80, b"not " * 50, "\u202e".encode(), "\U0001f600".encode(),
    "\u2028".encode(), b"\x85", b"\r", b"\r\n", b"\xed\xa0\x80", b"\\ud800", b'"\\ud800"', b"\\b", b"\\f",
    b"\x7f", b"\x1b[31m", b"~", b"yes", b"2026-01-01", b"<<: *a", b"!!binary aGk=", b"%YAML 1.1\n",
    b'"' + b"a" * 300 + b'"', b"a" * 300, b"__proto__", b"constructor", b"..", b"/etc/passwd",
]  # fmt: skip
STEP_NAMES = ["s0", "s1", "data", "train", "model", "nope", "", "../x", "s0[0]"]
PARAMS = ["epochs=abc", "epochs=0", "nope=1", "go=[1", "label=", "n=1e999", "items=!!binary x", "=1", "x"]
RUN_IDS = ["%", "_", "", "gen-", "../..", "x" * 300, "\x00"]
SETTINGS = generated_settings(60)
MEMORY_SETTINGS = generated_settings(4)
SECONDS = 10.0


@dataclass
class Outcome:
    code: int
    out: str
    err: str
    seconds: float


def call(argv: list[str]) -> Outcome:
    """`dmlc ARGV` in this process, with stdout and stderr captured as the terminal would encode them."""
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")  # strict, as a UTF-8 terminal: a lone surrogate fails
    err = io.StringIO()
    started = time.perf_counter()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse: a usage error
            code = exc.code if isinstance(exc.code, int) else 2
    seconds = time.perf_counter() - started
    out.flush()
    return Outcome(code, out.buffer.getvalue().decode("utf-8"), err.getvalue(), seconds)  # type: ignore[attr-defined]


def assert_sane(argv: list[str], outcome: Outcome) -> None:
    where = f"dmlc {' '.join(a[:60] for a in argv)}"
    assert outcome.code in (0, 1, 2, 3), (where, outcome.code, outcome.err[-2000:])
    assert "DML900]" not in outcome.err and "internal error" not in outcome.err, (where, outcome.err[-2000:])
    assert "Traceback" not in outcome.err, (where, outcome.err[-2000:])
    assert outcome.seconds < SECONDS, (where, outcome.seconds)


@st.composite
def hostile_mutation(draw: st.DrawFn, size: int) -> tuple[str, int, int, bytes]:
    """`tests.test_properties`' mutations, plus bit flips, truncation and the hostile tokens above."""
    kind = draw(st.sampled_from(["flip", "truncate", "hostile", "hostile", "base", "base", "base"]))
    if kind == "base":
        return draw(mutation(size))
    at = draw(st.integers(0, max(0, size - 1)))
    return kind, at, draw(st.integers(0, 7)), draw(st.sampled_from(HOSTILE))


def mutate(data: bytes, change: tuple[str, int, int, bytes]) -> bytes:
    kind, at, bit, token = change
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ (1 << bit)]) + data[at + 1 :] if at < len(data) else data
    if kind == "truncate":
        return data[:at]
    if kind == "hostile":
        return data[:at] + token + data[at:]
    return apply(data, change)


def as_dml(doc: dict[str, Any]) -> bytes | None:
    """The .dml twin of a generated YAML pipeline, when it is valid (`fmt --to dml` of it)."""
    from dmlc.fmt import to_dml
    from dmlc.ir.lower import lower
    from dmlc.parse import parse_text

    try:
        return to_dml(lower(parse_text(yaml.safe_dump(doc, sort_keys=False), "gen.yaml"))).encode()
    except DmlError:
        return None


@st.composite
def sources(draw: st.DrawFn) -> tuple[str, bytes]:
    """(suffix, bytes): a generated pipeline as YAML or .dml, or an example file."""
    if draw(st.integers(0, 2)) == 0:
        example = draw(st.sampled_from(EXAMPLES))
        return example.suffix, example.read_bytes()
    doc = draw(pipelines(max_steps=4))
    dml = as_dml(doc) if draw(st.booleans()) else None
    return (".dml", dml) if dml is not None else (".yaml", yaml.safe_dump(doc, sort_keys=False).encode())


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, bytes, list[list[str]]]:
    """A mutated source and the argument lists to run on it (FILE stands for its path)."""
    suffix, data = draw(sources())
    for _ in range(draw(st.integers(0, 4))):
        data = mutate(data, draw(hostile_mutation(len(data))))
    return suffix, data, draw(commands())


@st.composite
def commands(draw: st.DrawFn) -> list[list[str]]:
    param = ["--param", draw(st.sampled_from(PARAMS))] if draw(st.integers(0, 3)) == 0 else []
    fmt = draw(st.sampled_from([["-o", "-"], ["--check"], ["--diff"], ["--to", "dml", "-o", "-"]]))
    argvs = [
        ["check", "FILE", "--format", draw(st.sampled_from(["human", "short", "json"]))],
        *(["compile", "FILE", "-t", target, *param] for target in TARGETS),
        ["fmt", "FILE", "--to", "yaml", "-o", "-"],
        ["fmt", "FILE", *fmt],
        ["fmt", "COPY"],  # in place, on a copy of the file
        ["graph", "FILE", "--format", draw(st.sampled_from(["mermaid", "dot"]))],
        ["cache", "explain", "FILE", draw(st.sampled_from(STEP_NAMES)), *param],
    ]
    if draw(st.integers(0, 4)) == 0:
        argvs.append(["runs", "show", draw(st.sampled_from(RUN_IDS))])
    return argvs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A scratch folder, also the working directory (`cache explain` and `runs` open ./.dmlc)."""
    path = tmp_path_factory.mktemp("fuzz")
    before = os.getcwd()
    os.chdir(path)
    yield path
    os.chdir(before)


def check_fmt(workdir: Path, argv: list[str], outcome: Outcome, original: Path) -> None:
    """A formatted file means what the original meant, and formatting it again changes nothing."""
    if outcome.code != 0 or "--check" in argv or "--diff" in argv:
        return
    if "-o" not in argv:  # formatted in place
        assert load(argv[1]).pipeline == load(str(original)).pipeline, argv
        assert_sane(["fmt", "--check", argv[1]], again := call(["fmt", "--check", argv[1]]))
        assert again.code == 0, (argv, again.err)
        return
    syntax = argv[argv.index("--to") + 1] if "--to" in argv else ("yaml" if original.suffix != ".dml" else "dml")
    formatted = workdir / f"formatted.{syntax}"
    formatted.write_text(outcome.out, encoding="utf-8")
    assert load(str(formatted)).pipeline == load(str(original)).pipeline, (argv, outcome.out[:2000])
    again = call(["fmt", str(formatted), "-o", "-"])
    assert_sane(["fmt", str(formatted), "-o", "-"], again)
    assert again.code == 0 and again.out == outcome.out, (argv, outcome.out[:2000], again.out[:2000], again.err)


@SETTINGS
@given(case=cases())
def test_every_command_survives_generated_and_mutated_pipelines(
    workdir: Path, case: tuple[str, bytes, list[list[str]]]
) -> None:
    suffix, data, argvs = case
    path, copy = workdir / f"p{suffix}", workdir / f"inplace{suffix}"
    path.write_bytes(data)
    copy.write_bytes(data)
    for template in argvs:
        argv = [{"FILE": str(path), "COPY": str(copy)}.get(a, a) for a in template]
        outcome = call(argv)
        assert_sane(argv, outcome)
        if argv[0] == "fmt":
            check_fmt(workdir, argv, outcome, path)


def test_schema_explain_and_targets_answer(workdir: Path) -> None:
    for argv in (["schema"], ["targets"], ["explain", "DML022"], ["explain", "nope\x00"], ["runs", "list"]):
        assert_sane(argv, call(argv))


INFLATE = [
    ("repeat every line", lambda data, n: b"\n".join(line for line in data.split(b"\n") for _ in range(n * 50))),
    ("many copies", lambda data, n: data + b"\n" + data.replace(b"pipeline", b"#", 1) * (n * 200)),
    ("deep nesting", lambda data, n: data[: len(data) // 2] + b"[" * (n * 2000) + data[len(data) // 2 :]),
    ("a long string", lambda data, n: data.replace(b'"', b'"' + b"x" * (n * 100_000), 1)),
    ("many escapes", lambda data, n: data.replace(b'"', b'"' + b"\\n" * (n * 100_000), 1)),
    ("huge numbers", lambda data, n: data.replace(b"1", b"9" * (n * 1000), 3)),
]
LIMITED = (
    "import resource, sys\nresource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))\n"
    "from dmlc.cli import main\nsys.exit(main(sys.argv[1:]))\n"
)


@MEMORY_SETTINGS
@given(source=sources(), inflate=st.sampled_from(INFLATE), scale=st.integers(1, 30), target=st.sampled_from(TARGETS))
def test_inflated_pipelines_stay_within_a_gigabyte_and_ten_seconds(
    workdir: Path, source: tuple[str, bytes], inflate: Any, scale: int, target: str
) -> None:
    suffix, data = source
    path = workdir / f"big{suffix}"
    path.write_bytes(inflate[1](data, scale))
    for argv in (
        ["check", str(path)],
        ["compile", str(path), "-t", target],
        ["fmt", str(path), "--to", "yaml", "-o", "-"],
    ):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LIMITED, *argv], capture_output=True, text=True, timeout=60)
        outcome = Outcome(done.returncode, "", done.stderr, time.perf_counter() - started)
        assert_sane([inflate[0], *argv], outcome)
        assert "MemoryError" not in outcome.err, (inflate[0], argv, outcome.err[-2000:])
