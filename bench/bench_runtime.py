"""Runtime benchmarks (issue 6, "Measured"): prints three tables.

1. Caching pattern: epoch time over 3 epochs with cache = none / memory / disk. The source is the
   ingest artifact's TFRecord shards (shard = "file"), so every uncached epoch re-reads and re-parses
   records; a cached epoch reads decoded tensors. Both the input pipeline alone and model.fit are timed.
2. Replicated serving: throughput and p50/p99 latency with replicas = 1 vs 2 under a bounded
   concurrent load generator (httpx, fixed request count) on 127.0.0.1.
3. Allreduce: a 3-epoch train step with 1 vs 2 workers (same per-replica batch; wall time of the step).

Usage: PYTHONPATH=. python bench/bench_runtime.py [--quick]. Uses the real Fashion-MNIST subset when
../shared/data/make_fashion_idx.py exists, else scikit-learn digits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))


def run_step(kind: str, attrs: dict, root: Path) -> float:
    """Run one step as the executor would; its wall time in seconds."""
    root.mkdir(parents=True, exist_ok=True)
    spec = {"pipeline": "bench", "step": kind, "kind": kind, "attrs": attrs, "outputs_dir": str(root / "out")}
    spec |= {"work_dir": str(root / "work"), "volumes": {}, "seed": 0}
    (root / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    started = time.perf_counter()
    argv = [sys.executable, "-m", "dmlc.runtime", kind, "--spec", str(root / "spec.json")]
    proc = subprocess.run(argv, env=env, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"{kind} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return time.perf_counter() - started


def make_data(tmp: Path) -> Path:
    if (SHARED / "data" / "make_fashion_idx.py").exists():
        subprocess.run([sys.executable, str(SHARED / "data" / "make_fashion_idx.py"), str(tmp / "idx")], check=True)
        attrs = {"dataset": "fashion_mnist", "path": str(tmp / "idx"), "format": "idx"}
    else:
        attrs = {"dataset": "digits"}
    run_step("ingest", attrs | {"batch": 32, "shard": "file", "num_shards": 4}, tmp / "ingest")
    return tmp / "ingest" / "out" / "dataset"


def pipeline_epochs(ds, steps: int, epochs: int = 3) -> list[float]:
    """Seconds per epoch of reading the input pipeline alone."""
    it, out = iter(ds), []
    for _ in range(epochs):
        start = time.perf_counter()
        for _ in range(steps):
            next(it)
        out.append(time.perf_counter() - start)
    return out


def fit_epochs(keras, model, ds, steps: int, epochs: int = 3) -> list[float]:
    """Seconds per epoch of model.fit on the pipeline."""
    times: list[float] = []
    marks = keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda e, logs: times.append(-time.perf_counter()),
        on_epoch_end=lambda e, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    model.fit(ds, epochs=epochs, steps_per_epoch=steps, callbacks=[marks], verbose=0)
    return times


def bench_cache(data: Path, tmp: Path) -> None:
    from dmlc.runtime.data import load_info, make_dataset
    from dmlc.runtime.models import build_model, compile_model
    from dmlc.runtime.tfenv import import_tf

    _, keras = import_tf()
    info = load_info(data)
    steps = info["n_train"] // info["batch"]
    print(
        f"\n## caching pattern ({info['name']}, {info['n_train']} examples, batch {info['batch']}, {steps} steps/epoch)"
    )
    print(f"{'cache':<8} {'pipeline epoch 1/2/3 (s)':<28} {'fit epoch 1/2/3 (s)':<28}")
    for mode in ("none", "memory", "disk"):
        over = {"cache": mode}
        pipe = pipeline_epochs(make_dataset(data, "train", cache_dir=tmp / f"cache-{mode}", overrides=over), steps)
        model = compile_model(build_model("cnn", info["input_shape"], info["num_classes"]))
        fit_ds = make_dataset(data, "train", cache_dir=tmp / f"fitcache-{mode}", overrides=over)
        fit = fit_epochs(keras, model, fit_ds, steps)
        print(f"{mode:<8} {' / '.join(f'{t:.3f}' for t in pipe):<28} {' / '.join(f'{t:.3f}' for t in fit):<28}")


async def load(endpoint: str, body: dict, requests: int, concurrency: int) -> tuple[float, list[float]]:
    import httpx

    latencies: list[float] = []
    queue = iter(range(requests))

    async def client(session: httpx.AsyncClient) -> None:
        for _ in queue:
            start = time.perf_counter()
            reply = await session.post(endpoint, json=body)
            reply.raise_for_status()
            latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=60) as session:
        await session.post(endpoint, json=body)  # warm up the first graph call
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return time.perf_counter() - started, latencies


def bench_serving(model: Path, x: np.ndarray, requests: int, concurrency: int, rounds: int = 3) -> None:
    """Both servers stay up; load rounds alternate between them so background noise hits both alike."""
    from dmlc.runtime.local_cluster import free_ports
    from dmlc.runtime.serve import server_argv, wait_ready

    body = {"instances": x[:8].tolist()}
    print(f"\n## replicated serving ({requests} requests of 8 instances, {concurrency} concurrent clients,")
    print(f"##   median of {rounds} alternating rounds)")
    print(f"{'replicas':<9} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
    procs, endpoints = {}, {}
    try:
        for replicas, port in zip((1, 2), free_ports(2), strict=True):
            argv = server_argv(str(model), "bench", port, replicas)
            procs[replicas] = subprocess.Popen(argv, env=env, start_new_session=True, stderr=subprocess.DEVNULL)
            endpoints[replicas] = f"http://127.0.0.1:{port}/v1/models/bench"
            wait_ready(endpoints[replicas], procs[replicas])
        time.sleep(5.0)  # let every replica finish loading the model
        results: dict[int, list[tuple[float, float, float]]] = {1: [], 2: []}
        for _ in range(rounds):
            for replicas, endpoint in endpoints.items():
                elapsed, lat = asyncio.run(load(f"{endpoint}:predict", body, requests, concurrency))
                p50, p99 = np.percentile(np.array(lat) * 1000, [50, 99])
                results[replicas].append((requests / elapsed, p50, p99))
        for replicas, rows in results.items():
            rps, p50, p99 = np.median(np.array(rows), axis=0)
            print(f"{replicas:<9} {rps:>8.1f} {p50:>8.1f} {p99:>8.1f}")
    finally:
        for proc in procs.values():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def bench_allreduce(data: Path, tmp: Path) -> None:
    print("\n## allreduce (3 epochs, cnn, batch 32 per replica)")
    print(f"{'workers':<8} {'step wall s':>12} {'train s':>9} {'accuracy':>9}")
    for workers in (1, 2):
        root = tmp / f"allreduce-{workers}"
        attrs = {"data": str(data), "model": "cnn", "epochs": 3, "strategy": "allreduce", "workers": workers}
        wall = run_step("train", attrs, root)
        metrics = json.loads((root / "out" / "metrics").read_text())
        print(f"{workers:<8} {wall:>12.2f} {metrics['seconds']:>9.2f} {metrics['accuracy']:>9.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer serving requests")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dmlc-bench-") as name:
        tmp = Path(name)
        data = make_data(tmp)
        bench_cache(data, tmp)
        run_step("train", {"data": str(data), "model": "cnn", "epochs": 1}, tmp / "model")
        x = np.load(data / "test.npz")["x"]
        bench_serving(tmp / "model" / "out" / "model", x, 100 if args.quick else 400, 8)
        bench_allreduce(data, tmp)


if __name__ == "__main__":
    main()
