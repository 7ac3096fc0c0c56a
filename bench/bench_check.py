"""Benchmark of the front end (issue 2): prints numbers, asserts nothing.

1. whole-process `dmlc check examples/fashion_mnist.dml` wall and CPU time (goal < 250 ms, issue 15), which
   heavy modules the check path imports (must be none of tensorflow, keras, kfp, hera) and its slowest imports;
2. in-process parse + lower + validate of generated pipelines with 100 / 1,000 / 10,000 steps
   (goal: linear; 10k under 2 s), in both syntaxes.
Run: python bench/bench_check.py
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "examples" / "fashion_mnist.dml"


def whole_process(runs: int = 7) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of `dmlc check` of the book, each in a fresh interpreter (bytecode compiled
    first, as an installed package has it; PYTHONDONTWRITEBYTECODE would otherwise recompile dmlc each run)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "dmlc"), str(ROOT / "targets")],
                   check=True, capture_output=True)  # fmt: skip
    walls, cpus = [], []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "dmlc.cli", "check", str(BOOK)], stdout=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        walls.append(time.perf_counter() - start)
        cpus.append(usage.ru_utime + usage.ru_stime)
    return walls, cpus


def slowest_imports(top: int = 6) -> list[tuple[str, float]]:
    """The check's imports that cost most (cumulative ms, `python -X importtime`)."""
    code = f"from dmlc.cli import main; main(['check', {str(BOOK)!r}])"
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True).stderr
    rows = []
    for line in err.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
            if cumulative.isdigit():
                rows.append((name, int(cumulative) / 1000))
    return sorted(rows, key=lambda r: -r[1])[:top]


def bare_python(runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def heavy_imports() -> list[str]:
    code = (
        f"import sys; from dmlc.cli import main; main(['check', {str(BOOK)!r}]);"
        "print([m for m in ('tensorflow','keras','tf_keras','kfp','hera','networkx') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    import ast

    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


def generated_dml(n: int) -> str:
    lines = ["pipeline big {", "  params { epochs = 1 }", '  ingest s0 { dataset = "digits" }']
    for i in range(1, n):
        up = f"s{(i - 1) // 2}"
        lines.append(
            f'  task s{i} {{ command = ["echo", "${{{up}.out}}"]  outputs {{ out = "param" }}'
            f"  retry {{ limit = 2  backoff = 10s }}  resources {{ cpu = 500m  memory = 1Gi }} }}"
        )
    lines[2] = '  task s0 { command = ["echo", "0"]  outputs { out = "param" } }'
    lines.append("}")
    return "\n".join(lines) + "\n"


def in_process(n: int, syntax: str) -> float:
    from dmlc.driver import load
    from dmlc.fmt import to_yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.dml"
        path.write_text(generated_dml(n))
        if syntax == "yaml":
            yaml_path = Path(tmp) / "big.yaml"
            yaml_path.write_text(to_yaml(load(str(path)).pipeline))
            path = yaml_path
        start = time.perf_counter()
        load(str(path))
        return time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(ROOT))
    walls, cpus = whole_process()
    print("dmlc check examples/fashion_mnist.dml (whole process, 7 runs)")
    print(f"  wall: median {statistics.median(walls) * 1000:.0f} ms, min {min(walls) * 1000:.0f} ms (goal < 250 ms)")
    print(f"  CPU: median {statistics.median(cpus) * 1000:.0f} ms (what a shared machine does not inflate)")
    print(f"  floor: bare `python -c pass`: {bare_python() * 1000:.0f} ms")
    print(f"  heavy modules imported by check: {heavy_imports() or 'none'}")
    print("  slowest imports (cumulative ms): " + ", ".join(f"{n} {ms:.0f}" for n, ms in slowest_imports()))
    print("\nparse + lower + validate, generated pipelines")
    print(f"  {'steps':>7} {'dml s':>8} {'yaml s':>8} {'dml us/step':>12}")
    for n in (100, 1000, 10000):
        dml, yml = in_process(n, "dml"), in_process(n, "yaml")
        print(f"  {n:>7} {dml:>8.3f} {yml:>8.3f} {dml / n * 1e6:>12.1f}")


if __name__ == "__main__":
    main()
