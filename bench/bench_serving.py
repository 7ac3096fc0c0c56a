"""Serving benchmark (issue 15, goal 4): dmlc's model server beside KServe's and the floor, one run.

The book's `cnn` (28x28x1, Fashion-MNIST) as a SavedModel, served on 127.0.0.1 by
  dmlc           `python -m dmlc.runtime.serve` (supervisor + 1 worker, request batching: max 32, 2 ms)
  dmlc unbatched the same with `batching { max_batch = 1 }` (one model call per request)
  dmlc x2 / /2   replicas = 2, shards = 2
  kserve         KServe's own `kserve.ModelServer` with a `kserve.Model` calling the same SavedModel's
                 `serving_default` (the peer; run by the kserve venv of tests/runtime/test_clients.py,
                 which borrows TensorFlow from this venv)
  floor          a bare starlette endpoint: orjson body -> numpy -> `serving_default` -> orjson, no checks
and loaded by a small keep-alive HTTP/1.1 client (pre-encoded requests, asyncio + uvloop) for a fixed
time per case: requests of 8 images at concurrency 8, requests of one image at concurrency 1, 8, 32.
Each server runs alone while it is measured. Bodies are `{"instances": x.tolist()}` of float32 images.

Usage: .venv/bin/python bench/bench_serving.py [--model SAVEDMODEL] [--seconds 3] [--only dmlc,floor]
(without --model it ingests the Fashion-MNIST subset and trains one epoch of the cnn first).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KSERVE_VENV = Path.home() / ".cache" / "dmlc-tests" / "kserve-0.21.0-py3.11"
CASES = [(8, 8), (1, 1), (1, 8), (1, 32)]  # (images per request, concurrency)
GOALS = {(8, 8): "goal >= 5,000 img/s, p50 < 15 ms", (1, 32): "goal >= 2,000 req/s, p99 < 50 ms"}


# ---- servers (each also runs as this script in a child process) -------------------------------


def _serving_fn(model_dir: str):
    import tensorflow as tf

    fn = tf.saved_model.load(model_dir).signatures["serving_default"]
    _, kwargs = fn.structured_input_signature
    in_name = next(iter(kwargs))
    out_name = next(iter(fn.structured_outputs))
    return lambda x: fn(**{in_name: tf.constant(x)})[out_name].numpy()


def serve_floor(model_dir: str, port: int) -> None:
    import numpy as np
    import orjson
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    call = _serving_fn(model_dir)
    gc.collect()
    gc.freeze()  # as dmlc's worker does: TensorFlow's objects out of the collections

    async def predict(request):
        x = np.asarray(orjson.loads(await request.body())["instances"], dtype=np.float32)
        out = call(x).astype(np.float64)
        return Response(orjson.dumps({"predictions": out}, option=orjson.OPT_SERIALIZE_NUMPY))

    async def ready(request):
        return Response(b"{}")

    app = Starlette(routes=[Route("/v1/models/bench:predict", predict, methods=["POST"]), Route("/ready", ready)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_kserve(model_dir: str, port: int, grpc_port: int) -> None:
    """Run by the kserve venv: its own packages first, TensorFlow borrowed from dmlc's venv after them."""
    sys.path.append(os.environ["DMLC_SITE_PACKAGES"])
    sys.argv = sys.argv[:1]  # kserve parses its own flags at import
    import kserve
    import numpy as np

    class SavedModel(kserve.Model):
        def load(self) -> bool:
            self.call = _serving_fn(model_dir)
            self.ready = True
            return True

        def predict(self, payload, headers=None):
            x = np.asarray(payload["instances"], dtype=np.float32)
            return {"predictions": self.call(x).tolist()}

    model = SavedModel("bench")
    model.load()
    server = kserve.ModelServer(http_port=port, grpc_port=grpc_port, enable_grpc=False, workers=1)
    server.enable_latency_logging = False
    server.start([model])


# ---- load generator ----------------------------------------------------------------------------

_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")


async def _client(port: int, request: bytes, stop: float, measure_from: float, lat: list, errors: list) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while (start := time.perf_counter()) < stop:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            match = _LENGTH.search(head)
            if match is None:
                raise RuntimeError(f"no content-length in {head[:200]!r}")
            await reader.readexactly(int(match.group(1)))
            if start >= measure_from:
                lat.append(time.perf_counter() - start)
                if head[9:12] != b"200":
                    errors.append(head[:12])
    finally:
        writer.close()


def load(port: int, path: str, body: bytes, concurrency: int, seconds: float) -> dict:
    head = f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
    request = head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body
    lat: list[float] = []
    errors: list = []

    async def main() -> float:
        now = time.perf_counter()
        warm = now + min(1.0, seconds / 3)
        clients = (_client(port, request, warm + seconds, warm, lat, errors) for _ in range(concurrency))
        await asyncio.gather(*clients)
        return seconds + (time.perf_counter() - warm - seconds)

    try:
        import uvloop

        elapsed = uvloop.run(main())
    except ImportError:
        elapsed = asyncio.run(main())
    import numpy as np

    ms = np.array(lat) * 1000
    p50, p99 = np.percentile(ms, [50, 99]) if len(ms) else (float("nan"), float("nan"))
    return {"rps": len(lat) / elapsed, "p50": float(p50), "p99": float(p99), "errors": len(errors)}


