"""The model server's supervisor: one process (no TensorFlow in it) that holds the listening socket and
keeps `replicas` model worker processes serving on it.

A worker that dies (an abort inside a kernel, the OOM killer, kill -9) is restarted, after a backoff when
it dies again before it was ever ready; while no worker is ready the supervisor accepts connections
itself and answers 503 + Retry-After (200 on the liveness routes), and a connection it takes in the
moment a worker becomes ready is relayed to that worker. `python -m dmlc.runtime.serve --worker ...`
runs `worker_main` here. Takes the socket from `serve.listen`; gives `Supervisor.run` (blocks until
SIGTERM/SIGINT) and `ServeError`, the coded error of serving.
"""

from __future__ import annotations

import gc
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

from dmlc.diagnostics.catalogue import DML200, Code
from dmlc.runtime.step_io import UserError

WORKER_STARTUP_FAILED = 3  # a worker's exit code when the model cannot load: restarting will not help
MAX_EARLY_DEATHS = 5  # workers that die before any was ever ready: then the server gives up
BATCHING_ENV = "DMLC_SERVE_BATCHING"  # a worker's request batching, JSON {"max_batch", "timeout"}


class ServeError(UserError):
    """A coded user or environment error of serving; `dmlc serve` prints it as a diagnostic, a step as
    one line `MESSAGE (CODE): HELP`."""

    def __init__(self, code: Code, message: str, help: str | None = None) -> None:
        super().__init__(f"{message} ({code})" + (f": {help}" if help else ""))
        self.code, self.message, self.help = code, message, help


class _Worker:
    """One model worker process and the pipe on which it says `ready` or `error MESSAGE`."""

    def __init__(self, proc: subprocess.Popen, pipe: int) -> None:
        self.proc, self.pipe = proc, pipe
        self.ready = False
        self.error = ""
        self._buffer = b""

    def read_pipe(self) -> None:
        try:
            while chunk := os.read(self.pipe, 4096):
                self._buffer += chunk
        except BlockingIOError:
            pass
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            text = line.decode(errors="replace")
            self.ready = self.ready or text == "ready"
            self.error = text[6:] if text.startswith("error ") else self.error

    def close(self) -> None:
        os.close(self.pipe)


