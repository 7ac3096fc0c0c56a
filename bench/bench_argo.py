"""Benchmark of the Argo target (stage 4, emit): whole-process compile of the book pipeline, and in-process
compile time of generated N-step pipelines next to (a) the same DAG built with hera's own API and (b) the
floor: the final plain dict built directly and dumped with PyYAML's C emitter. Prints a table.

Usage: python bench/bench_argo.py [--sizes 100,1000,5000] [--repeat 3] [--hera-max 5000]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "examples" / "fashion_mnist.dml"


class FloorDumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """PyYAML's C dumper with its stock str representer (importing hera replaces it globally)."""


FloorDumper.add_representer(str, yaml.representer.SafeRepresenter.represent_str)
CODE = "import os, sys; open(os.path.join(os.environ['DMLC_OUTPUTS'], 'out'), 'w').write('1')"


def upstreams(i: int) -> list[int]:
    """A DAG with fan-in: step i reads step i-1 and step (i-1)//2."""
    return sorted({i - 1, (i - 1) // 2}) if i else []


def pipeline_data(n: int) -> dict[str, Any]:
    steps: dict[str, Any] = {}
    for i in range(n):
        args = [f"${{s{j}.out}}" for j in upstreams(i)]
        steps[f"s{i}"] = {"kind": "task", "command": ["python", "-c", CODE], "args": args, "outputs": {"out": "param"}}
    return {"pipeline": f"bench{n}", "steps": steps}


def dmlc_compile(n: int) -> Callable[[], str]:
    from dmlc_targets.argo import ArgoOptions, ArgoTarget

    from dmlc.ir.model import Pipeline
    from dmlc.parse.document import Document
    from dmlc.source import Source
    from dmlc.targets import CompileContext

    pipeline = Pipeline.model_validate(pipeline_data(n))
    document = Document({}, Source(f"bench{n}.dml", ""))
    target = ArgoTarget()

    def run() -> str:
        ctx = CompileContext(document, ArgoOptions(), {})
        return target.emit(target.check(pipeline, ctx).plan, ctx)

    return run


def hera_compile(n: int) -> Callable[[], str]:
    def run() -> str:
        from hera.workflows import DAG, Container, Parameter, Workflow

        with Workflow(generate_name=f"bench{n}-", entrypoint="main") as w:
            containers = []
            for i in range(n):
                ins = [Parameter(name=f"s{j}-out") for j in upstreams(i)]
                containers.append(
                    Container(
                        name=f"s{i}",
                        image="ghcr.io/dmlc/runtime:0.1",
                        command=["python", "-c", CODE],
                        args=[f"{{{{inputs.parameters.s{j}-out}}}}" for j in upstreams(i)],
                        inputs=ins,
                        outputs=[Parameter(name="out", value_from={"path": "/tmp/out"})],
                    )
                )
            with DAG(name="main"):
                tasks = []
                for i in range(n):
                    args = {f"s{j}-out": f"{{{{tasks.s{j}.outputs.parameters.out}}}}" for j in upstreams(i)}
                    tasks.append(containers[i](name=f"s{i}", arguments=args))
                    for j in upstreams(i):
                        tasks[j] >> tasks[i]
        return w.to_yaml()

    return run


def floor_compile(n: int) -> Callable[[], str]:
    def run() -> str:
        templates = []
        dag_tasks = []
        for i in range(n):
            ups = upstreams(i)
            templates.append(
                {
                    "name": f"s{i}",
                    "inputs": {"parameters": [{"name": f"s{j}-out"} for j in ups]},
                    "outputs": {"parameters": [{"name": "out", "valueFrom": {"path": "/tmp/out"}}]},
                    "container": {
                        "image": "ghcr.io/dmlc/runtime:0.1",
                        "command": ["python", "-c", CODE],
                        "args": [f"{{{{inputs.parameters.s{j}-out}}}}" for j in ups],
                    },
                }
            )
            task: dict[str, Any] = {"name": f"s{i}", "template": f"s{i}"}
            if ups:
                task["arguments"] = {
                    "parameters": [
                        {"name": f"s{j}-out", "value": f"{{{{tasks.s{j}.outputs.parameters.out}}}}"} for j in ups
                    ]
                }
                task["depends"] = " && ".join(f"s{j}" for j in ups)
            dag_tasks.append(task)
        doc = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"generateName": f"bench{n}-"},
            "spec": {"entrypoint": "main", "templates": [{"name": "main", "dag": {"tasks": dag_tasks}}, *templates]},
        }
        return yaml.dump(doc, Dumper=FloorDumper, sort_keys=False)

    return run


def best_of(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def whole_process(repeat: int) -> tuple[float, float]:
    """Median wall time of `python -m dmlc.cli compile` and of `python -c 'import hera.workflows'`."""

    def timed(argv: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
        return time.perf_counter() - start

    cli = [sys.executable, "-m", "dmlc.cli", "compile", str(BOOK), "--target", "argo"]
    compile_t = statistics.median(timed(cli) for _ in range(repeat))
    hera_t = statistics.median(timed([sys.executable, "-c", "import hera.workflows"]) for _ in range(repeat))
    return compile_t, hera_t


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,1000,5000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--hera-max", type=int, default=5000, help="skip the hera-API column above this size")
    args = ap.parse_args(argv)
    compile_t, hera_t = whole_process(max(args.repeat, 5))
    print(f"whole process: dmlc compile --target argo {BOOK.name}: {compile_t:.3f} s (median)")
    print(f"               python -c 'import hera.workflows':        {hera_t:.3f} s (median)")
    print(f"               dmlc's own share:                          {compile_t - hera_t:.3f} s")
    print()
    print(f"{'steps':>6} | {'dmlc (s)':>9} | {'hera API (s)':>12} | {'floor (s)':>9} | dmlc/floor | output")
    print("-" * 70)
    for n in (int(s) for s in args.sizes.split(",")):
        out_len = len(dmlc_compile(n)())
        dmlc_t = best_of(dmlc_compile(n), args.repeat)
        floor_t = best_of(floor_compile(n), args.repeat)
        hera_col = f"{best_of(hera_compile(n), 1):12.3f}" if n <= args.hera_max else f"{'skipped':>12}"
        ratio = dmlc_t / floor_t
        print(f"{n:>6} | {dmlc_t:9.3f} | {hera_col} | {floor_t:9.3f} | {ratio:10.2f} | {out_len / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
