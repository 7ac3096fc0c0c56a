"""The `serve` step and `run_server`, the blocking server behind `dmlc serve MODEL_DIR`.

Modes: plain (one model server: a supervisor that holds `port` and `replicas` worker processes that
share it), sharded (`shards` model servers on free ports + the scatter-gather router on `port`),
events (the scale-from-zero front on `port`, which starts a plain or sharded server on demand).

No request stops a server: requests are checked against the serving signature before TensorFlow
sees them (`predictor.instances_array`), and whatever still kills a worker (an abort inside a kernel,
the OOM killer, kill -9) only costs that worker. The supervisor (no TensorFlow in it) restarts it
and, while no worker is ready, answers 503 + Retry-After itself; the router restarts a shard server
that exits and the events front a backend that exits, both answering 503 meanwhile. Arguments are
checked before anything loads: a bad port, replica count or model folder is a coded error
(`ServeError`: DML022, DML200, DML204).

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
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dmlc.diagnostics.catalogue import DML019, DML022, DML200, DML204
from dmlc.ir.model import Serve
from dmlc.runtime.local_cluster import free_ports
from dmlc.runtime.step_io import TransientError, UserError, read_json_file, write_json_file, write_param
from dmlc.runtime.supervisor import ServeError, Supervisor, die_with_parent, say, terminate, worker_main
from dmlc.semantics.spec import StepSpec

READY_TIMEOUT_S = 240.0
MAX_REPLICAS = 256  # worker processes of one server, each with its own TensorFlow
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_port(port: int, flag: str = "--port") -> None:
    if not 1 <= port <= 65535:
        raise ServeError(DML022, f"port {port} is out of range", f"{flag} takes a port from 1 to 65535")


def check_replicas(replicas: int, flag: str = "--replicas") -> None:
    if not 1 <= replicas <= MAX_REPLICAS:
        help_ = f"{flag} takes 1 to {MAX_REPLICAS} worker processes (each loads the model)"
        raise ServeError(DML022, f"{replicas} replicas is out of range", help_)


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        help_ = "a model name is letters, digits, `.`, `_` and `-` (it is part of the URL /v1/models/NAME)"
        raise ServeError(DML019, f"invalid model name {name[:80]!r}", help_)


def check_model_dir(model_dir: str) -> None:
    """A readable folder with a saved_model.pb (DML200 otherwise), checked before TensorFlow loads."""
    path = Path(model_dir)
    help_ = "give the folder a `train` step writes as its `model` output (it holds saved_model.pb)"
    try:
        if not path.is_dir():
            reason = "not a folder" if path.exists() else "no such folder"
            raise ServeError(DML200, f"cannot read model `{model_dir}`: {reason}", help_)
        pb = path / "saved_model.pb"
        if not pb.is_file():
            raise ServeError(DML200, f"`{model_dir}` is not a SavedModel folder (no saved_model.pb)", help_)
        with pb.open("rb"):
            os.listdir(path)
    except OSError as exc:  # permission denied, a name too long, a loop of links
        raise ServeError(DML200, f"cannot read model `{model_dir}`: {exc.strerror or exc}", help_) from None
    except ValueError as exc:  # a NUL in the path
        raise ServeError(DML200, f"cannot read model {model_dir!r}: {exc}", help_) from None


def check_free(host: str, port: int, flag: str = "--port") -> None:
    if port_in_use(port, host):  # before loading anything: one clear line, not a server's traceback
        raise ServeError(DML204, f"port {port} is already in use", f"pick another {flag}, or stop what listens there")


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
    batching: dict[str, Any] | None = None,
) -> None:
    """Serve `model_dir` over the TF-Serving REST API until interrupted (ServeError before anything
    loads when an argument cannot work). `batching` ({"max_batch", "timeout"}, the serve step's block)
    sets each model worker's request batching; None: its defaults."""
    import uvicorn

    host = host or os.environ.get("DMLC_SERVE_HOST", "127.0.0.1")
    check_port(port)
    check_replicas(replicas)
    check_name(name)
    if shard_urls:  # a router in front of shard servers that run elsewhere (KServe)
        from dmlc.runtime.router import router_app

        check_free(host, port)
        uvicorn.run(router_app(shard_urls, name, shard_key), host=host, port=port, log_level="warning")
        return
    if shards is not None and shards < 1:
        raise ServeError(DML022, f"{shards} shards is out of range", "shards takes 2 or more shard servers")
    check_free(host, port)  # the plain server binds again below (a race is DML204 too); the router and front late
    check_model_dir(model_dir)
    if events:
        _run_events(model_dir, name, host, port, replicas, shards, shard_key, events, batching)
    elif shards and shards > 1:
        _run_sharded(model_dir, name, host, port, replicas, shards, shard_key, batching)
    else:
        _run_model(model_dir, name, host, port, replicas, batching)


def _run_model(model_dir: str, name: str, host: str, port: int, replicas: int, batching: dict | None = None) -> None:
    sock = listen(host, port)
    try:
        Supervisor(sock, str(Path(model_dir).absolute()), name, replicas, batching).run()
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound here so a taken port is DML204 before any worker starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        help_ = "pick another --port, or stop what listens there"
        if exc.errno == errno.EADDRINUSE:
            raise ServeError(DML204, f"port {port} is already in use", help_) from None
        raise ServeError(DML204, f"cannot listen on {host}:{port}: {exc.strerror or exc}", help_) from None
    sock.set_inheritable(True)
    sock.setblocking(False)  # the workers' event loops and the supervisor's 503 answers share it
    return sock


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
    if extra.get("batching") is not None:
        argv += ["--batching", json.dumps(extra["batching"])]
    if extra.get("die_with"):  # a router's or front's backend: it stops when they do, even on SIGKILL
        argv += ["--die-with", str(extra["die_with"])]
    return argv


def _run_sharded(
    model_dir: str, name: str, host: str, port: int, replicas: int, shards: int, key: str | None, batching=None
) -> None:
    import uvicorn

    from dmlc.runtime.router import router_app

    ports = free_ports(shards)
    argvs = [server_argv(model_dir, name, p, replicas, batching=batching, die_with=os.getpid()) for p in ports]
    procs = [subprocess.Popen(argv) for argv in argvs]
    stop = threading.Event()
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url, proc in zip(urls, procs, strict=True):
            wait_ready(f"{url}/v1/models/{name}", proc)
        keeper = threading.Thread(target=_keep_alive, args=(procs, argvs, stop), daemon=True)
        keeper.start()  # a shard server that exits is started again on its port; the router answers 503 meanwhile
        uvicorn.run(router_app(urls, name, key), host=host, port=port, log_level="warning")
    finally:
        stop.set()
        terminate(procs)


def _keep_alive(procs: list[subprocess.Popen], argvs: list[list[str]], stop: threading.Event) -> None:
    """Restart (in place in `procs`) each process that exits, until `stop`; at most once a second each."""
    while not stop.wait(1.0):
        for i, proc in enumerate(procs):
            if proc.poll() is not None and not stop.is_set():
                say(f"serve: shard server {proc.pid} exited ({proc.returncode}); restarting it")
                procs[i] = subprocess.Popen(argvs[i])


def _run_events(
    model_dir: str, name: str, host: str, port: int, replicas: int, shards, key, events: dict, batching=None
) -> None:
    import uvicorn

    from dmlc.runtime.events import Backend, events_app

    running: list[subprocess.Popen] = []

    async def start() -> str:
        backend_port = free_ports(1)[0]
        opts = {"shards": shards, "shard_key": key, "batching": batching, "die_with": os.getpid()}
        argv = server_argv(model_dir, name, backend_port, replicas, **opts)
        running.append(subprocess.Popen(argv))
        url = f"http://127.0.0.1:{backend_port}"
        await asyncio.to_thread(wait_ready, f"{url}/v1/models/{name}", running[-1])
        return url

    async def stop() -> None:
        await asyncio.to_thread(terminate, list(running))
        running.clear()

    def alive() -> bool:  # a backend that exited is stopped and started again by the next request
        return bool(running) and running[-1].poll() is None

    try:
        backend = Backend(start, stop, alive)
        uvicorn.run(events_app(backend, name, events), host=host, port=port, log_level="warning")
    finally:
        terminate(running)


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


# ---- the pipeline step -------------------------------------------------------------------------


def run(spec: StepSpec) -> None:
    cfg: Serve = spec.config(Serve)
    model_dir = cfg.model
    events = cfg.events.model_dump(mode="json") if cfg.events is not None else None
    batching = cfg.batching.model_dump(mode="json") if cfg.batching is not None else None
    opts = {"shards": cfg.shards, "shard_key": cfg.shard_key, "events": events, "batching": batching}
    if _foreground(spec):
        port = int(cfg.port or os.environ.get("PORT") or 8080)
        urls = spec.shard_urls if spec.role == "router" else None
        if spec.shard is not None:
            opts = {"shards": None, "shard_key": None, "events": events, "batching": batching}  # one shard: plain
        run_server(model_dir, name=spec.step, port=port, replicas=cfg.replicas, host="0.0.0.0", shard_urls=urls, **opts)
        return
    start_detached(spec, model_dir, cfg.replicas, cfg.port, opts)


def _foreground(spec: StepSpec) -> bool:
    flags = (spec.foreground, spec.role, spec.shard is not None)
    return any(flags) or bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def start_detached(spec: StepSpec, model_dir: str, replicas: int, port: int | None, opts: dict[str, Any]) -> None:
    check_model_dir(model_dir)
    check_replicas(replicas, "`replicas`")
    if port:
        check_port(port, "`port`")
        check_free(os.environ.get("DMLC_SERVE_HOST", "127.0.0.1"), port, "`port`")  # not worth retrying
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
    parser.add_argument("--batching", type=json.loads, help='request batching: {"max_batch": 32, "timeout": "2ms"}')
    parser.add_argument("--host")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # SOCKFD,PIPEFD,PARENT: a supervisor's worker
    parser.add_argument("--die-with", type=int, help=argparse.SUPPRESS)  # the router's or front's pid
    args = parser.parse_args(argv)
    if args.die_with:
        die_with_parent(args.die_with)
    if args.worker:
        worker_main(args.model_dir, args.name, args.worker)
        return
    try:
        run_server(
            args.model_dir,
            name=args.name,
            port=args.port,
            replicas=args.replicas,
            shards=args.shards,
            shard_key=args.shard_key,
            events=args.events,
            host=args.host,
            batching=args.batching,
        )
    except UserError as exc:  # one line for the step's serve.log, not a traceback
        print(f"error: serve: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