class Supervisor:
    """Keeps `replicas` model workers serving on `sock`: restarts one that dies (after a backoff when it
    dies again before it was ready), and while none is ready answers each connection 503 itself, so a
    client is told to retry instead of waiting in the backlog. A model that cannot load (the first
    worker says `error ...` and exits) stops the server with DML200."""

    def __init__(
        self, sock: socket.socket, model_dir: str, name: str, replicas: int, batching: dict | None = None
    ) -> None:
        self.sock, self.model_dir, self.name = sock, model_dir, name
        self.workers: list[_Worker | None] = [None] * replicas
        self.restart_at = [0.0] * replicas
        self.early_deaths = [0] * replicas  # deaths since the slot's worker was last ready
        self.ever_ready = False
        self.stopping = threading.Event()
        self.restarts = 0
        self.env = dict(os.environ)
        # replicas share the cores: one TF thread pool per replica sized to its share avoids oversubscription
        self.env.setdefault("DMLC_SERVE_THREADS", str(max(1, (os.cpu_count() or 1) // replicas)))
        if batching is not None:  # the workers' request batching (read by worker_main)
            self.env[BATCHING_ENV] = json.dumps(batching)

    def run(self) -> None:
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: self.stopping.set())
        answerer = threading.Thread(target=self._answer_while_down, daemon=True)
        try:
            answerer.start()
            while not self.stopping.is_set():
                self._tick()
                self.stopping.wait(0.1)
        finally:
            self.stopping.set()
            terminate([w.proc for w in self.workers if w is not None])
            for w in self.workers:
                if w is not None:
                    w.close()
            answerer.join(timeout=5)
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def ready_count(self) -> int:
        return sum(1 for w in self.workers if w is not None and w.ready and w.proc.poll() is None)

    def _tick(self) -> None:
        now = time.monotonic()
        for slot, worker in enumerate(self.workers):
            if worker is None:
                if now >= self.restart_at[slot]:
                    try:
                        self.workers[slot] = self._spawn()
                    except OSError as exc:  # no memory or no processes left for now: try again in a while
                        say(f"serve: cannot start a model worker ({exc}); trying again")
                        self.restart_at[slot] = now + 2.0
                continue
            worker.read_pipe()
            if worker.ready:
                self.ever_ready = True
                self.early_deaths[slot] = 0
            code = worker.proc.poll()
            if code is None or self.stopping.is_set():
                continue
            worker.read_pipe()
            worker.close()
            self.workers[slot] = None
            self._on_death(slot, worker, code)

    def _on_death(self, slot: int, worker: _Worker, code: int) -> None:
        if not self.ever_ready and (code == WORKER_STARTUP_FAILED or worker.error):
            raise ServeError(DML200, worker.error or f"the model in `{self.model_dir}` could not be loaded")
        self.early_deaths[slot] += 0 if worker.ready else 1
        if not self.ever_ready and self.early_deaths[slot] >= MAX_EARLY_DEATHS:
            raise ServeError(DML200, f"the model worker died {MAX_EARLY_DEATHS} times before it was ready")
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        delay = min(30.0, 0.5 * 2 ** max(0, self.early_deaths[slot] - 1)) if self.early_deaths[slot] else 0.0
        say(f"serve: model worker {worker.proc.pid} stopped ({how}); restarting it")
        self.restart_at[slot] = time.monotonic() + delay
        self.restarts += 1

    def _spawn(self) -> _Worker:
        read_end, write_end = os.pipe()
        os.set_blocking(read_end, False)
        fds = f"{self.sock.fileno()},{write_end},{os.getpid()}"
        argv = [sys.executable, "-m", "dmlc.runtime.serve", self.model_dir, "--name", self.name, "--worker", fds]
        try:
            proc = subprocess.Popen(
                argv, env=self.env, pass_fds=(self.sock.fileno(), write_end), stdin=subprocess.DEVNULL
            )
        finally:
            os.close(write_end)
        return _Worker(proc, read_end)

    def _answer_while_down(self) -> None:
        """While no worker is ready, accept connections here and answer 503 (200 for the liveness
        routes, `/healthz`, KServe's `/` and `/v2/health/live`: the server is alive, its model is loading)."""
        while not self.stopping.is_set():
            if self.ready_count():
                self.stopping.wait(0.05)
                continue
            try:
                readable, _, _ = select.select([self.sock], [], [], 0.1)
                if not readable:
                    continue
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                continue  # a worker took it
            except OSError:
                if self.stopping.is_set():
                    return
                time.sleep(0.1)
                continue
            if self._became_ready():  # a worker was ready as this connection came: it gets it, not a 503
                threading.Thread(target=_relay, args=(conn, self.sock.getsockname()), daemon=True).start()
                continue
            starting = "is loading its model" if not self.ever_ready else "is restarting a model worker"
            _answer_down(conn, f"the model server {starting}; retry shortly")

    def _became_ready(self, seconds: float = 0.3) -> bool:
        """Whether a worker is ready within `seconds` (a few `_tick`s): a worker accepts as soon as its
        model is loaded, before the supervisor has read that it is, so a connection the supervisor took
        in that moment belongs to the worker."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.ready_count():
                return True
            time.sleep(0.02)
        return False


def _relay(conn: socket.socket, address: tuple) -> None:
    """Hand a connection the supervisor accepted to a ready worker: connect to the shared port (only
    workers accept on it now) and copy bytes both ways until each side is done."""
    host, port = address[0], address[1]
    try:
        upstream = socket.create_connection(("127.0.0.1" if host in ("0.0.0.0", "") else host, port), timeout=10)
    except OSError:
        _answer_down(conn, "the model server is restarting a model worker; retry shortly")
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_copy, args=(upstream, conn), daemon=True)
    back.start()
    _copy(conn, upstream)
    back.join()
    upstream.close()
    conn.close()


def _copy(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(1 << 16):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def say(line: str) -> None:
    """A line on stderr, best effort: a full disk under the log must not stop the server."""
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


ALIVE = {b"/healthz": {"status": "ok"}, b"/": {"status": "alive"}, b"/v2/health/live": {"live": True}}  # (KServe's)


def _answer_down(conn: socket.socket, message: str) -> None:
    """Read one request (head + Content-Length body, bounded) and answer it 503; never raises."""
    from dmlc.runtime.rest import MAX_BODY_BYTES

    deadline = time.monotonic() + 3.0  # a client that trickles its request gets no more of this thread

    def recv(size: int) -> bytes:
        conn.settimeout(max(0.01, deadline - time.monotonic()))
        return conn.recv(size)

    try:
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        match = re.search(rb"(?im)^content-length:\s*(\d{1,12})\s*$", head)
        left = min(int(match.group(1)), MAX_BODY_BYTES) - len(body) if match else 0
        while left > 0:  # read what was sent, so that closing does not reset the connection under the answer
            chunk = recv(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
        status, payload = ("200 OK", ALIVE[path]) if path in ALIVE else ("503 Service Unavailable", {"error": message})
        text = json.dumps(payload).encode()
        headers = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(text)}\r\n"
        conn.sendall(headers.encode() + b"retry-after: 1\r\nconnection: close\r\n\r\n" + text)
    except OSError:
        pass
    finally:
        conn.close()


def worker_main(model_dir: str, name: str, fds: str) -> None:
    """A model worker (`--worker SOCKFD,PIPEFD,PARENT`): load the model, say `ready` on the pipe once
    serving on the inherited socket; `error MESSAGE` and exit 3 when the model cannot load."""
    import uvicorn

    from dmlc.runtime.predictor import Predictor
    from dmlc.runtime.server_apps import model_app

    sock_fd, pipe_fd, parent = (int(part) for part in fds.split(","))
    die_with_parent(parent)
    pipe = os.fdopen(pipe_fd, "w", buffering=1)
    try:
        predictor = Predictor(model_dir)
    except UserError as exc:
        pipe.write(f"error {' '.join(str(exc).split())}\n")
        sys.exit(WORKER_STARTUP_FAILED)
    sock = socket.socket(fileno=sock_fd)
    gc.collect()
    gc.freeze()  # TensorFlow's objects out of every collection: each request's JSON makes many
    batching = json.loads(os.environ.get(BATCHING_ENV) or "null")
    app = model_app(model_dir, name, predictor, batching)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))

    def announce() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.02)
        pipe.write("ready\n")

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


def die_with_parent(parent: int) -> None:
    """SIGTERM this worker when its supervisor dies, even by SIGKILL (Linux); elsewhere a no-op."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before prctl
        os.kill(os.getpid(), signal.SIGTERM)


def terminate(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
