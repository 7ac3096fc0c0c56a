"""Helpers the adversarial tests share: run the CLI in-process (never DML900, never a traceback) or in a
fresh interpreter that reports its peak memory."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dmlc.cli import main

TARGETS = ("argo", "kfp", "local")
# VmHWM, not getrusage's ru_maxrss: Linux folds the peak of the memory image exec replaces into ru_maxrss,
# and with vfork that image is pytest's own, so a long test session made every child look big.
PEAK_SCRIPT = (
    "import re, sys\nfrom dmlc.cli import main\nstatus = main(sys.argv[1:])\n"
    "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
    "sys.stderr.write(f'\\nPEAK {hwm // 1024}\\n')\n"
    "sys.exit(status)\n"
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """`dmlc ARGV` in this process: (exit code, stderr); fails on DML900 or a traceback."""
    code = main(list(argv))
    err = capsys.readouterr().err
    assert "DML900" not in err and "Traceback" not in err, err
    return code, err


def check_and_compile(path: str, out: str) -> list[tuple[str, ...]]:
    """The argument lists of `check` and of `compile` for every target."""
    return [("check", path), *(("compile", path, "-t", t, "-o", out) for t in TARGETS)]


def peak_mb(*argv: str, timeout: float = 60) -> tuple[int, str, int]:
    """`dmlc ARGV` in a fresh interpreter: (exit code, stderr, peak resident memory in MB)."""
    done = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, *argv], capture_output=True, text=True, timeout=timeout)
    err, _, peak = done.stderr.rpartition("\nPEAK ")
    return done.returncode, err, int(peak)