# ---- the run -------------------------------------------------------------------------------------


def _wait(port: int, path: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode} before it was ready")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"server on {port} not ready after {timeout}s")


def servers(model: Path) -> dict[str, tuple[list[str], dict[str, str], str]]:
    """name -> (argv, extra env, readiness path)."""
    from dmlc.runtime.serve import server_argv

    me = [sys.executable, __file__]
    site = next(p for p in sys.path if p.endswith("site-packages"))
    out = {
        "dmlc": (server_argv(str(model), "bench", 0), {}, "/v1/models/bench"),
        "dmlc unbatched": (server_argv(str(model), "bench", 0, batching={"max_batch": 1}), {}, "/v1/models/bench"),
        "dmlc replicas=2": (server_argv(str(model), "bench", 0, 2), {}, "/v1/models/bench"),
        "dmlc shards=2": (server_argv(str(model), "bench", 0, shards=2), {}, "/v1/models/bench"),
        "floor": ([*me, "--serve-floor", str(model), "0"], {}, "/ready"),
    }
    kserve_python = KSERVE_VENV / "bin" / "python"
    if kserve_python.exists():
        argv = [str(kserve_python), __file__, "--serve-kserve", str(model), "0"]
        out["kserve"] = (argv, {"DMLC_SITE_PACKAGES": site}, "/v1/models/bench")
    return out


def _with_port(argv: list[str], port: int) -> list[str]:
    argv = list(argv)
    if "--port" in argv:
        argv[argv.index("--port") + 1] = str(port)
    else:
        argv[-1] = str(port)
    return argv


def train_model(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from tests.runtime.conftest import check, run_step

    shared = REPO.parent / "shared" / "data" / "make_fashion_idx.py"
    if shared.exists():
        subprocess.run([sys.executable, str(shared), str(tmp / "idx")], check=True, capture_output=True)
        attrs = {"dataset": "fashion_mnist", "path": str(tmp / "idx"), "format": "idx", "batch": 32}
    else:
        attrs = {"dataset": "digits", "batch": 32}
    check(run_step("ingest", attrs, tmp / "ingest"))
    check(run_step("train", {"data": str(tmp / "ingest/outputs/dataset"), "model": "cnn", "epochs": 1}, tmp / "model"))
    return tmp / "model" / "outputs" / "model"


def images(model: Path, n: int):
    import numpy as np

    data = model.parents[2] / "ingest" / "outputs" / "dataset" / "test.npz"
    if data.exists():
        return np.load(data)["x"][:n].astype(np.float32)
    shape = json.loads((model / "dmlc_metrics.json").read_text())["input_shape"]
    return np.random.default_rng(0).random((n, *shape), dtype=np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a SavedModel of the cnn (else one is trained)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per case")
    parser.add_argument("--only", help="comma-separated server names")
    parser.add_argument("--serve-floor", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--serve-kserve", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor[0], int(args.serve_floor[1]))
        return
    if args.serve_kserve:
        from socket import socket

        with socket() as s:
            s.bind(("127.0.0.1", 0))
            grpc = s.getsockname()[1]
        serve_kserve(args.serve_kserve[0], int(args.serve_kserve[1]), grpc)
        return
    sys.path.insert(0, str(REPO))
    from dmlc.runtime.local_cluster import free_ports

    with tempfile.TemporaryDirectory(prefix="dmlc-bench-serving-") as tmp:
        model = args.model or train_model(Path(tmp))
        x = images(model, 8)
        bodies = {n: json.dumps({"instances": x[:n].tolist()}).encode() for n in (1, 8)}
        env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="3")
        results: dict[str, dict] = {}
        for name, (argv, extra, ready) in servers(model).items():
            if args.only and name not in args.only.split(","):
                continue
            port, quiet = free_ports(1)[0], subprocess.DEVNULL
            proc = subprocess.Popen(
                _with_port(argv, port), env=env | extra, start_new_session=True, stdout=quiet, stderr=quiet
            )
            try:
                _wait(port, ready, proc)
                time.sleep(1.0)
                for images_per, conc in CASES:
                    path = "/v1/models/bench:predict"
                    results.setdefault(name, {})[(images_per, conc)] = load(
                        port, path, bodies[images_per], conc, args.seconds
                    )
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        report(results, args.seconds)


def report(results: dict[str, dict], seconds: float) -> None:
    load_avg = os.getloadavg()[0]
    print(f"\n## serving the cnn (28x28x1) on {os.cpu_count()} cores, {seconds:.0f} s per case, load {load_avg:.1f}")
    print(f"{'server':<16} {'imgs':>4} {'conc':>4} {'req/s':>8} {'img/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}")
    for images_per, conc in CASES:
        for name, cases in results.items():
            r = cases[(images_per, conc)]
            line = f"{name:<16} {images_per:>4} {conc:>4} {r['rps']:>8.0f} {r['rps'] * images_per:>8.0f}"
            print(f"{line} {r['p50']:>7.1f} {r['p99']:>7.1f} {r['errors']:>6}")
        if (images_per, conc) in GOALS:
            print(f"{'':<16} {GOALS[(images_per, conc)]}")
        print()


if __name__ == "__main__":
    main()
