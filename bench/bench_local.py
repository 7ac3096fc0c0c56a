"""Benchmark of the local executor (`dmlc run --local`), printed as a small report.

1. Overhead per step: a fan-out of N no-op `command` steps run by the executor, against the same N
   commands spawned bare with the same concurrency (goal: executor <= 1.5x bare + 0.5 s start-up).
   Measured in-process (executor only) and through the CLI (with interpreter and import start-up).
2. kfp.local running the same fan-out compiled by the kfp target (SubprocessRunner, use_venv=False).
3. A memoized re-run of a small book-shaped pipeline (ingest -> 3 trains -> select), end to end.

Usage: python bench/bench_local.py [--sizes 100 1000] [--kfp-size 100] [--no-kfp]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PARALLELISM = 4


def env() -> dict[str, str]:
    """`dmlc_targets` importable even from an install that predates the target packages."""
    shim = Path(tempfile.gettempdir()) / f"dmlc-shim-{os.getuid()}"
    shim.mkdir(exist_ok=True)
    if not (shim / "dmlc_targets").exists():
        (shim / "dmlc_targets").symlink_to(ROOT / "targets")
    if str(shim) not in sys.path:
        sys.path.insert(0, str(shim))
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), os.environ.get("PYTHONPATH", "")])}


def fanout(n: int, command: list[str]) -> str:
    items = ", ".join(str(i) for i in range(n))
    cmd = json.dumps(command)
    return (
        f"pipeline bench {{\n  scheduling {{ parallelism = {PARALLELISM} }}\n"
        f"  task noop {{\n    for_each = [{items}]\n    command = {cmd}\n  }}\n}}\n"
    )


def bare(n: int, command: list[str]) -> float:
    """N spawns of `command`, PARALLELISM at a time, each with its output to a file (like a step log)."""

    def one(i: int, folder: Path) -> None:
        with open(folder / f"{i}.log", "wb") as log:
            subprocess.run(command, stdout=log, stderr=log, check=True)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        with ThreadPoolExecutor(PARALLELISM) as pool:
            list(pool.map(lambda i: one(i, Path(tmp)), range(n)))
        return time.perf_counter() - start


def in_process(n: int, command: list[str]) -> float:
    from dmlc_targets.local.runner import RunRequest, execute

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "p.dml").write_text(fanout(n, command))
        old = os.getcwd()
        os.chdir(tmp)
        try:
            start = time.perf_counter()
            code = execute(RunRequest("p.dml"), io.StringIO())
            took = time.perf_counter() - start
        finally:
            os.chdir(old)
    assert code == 0, "bench pipeline failed"
    return took


def via_cli(text: str, folder: Path, extra: tuple[str, ...] = ()) -> float:
    (folder / "p.dml").write_text(text)
    cmd = [sys.executable, "-m", "dmlc.cli", "run", "p.dml", "--local", *extra]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=folder, env=env(), check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def cli_fresh(text: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        return via_cli(text, Path(tmp))


def kfp_local(n: int, command: list[str]) -> float | str:
    try:
        from kfp import components, local

        from dmlc.driver import compile_file
    except ImportError as exc:
        return f"skipped ({exc})"
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "p.dml"
        src.write_text(fanout(n, command))
        compiled = Path(tmp) / "p.yaml"
        compiled.write_text(compile_file(str(src), "kfp"))
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(Path(tmp) / "root"))
        pipeline = components.load_component_from_file(str(compiled))
        with quiet():
            start = time.perf_counter()
            pipeline()
            return time.perf_counter() - start


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence kfp.local's per-task logs (its subprocesses write to our fds 1 and 2)."""
    sys.stdout.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


BOOK = """\
pipeline book {
  defaults { memoize { max_age = 1d } }
  task data {
    command = ["python", "-c", "import os; os.makedirs(os.environ['DMLC_OUTPUTS'] + '/dataset')"]
    outputs { dataset = "artifact" }
  }
  task model {
    for_each = ["cnn", "dropout", "batch_norm"]
    command = ["python", "-c", "import os; open(os.environ['DMLC_OUTPUTS'] + '/metrics', 'w').write('0.7')"]
    args = ["${data.dataset}", "${each}"]
    outputs { metrics = "param" }
  }
  task best {
    command = ["python", "-c", "import os, sys; open(os.environ['DMLC_OUTPUTS'] + '/metrics', 'w').write(sys.argv[1])"]
    args = ["${model[*].metrics}"]
    outputs { metrics = "param" }
  }
}
"""


def best(repeat: int, fn: Callable[[], float]) -> float:
    """The fastest of `repeat` runs: the machine is shared, and noise only ever adds time."""
    return min(fn() for _ in range(repeat))


def report(sizes: list[int], kfp_size: int, with_kfp: bool, repeat: int) -> None:
    env()
    noop = ["true"]
    py = [sys.executable, "-c", "pass"]
    print(f"machine: {os.cpu_count()} cores; parallelism {PARALLELISM} for the executor and the bare baseline")
    one = best(repeat, lambda: cli_fresh(fanout(1, noop)))
    print(f"best of {repeat} runs each")
    print(f"start-up: `dmlc run` of a 1-step pipeline, end to end: {one:.3f} s")
    for command, label in ((noop, "true"), (py, "python -c pass")):
        for n in sizes:
            b = best(repeat, lambda: bare(n, command))  # noqa: B023 (called right here)
            e = best(repeat, lambda: in_process(n, command))  # noqa: B023
            cli = best(repeat, lambda: cli_fresh(fanout(n, command)))  # noqa: B023
            per = (e - b) / n * 1000
            ok = "meets" if cli <= 1.5 * b + 0.5 else "misses"
            print(
                f"{n:>5} x `{label}`: bare {b:.2f} s ({b / n * 1000:.1f} ms/step), executor {e:.2f} s "
                f"({e / n * 1000:.1f} ms/step, +{per:.1f} ms/step), CLI {cli:.2f} s = {cli / b:.2f}x bare "
                f"[{ok} goal 1.5x + 0.5 s]"
            )
    if with_kfp:
        k = kfp_local(kfp_size, py)
        e = in_process(kfp_size, py)
        if isinstance(k, float):
            print(f"kfp.local, {kfp_size} x `python -c pass`: {k:.2f} s ({k / kfp_size * 1000:.0f} ms/task); ", end="")
            print(f"dmlc executor {e:.2f} s: kfp.local / dmlc = {k / e:.1f}x")
        else:
            print(f"kfp.local: {k}")
    with tempfile.TemporaryDirectory() as tmp:
        first = via_cli(BOOK, Path(tmp))
        again = via_cli(BOOK, Path(tmp))
    print(f"book-shaped pipeline (5 steps, memoized): first run {first:.2f} s, memoized re-run {again:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--kfp-size", type=int, default=100)
    parser.add_argument("--no-kfp", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="report the fastest of this many runs")
    args = parser.parse_args()
    report(args.sizes, args.kfp_size, not args.no_kfp, args.repeat)


if __name__ == "__main__":
    main()
