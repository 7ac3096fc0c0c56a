"""Benchmark of compiling very large pipelines (issue 15, goal 1): prints numbers, asserts nothing.

Whole-process `dmlc check` and `dmlc compile --target argo` of generated pipelines of 1,000 / 10,000 /
100,000 steps (bench_argo's DAG: step i runs a command reading steps i-1 and (i-1)//2), with wall time, CPU time,
peak memory (the child's ru_maxrss) and the cost per step at each size, beside:
- peer: the same DAG built with hera's own API and dumped by it (up to --hera-max steps);
- floor: the finished workflow as plain dicts dumped with PyYAML's C emitter (no dmlc, no hera), and for
  `check`, reading the pipeline's YAML form with PyYAML's C loader.

Issue 12's input limits (8 MiB, 600,000 tokens: about 17,000 steps) refuse 100,000 steps with DML200;
the children lift them (`--keep-limits` keeps them). Usage:
python bench/bench_scale.py [--sizes 1000,10000,100000] [--hera-max 10000] [--keep-limits]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

DMLC = """
import sys
if sys.argv[1] == "lift":
    import dmlc.parse, dmlc.parse.dml
    dmlc.parse.MAX_BYTES, dmlc.parse.dml.MAX_TOKENS = 1 << 27, 1 << 30
from dmlc.cli import main
sys.exit(main(sys.argv[2:]))
"""

HERA = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_argo import hera_compile
open(sys.argv[3], "w").write(hera_compile(int(sys.argv[2]))())
"""

FLOOR_ARGO = """
import sys
sys.path.insert(0, sys.argv[1])
from bench_argo import floor_compile
open(sys.argv[3], "w").write(floor_compile(int(sys.argv[2]))())
"""

FLOOR_CHECK = """
import sys, yaml
yaml.load(open(sys.argv[1]).read(), Loader=yaml.CSafeLoader)
"""


def pipeline(n: int) -> str:
    """bench_argo's DAG (the one hera and the floor build) as a .dml file: a command, args, one output."""
    from bench_argo import pipeline_data

    lines = [f"pipeline {pipeline_data(0)['pipeline']} {{"]
    for name, step in pipeline_data(n)["steps"].items():
        command = ", ".join(f'"{part}"' for part in step["command"])
        args = ", ".join(f'"{arg}"' for arg in step["args"])
        lines.append(f'  task {name} {{ command = [{command}]  args = [{args}]  outputs {{ out = "param" }} }}')
    return "\n".join(lines) + "\n}\n"


def yaml_twin(n: int) -> str:
    import yaml
    from bench_argo import pipeline_data

    return yaml.dump(pipeline_data(n), Dumper=yaml.CSafeDumper)


def run(argv: list[str], timeout: float) -> tuple[float, float, float] | None:
    """(wall s, CPU s, peak MB) of one child process, or None when it failed or ran out of time."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = start + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() > deadline:
            proc.kill()
            proc.wait()
            return None
        time.sleep(0.01)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.stderr.write(proc.stderr.read().decode()[-2000:] if proc.stderr else "")
        return None
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def cell(result: tuple[float, float, float] | None, n: int) -> str:
    if result is None:
        return f"{'-':>8} {'':>7} {'':>7} {'':>8}"
    wall, cpu, peak = result
    return f"{wall:8.2f} {cpu:7.2f} {peak:7.0f} {cpu / n * 1e6:8.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--hera-max", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--keep-limits", action="store_true")
    args = parser.parse_args()
    py, mode = sys.executable, "keep" if args.keep_limits else "lift"
    print(f"columns: wall s, CPU s, peak MB, CPU us/step (one run each, {os.cpu_count()} CPUs)")
    head = f"{'wall':>8} {'cpu':>7} {'MB':>7} {'us/step':>8}"
    print(f"{'N':>7} | {'what':<28} | {head}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(s) for s in args.sizes.split(",")):
            src, out = Path(tmp) / f"big{n}.dml", Path(tmp) / "out.yaml"
            src.write_text(pipeline(n))
            twin = Path(tmp) / f"big{n}.yaml"
            twin.write_text(yaml_twin(n))
            bench = str(ROOT / "bench")
            argo = [py, "-c", DMLC, mode, "compile", str(src), "--target", "argo", "-o", str(out)]
            hera = [py, "-c", HERA, bench, str(n), str(out)] if n <= args.hera_max else None
            rows = [
                ("dmlc check", [py, "-c", DMLC, mode, "check", str(src)]),
                ("floor: C YAML loader", [py, "-c", FLOOR_CHECK, str(twin)]),
                ("dmlc compile --target argo", argo),
                ("peer: hera's API", hera),
                ("floor: dicts + C dumper", [py, "-c", FLOOR_ARGO, bench, str(n), str(out)]),
            ]
            for label, argv in rows:
                result = run(argv, args.timeout) if argv else None
                print(f"{n:>7} | {label:<28} | {cell(result, n)}", flush=True)


if __name__ == "__main__":
    main()
