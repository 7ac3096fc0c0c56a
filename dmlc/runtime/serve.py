"""The `serve` step and `run_server`, the blocking server behind `dmlc serve MODEL_DIR`.

Modes: plain (one model server; `replicas` = uvicorn worker processes sharing one port), sharded
(`shards` model servers on free ports + the scatter-gather router on `port`), events (the
scale-from-zero front on `port`, which starts a plain or sharded server on demand).

As a pipeline step the server runs detached (own session, so its process group holds every server
process): the step waits for readiness, sends one smoke request, writes the param `endpoint`, records
{"pgids", "endpoint"} in $DMLC_SERVE_PIDFILE (default <work_dir>/serve.json) and exits; the local
executor kills those groups when the run ends. In a Kubernetes pod (KUBERNETES_SERVICE_HOST set),
with `--foreground`, or with a spec holding `role`/`shard` (the KServe manifests), it serves in the
foreground on 0.0.0.0:(port or $PORT or 8080) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dmlc.ir.model import Serve
from dmlc.runtime.local_cluster import free_ports
from dmlc.runtime.step_io import TransientError, UserError, read_json_file, write_json_file, write_param
from dmlc.semantics.spec import StepSpec

READY_TIMEOUT_S = 240.0


def run_server(
    model_dir: str,
    *,
    name: str = "model",
    port: int = 8501,
    replicas: int = 1,
    shards: int | None = None,
    shard_key: str | None = None,
    events: dict | None = None,
    host: str | None = None,
    shard_urls: list[str] | None = None,
) -> None:
    """Serve `model_dir` over the TF-Serving REST API until interrupted."""
    import uvicorn

    host = host or os.environ.get("DMLC_SERVE_HOST", "127.0.0.1")
    if shard_urls:  # a router in front of shard servers that run elsewhere (KServe)
        from dmlc.runtime.server_apps import router_app

        uvicorn.run(router_app(shard_urls, name, shard_key), host=host, port=port, log_level="warning")
        return
    if not (Path(model_dir) / "saved_model.pb").exists():
        raise UserError(f"{model_dir} is not a SavedModel folder (no saved_model.pb)")
    if events:
        _run_events(model_dir, name, host, port, replicas, shards, shard_key, events)
    elif shards and shards > 1:
        _run_sharded(model_dir, name, host, port, replicas, shards, shard_key)
    else:
        _run_model(model_dir, name, host, port, replicas)


def _run_model(model_dir: str, name: str, host: str, port: int, replicas: int) -> None:
    import uvicorn

    # worker processes build the app from the environment (uvicorn needs an import string for workers > 1)
    os.environ["DMLC_SERVE_MODEL_DIR"] = str(Path(model_dir).absolute())
    os.environ["DMLC_SERVE_NAME"] = name
    # replicas share the cores: one TF thread pool per replica sized to its share avoids oversubscription
    os.environ.setdefault("DMLC_SERVE_THREADS", str(max(1, (os.cpu_count() or 1) // max(1, replicas))))
    app = "dmlc.runtime.server_apps:app_from_env"
    uvicorn.run(app, factory=True, host=host, port=port, workers=max(1, replicas), log_level="warning")


def server_argv(model_dir: str, name: str, port: int, replicas: int = 1, **extra: Any) -> list[str]:
    """argv of a server subprocess (`python -m dmlc.runtime.serve ...`)."""
    argv = [sys.executable, "-m", "dmlc.runtime.serve", str(model_dir), "--name", name, "--port", str(port)]
    argv += ["--replicas", str(replicas)]
    if extra.get("shards"):
        argv += ["--shards", str(extra["shards"])]
    if extra.get("shard_key"):
        argv += ["--shard-key", str(extra["shard_key"])]
    if extra.get("events"):
        argv += ["--events", json.dumps(extra["events"])]
    return argv


def _run_sharded(model_dir: str, name: str, host: str, port: int, replicas: int, shards: int, key: str | None) -> None:
    import uvicorn

    from dmlc.runtime.server_apps import router_app

    ports = free_ports(shards)
    procs = [subprocess.Popen(server_argv(model_dir, name, p, replicas)) for p in ports]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(f"{url}/v1/models/{name}", proc)
        uvicorn.run(router_app(urls, name, key), host=host, port=port, log_level="warning")
    finally:
        _terminate(procs)


def _run_events(model_dir: str, name: str, host: str, port: int, replicas: int, shards, key, events: dict) -> None:
    import uvicorn

    from dmlc.runtime.events import Backend, events_app

    running: list[subprocess.Popen] = []

    async def start() -> str:
        backend_port = free_ports(1)[0]
        argv = server_argv(model_dir, name, backend_port, replicas, shards=shards, shard_key=key)
        running.append(subprocess.Popen(argv))
        url = f"http://127.0.0.1:{backend_port}"
        await asyncio.to_thread(wait_ready, f"{url}/v1/models/{name}", running[-1])
        return url

    async def stop() -> None:
        await asyncio.to_thread(_terminate, list(running))
        running.clear()

    try:
        uvicorn.run(events_app(Backend(start, stop), name, events), host=host, port=port, log_level="warning")
    finally:
        _terminate(running)


def port_in_use(port: int, host: str | None = None) -> bool:
    """True when something already listens on `port` of the host a server here would bind.

    The probe binds the way uvicorn does (SO_REUSEADDR on): on Linux that still fails against any
    listener, on the address or on the wildcard, but not against a TIME_WAIT leftover of a server
    that just stopped, which uvicorn's own bind would not mind either."""
    host = host or os.environ.get("DMLC_SERVE_HOST", "127.0.0.1")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def wait_ready(url: str, proc: subprocess.Popen | None = None, timeout: float = READY_TIMEOUT_S) -> None:
    """Poll `url` until it answers 200; fail early when `proc` exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TransientError(f"the server exited with code {proc.returncode} before it was ready")
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TransientError(f"the server at {url} was not ready after {timeout:.0f}s")


def _terminate(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- the pipeline step -------------------------------------------------------------------------


def run(spec: StepSpec) -> None:
    cfg: Serve = spec.config(Serve)
    model_dir = cfg.model
    events = cfg.events.model_dump(mode="json") if cfg.events is not None else None
    opts = {"shards": cfg.shards, "shard_key": cfg.shard_key, "events": events}
    if _foreground(spec):
        port = int(cfg.port or os.environ.get("PORT") or 8080)
        urls = spec.shard_urls if spec.role == "router" else None
        if spec.shard is not None:
            opts = {"shards": None, "shard_key": None, "events": events}  # one shard = one plain server
        run_server(model_dir, name=spec.step, port=port, replicas=cfg.replicas, host="0.0.0.0", shard_urls=urls, **opts)
        return
    start_detached(spec, model_dir, cfg.replicas, cfg.port, opts)


def _foreground(spec: StepSpec) -> bool:
    flags = (spec.foreground, spec.role, spec.shard is not None)
    return any(flags) or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def start_detached(spec: StepSpec, model_dir: str, replicas: int, port: int | None, opts: dict[str, Any]) -> None:
    if not (Path(model_dir) / "saved_model.pb").exists():
        raise UserError(f"{model_dir} is not a SavedModel folder (no saved_model.pb)")
    if port and port_in_use(port):  # a user error, not "the server exited" worth retrying
        raise UserError(f"port {port} is already in use (DML204): pick another `port`, or stop what listens there")
    port = port or free_ports(1)[0]
    spec.work_dir.mkdir(parents=True, exist_ok=True)
    log_path = spec.work_dir / "serve.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            server_argv(model_dir, spec.step, port, replicas, **opts),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the executor stops every server with one killpg
        )
    endpoint = f"http://127.0.0.1:{port}/v1/models/{spec.step}"
    try:
        wait_ready(endpoint, proc)
        smoke_test(endpoint, model_dir)
    except BaseException as exc:
        _kill_group(proc.pid)
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
        if isinstance(exc, (TransientError, UserError)):
            raise type(exc)(f"{exc}; server log ({log_path}):\n{tail}") from exc
        raise
    pidfile = Path(os.environ.get("DMLC_SERVE_PIDFILE") or spec.work_dir / "serve.json")
    write_json_file(pidfile, {"pgids": [proc.pid], "endpoint": endpoint})
    write_param(spec.outputs_dir, "endpoint", endpoint)
    print(f"serve: {endpoint} (log {log_path}, process group {proc.pid})")


def smoke_test(endpoint: str, model_dir: str) -> None:
    """One prediction of an all-zero instance; the server must answer with one prediction."""
    import httpx

    meta_path = Path(model_dir) / "dmlc_metrics.json"
    shape = read_json_file(meta_path).get("input_shape") if meta_path.exists() else None
    if not shape:
        print("serve: no input_shape in dmlc_metrics.json; smoke request skipped")
        return
    zeros: Any = 0.0
    for size in reversed(shape):
        zeros = [zeros] * int(size)
    reply = httpx.post(f"{endpoint}:predict", json={"instances": [zeros]}, timeout=READY_TIMEOUT_S)
    if reply.status_code != 200 or len(reply.json().get("predictions", [])) != 1:
        raise TransientError(f"smoke request failed: HTTP {reply.status_code} {reply.text[:300]}")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str] | None = None) -> None:
    """`python -m dmlc.runtime.serve MODEL_DIR ...`: the server process the step starts."""
    parser = argparse.ArgumentParser(prog="python -m dmlc.runtime.serve")
    parser.add_argument("model_dir")
    parser.add_argument("--name", default="model")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--shards", type=int)
    parser.add_argument("--shard-key")
    parser.add_argument("--events", type=json.loads)
    parser.add_argument("--host")
    args = parser.parse_args(argv)
    run_server(
        args.model_dir,
        name=args.name,
        port=args.port,
        replicas=args.replicas,
        shards=args.shards,
        shard_key=args.shard_key,
        events=args.events,
        host=args.host,
    )


if __name__ == "__main__":
    main()
