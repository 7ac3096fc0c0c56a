"""Hostile serving (issue 12): no request, however malformed, stops a server or a replica from answering
the next good request, and `dmlc serve` refuses bad arguments with a coded error before TensorFlow loads.

Families, each a table a reviewer can extend:
- ARGUMENTS: `dmlc serve` arguments that cannot work -> (exit 1, code), fast, TensorFlow not imported.
- INSTANCES: request instances checked against a 28x28x1 float32 signature -> the 400 message.
- REQUESTS: whole HTTP requests -> status; sent to an app with a stand-in model (no TensorFlow) and to
  a real server of a small CNN (`live_server`), where each is followed by a good request.
- Faults: a killed model worker is restarted while the supervisor answers 503; a router whose shard is
  down, and an events front whose backend died, answer 503 and recover.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from dmlc.cli import main
from dmlc.runtime.predictor import BadInstances, instances_array
from dmlc.runtime.rest import MAX_BODY_BYTES, parse_json
from dmlc.runtime.router import router_app, shard_of
from dmlc.runtime.server_apps import model_app

SHAPE = [28, 28, 1]


def image(value: Any = 0.0, shape: list[int] = SHAPE) -> Any:
    out: Any = value
    for size in reversed(shape):
        out = [out] * size
    return out


GOOD = image()

# --- arguments ------------------------------------------------------------------------------------

ARGUMENTS = [
    ("a missing model folder", ["{tmp}/nope"], "DML200", "no such folder"),
    ("a file as the model", ["{tmp}/file"], "DML200", "not a folder"),
    ("a folder without saved_model.pb", ["{tmp}"], "DML200", "not a SavedModel folder"),
    ("port 99999", ["{model}", "--port", "99999"], "DML022", "port 99999 is out of range"),
    ("a negative port", ["{model}", "--port", "-1"], "DML022", "port -1 is out of range"),
    ("port 0", ["{model}", "--port", "0"], "DML022", "port 0 is out of range"),
    ("no replicas", ["{model}", "--replicas", "0"], "DML022", "0 replicas is out of range"),
    ("negative replicas", ["{model}", "--replicas", "-2"], "DML022", "-2 replicas is out of range"),
    ("a million replicas", ["{model}", "--replicas", "1000000"], "DML022", "replicas is out of range"),
    ("a name a URL cannot hold", ["{model}", "--name", "a:b/c"], "DML019", "invalid model name"),
]


@pytest.fixture
def fake_model(tmp_path: Path) -> Path:
    """A folder that passes the checks made before TensorFlow loads (saved_model.pb is not parsed)."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "saved_model.pb").write_bytes(b"")
    (tmp_path / "file").write_text("x")
    return model


@pytest.mark.parametrize(("case", "argv", "code", "message"), ARGUMENTS, ids=[a[0] for a in ARGUMENTS])
def test_bad_arguments_are_coded_errors_before_tensorflow(
    case: str, argv: list[str], code: str, message: str, fake_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tf_before = "tensorflow" in sys.modules
    args = [a.format(tmp=fake_model.parent, model=fake_model) for a in argv]
    started = time.perf_counter()
    exit_code = main(["serve", *args, "--port", str(_free_port())] if "--port" not in args else ["serve", *args])
    err = capsys.readouterr().err
    assert exit_code == 1, err
    assert f"error[{code}]: " in err and message in err, err
    assert "DML900" not in err and "Traceback" not in err
    assert time.perf_counter() - started < 2.0
    assert tf_before or "tensorflow" not in sys.modules, "the arguments are checked before TensorFlow loads"


def test_a_taken_port_is_dml204_before_the_model_is_looked_at(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "/nowhere", "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 1 and f"error[DML204]: port {port} is already in use" in err, err


def test_losing_the_port_race_is_dml204_too() -> None:
    """The port was free when checked and taken when bound: still a coded error, not uvicorn's exit 3."""
    from dmlc.runtime.serve import ServeError, listen

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ServeError, match="is already in use") as caught:
            listen("127.0.0.1", taken.getsockname()[1])
    assert caught.value.code == "DML204"


# --- instances ------------------------------------------------------------------------------------

INSTANCES = [
    ("a 2-number instance", [[0.0, 1.0]], "has rank 1"),
    ("8x8 without the channel axis", [image(0.0, [8, 8])], "has rank 2"),
    ("28x28 without the channel axis", [image(0.0, [28, 28])], "has rank 2"),
    ("5-D instances", [image(0.0, [1, 28, 28, 1])], "has rank over 3"),
    ("a scalar instance", [5], "has rank 0"),
    ("three channels", [image(0.0, [28, 28, 3])], "axis 3 differs"),
    ("1x1x1", [image(0.0, [1, 1, 1])], "axis 1 differs"),
    ("an empty instance", [[]], "has rank 1"),
    ("empty rows", [[[], []]], "has rank 2"),
    ("ragged instances", [GOOD, image(0.0, [27, 28, 1])], "ragged"),
    ("a ragged row", [[*GOOD[:-1], GOOD[-1][:-1]]], "ragged"),
    ("strings", [image("a")], "numbers only"),
    ("null", [image(None)], "numbers only"),
    ("objects", [image({})], "numbers only"),
    ("an integer beyond 64 bits", [image(2**70)], "numbers only"),
    ("beyond float32", [image(3.5e38)], "finite numbers"),
    ("not a list", 5, "must be a list"),
    ("text", "abc", "must be a list"),
    ("an object", {"image_bytes": GOOD}, "must be a list"),
    ("an object without the input", [{"pixels": GOOD}], "without the input 'image_bytes'"),
    ("deep nesting", [json.loads("[" * 900 + "]" * 900)], "has rank over 3"),
]


@pytest.mark.parametrize(("case", "instances", "message"), INSTANCES, ids=[i[0] for i in INSTANCES])
def test_instances_that_do_not_fit_the_signature(case: str, instances: Any, message: str) -> None:
    with pytest.raises(BadInstances, match=message):
        instances_array(instances, "image_bytes", SHAPE, np.float32)


def test_instances_that_fit() -> None:
    x = instances_array([GOOD, {"image_bytes": image(1), "user": "u1"}], "image_bytes", SHAPE, np.float32)
    assert x.shape == (2, 28, 28, 1) and x.dtype == np.float32 and x[1].max() == 1.0
    assert instances_array([], "image_bytes", SHAPE, np.float32).shape == (0, 28, 28, 1)
    assert instances_array([[1, 2, 3]], "x", [None], np.float32).shape == (1, 3)  # any size but 0
    with pytest.raises(BadInstances, match="axis 1 differs"):
        instances_array([[]], "x", [None], np.float32)
    with pytest.raises(BadInstances, match="at most 100"):
        instances_array([GOOD], "image_bytes", SHAPE, np.float32, max_values=100)
    assert instances_array([[1, 2]], "x", [2], np.int32).dtype == np.int32
    with pytest.raises(BadInstances, match="whole numbers"):
        instances_array([[1.5, 2]], "x", [2], np.int32)
    with pytest.raises(BadInstances, match="from -128 to 127"):
        instances_array([[1000, 2]], "x", [2], np.int8)


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999", "9" * 5000])
def test_json_numbers_beyond_a_float_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_json(f'{{"instances": [[{text}]]}}'.encode())


def test_deep_json_is_a_recursion_error_not_a_crash() -> None:
    with pytest.raises(RecursionError):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


# --- requests -------------------------------------------------------------------------------------


def _body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


REQUESTS: list[tuple[str, str, Any, int]] = [
    # (case, path after /v1/models/, body, expected status); the model is served as "m"
    ("a 2-number instance", "m:predict", {"instances": [[0.0, 1.0]]}, 400),
    ("8x8 without the channel axis", "m:predict", {"instances": [image(0.0, [8, 8])]}, 400),
    ("28x28 without the channel axis", "m:predict", {"instances": [image(0.0, [28, 28])]}, 400),
    ("5-D instances", "m:predict", {"instances": [image(0.0, [2, 28, 28, 1])]}, 400),
    ("three channels", "m:predict", {"instances": [image(0.0, [28, 28, 3])]}, 400),
    ("ragged instances", "m:predict", {"instances": [GOOD, [[0.0]]]}, 400),
    ("strings", "m:predict", {"instances": [image("0")]}, 400),
    ("columnar 2 numbers", "m:predict", {"inputs": [[0.0, 1.0]]}, 400),
    ("columnar, wrong input name", "m:predict", {"inputs": {"x": [GOOD]}}, 400),
    ("instances and inputs", "m:predict", {"instances": [GOOD], "inputs": [GOOD]}, 400),
    ("another signature", "m:predict", {"signature_name": "train", "instances": [GOOD]}, 400),
    ("instances a number", "m:predict", {"instances": 5}, 400),
    ("instances null", "m:predict", {"instances": None}, 400),
    ("instances an object", "m:predict", {"instances": {}}, 400),
    ("no instances", "m:predict", {}, 400),
    ("a list body", "m:predict", [GOOD], 400),
    ("NaN", "m:predict", b'{"instances": [[NaN]]}', 400),
    ("Infinity", "m:predict", b'{"instances": [[-Infinity, 1]]}', 400),
    ("1e400", "m:predict", b'{"instances": [[1e400]]}', 400),
    ("a 5000-digit integer", "m:predict", b'{"instances": [[' + b"9" * 5000 + b"]]}", 400),
    ("beyond float32", "m:predict", {"instances": [image(3.5e38)]}, 400),
    ("deep JSON", "m:predict", b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
    ("not JSON", "m:predict", b"nope", 400),
    ("an empty body", "m:predict", b"", 400),
    ("bytes that are not UTF-8", "m:predict", b'{"instances": "\xff\xfe"}', 400),
    ("over the body cap", "m:predict", b" " * (MAX_BODY_BYTES + 1), 413),
    ("another model", "other:predict", {"instances": [GOOD]}, 404),
    ("another verb", "m:classify", {"instances": [GOOD]}, 400),
    ("no verb", "m", {"instances": [GOOD]}, 400),
]
GOOD_REQUEST = {"instances": [GOOD, image(1.0)]}


class AppClient:
    """Requests to an ASGI app in this process with its lifespan run, as starlette's TestClient does
    (without the httpx2 package that one is moving to); an exception the app lets out is raised here."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def __enter__(self) -> AppClient:
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.lifespan = self.app.router.lifespan_context(self.app)
        self._run(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://app")
        return self

    def __exit__(self, *exc: object) -> None:
        self._run(self.client.aclose())
        self._run(self.lifespan.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self._run(self.client.post(path, **kwargs))

    def get(self, path: str) -> httpx.Response:
        return self._run(self.client.get(path))


class StandInModel:
    """The predictor's interface without TensorFlow; remembers every batch it was given."""

    input_name, input_shape, output_name = "image_bytes", SHAPE, "probs"

    def __init__(self) -> None:
        self.batches: list[tuple[int, ...]] = []

    def instances_to_array(self, instances: Any) -> np.ndarray:
        return instances_array(instances, self.input_name, self.input_shape, np.float32)

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x.shape)
        return np.full((len(x), 10), 0.1, dtype=np.float32)


def test_each_malformed_request_is_refused_before_the_model() -> None:
    model = StandInModel()
    with AppClient(model_app("unused", "m", model)) as client:
        for case, path, body, status in REQUESTS:
            reply = client.post(f"/v1/models/{path}", content=_body(body))
            assert reply.status_code == status, (case, reply.text[:300])
            assert set(reply.json()) == {"error"}, case  # TF Serving's error shape
        assert model.batches == [], "no malformed request reached the model"
        reply = client.post("/v1/models/m:predict", json=GOOD_REQUEST)
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2
        assert client.post("/v1/models/m:predict", json={"inputs": {"image_bytes": [GOOD]}}).json()["outputs"]
        for path in ("other", "other/metadata"):
            reply = client.get(f"/v1/models/{path}")
            assert reply.status_code == 404 and "other" in reply.json()["error"]
        assert client.get("/v1/models/other/metadata").json() == {
            "error": "Servable not found for request: Latest(other)"
        }
        assert client.get("/v1/models/m/metadata").json()["metadata"]["input_shape"] == SHAPE


def test_non_finite_predictions_are_written_as_tf_serving_does() -> None:
    class Overflowing(StandInModel):
        def predict(self, x: np.ndarray) -> np.ndarray:
            return np.array([[np.nan, np.inf]] * len(x), dtype=np.float32)

    with AppClient(model_app("unused", "m", Overflowing())) as client:
        reply = client.post("/v1/models/m:predict", json={"instances": [image(1e30)]})
    assert reply.status_code == 200 and reply.text == '{"predictions":[[NaN,Infinity]]}'


# --- a router whose shard is down, an events front whose backend died (no TensorFlow) -------------


def _free_port() -> int:
    from dmlc.runtime.local_cluster import free_ports

    return free_ports(1)[0]


def test_a_router_whose_shard_is_down_answers_503_at_once() -> None:
    dead = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with AppClient(router_app([dead, dead], "m", None)) as client:
        started = time.perf_counter()
        reply = client.post("/v1/models/m:predict", json={"instances": [GOOD, GOOD]})
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1", reply.text
        assert "unavailable" in reply.json()["error"] and time.perf_counter() - started < 5
        for body in (b'{"instances": [[NaN]]}', b"[" * 100_000, b"nope", b'{"instances": 5}'):
            assert client.post("/v1/models/m:predict", content=body).status_code == 400, body[:20]
        assert client.post("/v1/models/other:predict", json={"instances": []}).status_code == 404


def test_an_events_front_whose_backend_died_answers_503_and_starts_a_new_one() -> None:
    from dmlc.runtime.events import Backend, events_app

    log: list[str] = []
    state = {"alive": True, "fail_start": False}

    async def start() -> str:
        log.append("start")
        if state["fail_start"]:
            raise RuntimeError("the server exited with code 1 before it was ready")
        state["alive"] = True
        return f"http://127.0.0.1:{_free_port()}"  # it "died" at once: nothing listens there

    async def stop() -> None:
        log.append("stop")

    backend = Backend(start, stop, lambda: state["alive"])
    events = {"max_concurrency": 4, "idle_timeout": 60}
    with AppClient(events_app(backend, "m", events)) as client:
        reply = client.post("/v1/models/m:predict", json={"instances": [GOOD]})
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1", reply.text
        assert log == ["start"], "a backend that still runs is not restarted for one failed request"
        state["alive"] = False  # it exited: the next request stops it and starts another
        assert client.post("/v1/models/m:predict", json={"instances": [GOOD]}).status_code == 503
        assert log == ["start", "stop", "start"]
        state.update(alive=False, fail_start=True)
        reply = client.post("/v1/models/m:predict", json={"instances": [GOOD]})
        assert reply.status_code == 503 and "could not start" in reply.json()["error"]
        assert client.get("/v1/models/m").status_code == 200, "the front itself stays up"


# --- a real server of a small CNN -----------------------------------------------------------------

BUILD = """
import json, sys
from dmlc.runtime.models import build_model, compile_model
model = compile_model(build_model("cnn", [28, 28, 1], 10))
model.save(sys.argv[1], save_format="tf")
with open(sys.argv[1] + "/dmlc_metrics.json", "w") as f:
    json.dump({"input_shape": [28, 28, 1], "num_classes": 10}, f)
"""


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The book's cnn on 28x28x1 (untrained), saved as the train step saves a model."""
    pytest.importorskip("tensorflow")
    from tests.runtime.conftest import step_env

    out = tmp_path_factory.mktemp("cnn") / "model"
    subprocess.run([sys.executable, "-c", BUILD, str(out)], env=step_env(), check=True, capture_output=True)
    return out


class Server:
    def __init__(self, model: Path, log: Path, *args: str) -> None:
        from dmlc.runtime.serve import server_argv, wait_ready
        from tests.runtime.conftest import step_env

        port = _free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.endpoint = f"{self.base}/v1/models/m"
        self.log = log
        argv = [*server_argv(str(model), "m", port), *args]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=step_env(), start_new_session=True, stdout=out, stderr=out)
        wait_ready(self.endpoint, self.proc)

    def post(self, path: str, body: Any, timeout: float = 60) -> httpx.Response:
        return httpx.post(f"{self.base}/v1/models/{path}", content=_body(body), timeout=timeout)

    def good(self) -> None:
        reply = self.post("m:predict", GOOD_REQUEST)
        assert reply.status_code == 200, reply.text[:300]
        predictions = np.array(reply.json()["predictions"])
        assert predictions.shape == (2, 10) and np.allclose(predictions.sum(axis=1), 1.0, atol=1e-4)

    def children(self, pid: int | None = None) -> dict[int, str]:
        """pid -> command line of the direct children of `pid` (default: the server process)."""
        found = {}
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rpartition(")")[2].split()[1]) == (pid or self.proc.pid):
                found[int(entry)] = cmdline
        return found

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture(scope="module")
def live_server(cnn: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(cnn, tmp_path_factory.mktemp("serve") / "serve.log")
    yield server
    server.stop()


def until_good(post: Any, deadline_s: float = 90) -> tuple[list[int], float]:
    """Send until 200; every answer meanwhile must be a prompt 503. The codes seen and the seconds taken."""
    codes, started = [], time.monotonic()
    while time.monotonic() - started < deadline_s:
        reply = post()
        codes.append(reply.status_code)
        if reply.status_code == 200:
            return codes, time.monotonic() - started
        assert reply.status_code == 503 and reply.headers.get("retry-after") == "1", reply.text[:300]
        time.sleep(0.1)
    raise AssertionError(f"no 200 within {deadline_s}s: {codes[-5:]}")


@pytest.mark.tf
@pytest.mark.slow
def test_no_request_stops_the_server(live_server: Server) -> None:
    """Each malformed request (the 2-number instance used to abort the process in oneDNN), then a good
    one: the same worker answers them all."""
    workers = live_server.children()
    assert len(workers) == 1 and all("--worker" in cmd for cmd in workers.values())
    for case, path, body, status in REQUESTS:
        reply = live_server.post(path, body)
        assert reply.status_code == status, (case, reply.text[:300])
        assert set(reply.json()) == {"error"}, case
        live_server.good()
    with ThreadPoolExecutor(8) as pool:  # concurrent malformed requests: still one 400 each
        codes = list(
            pool.map(lambda _: live_server.post("m:predict", {"instances": [[0.0, 1.0]]}).status_code, range(32))
        )
    assert codes == [400] * 32
    reply = live_server.post("m:predict", {"instances": [image(1e30)]})  # finite input, non-finite output
    assert reply.status_code == 200 and json.loads(reply.text)["predictions"]
    live_server.good()
    assert live_server.children() == workers, "no worker died or was restarted"
    assert live_server.proc.poll() is None


@pytest.mark.tf
@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_503_answers_meanwhile(live_server: Server) -> None:
    (worker,) = live_server.children()
    os.kill(worker, signal.SIGKILL)
    time.sleep(0.3)  # the supervisor notices within 0.1 s
    health = httpx.get(f"{live_server.base}/healthz", timeout=10)
    assert health.status_code == 200, "the supervisor is alive while its worker restarts"
    codes, seconds = until_good(lambda: live_server.post("m:predict", GOOD_REQUEST, timeout=10))
    assert codes[0] == 503 and codes[-1] == 200, codes
    print(f"worker restart: {len(codes) - 1} requests answered 503, serving again after {seconds:.1f}s")
    (new_worker,) = live_server.children()
    assert new_worker != worker and live_server.proc.poll() is None
    live_server.good()
    assert b"restarting it" in live_server.log.read_bytes()


@pytest.mark.tf
@pytest.mark.slow
def test_a_router_answers_503_while_a_shard_restarts(cnn: Path, tmp_path: Path) -> None:
    server = Server(cnn, tmp_path / "serve.log", "--shards", "2")
    try:
        shards = {pid: cmd for pid, cmd in server.children().items() if "--port" in cmd}
        assert len(shards) == 2
        reply = server.post("m:predict", {"instances": [GOOD, [0.0, 1.0]]})  # one instance is bad
        assert reply.status_code == 400 and "rank 1" in reply.json()["error"]
        server.good()
        victim = next(iter(shards))
        (worker,) = server.children(victim)
        os.kill(victim, signal.SIGKILL)  # a whole shard server, supervisor and all: its worker follows it
        gone_by = time.monotonic() + 30
        while Path(f"/proc/{worker}").exists() and time.monotonic() < gone_by:  # (it answers until then)
            time.sleep(0.05)
        spread = {"instances": [GOOD] * 8}  # by position: both shards get some
        assert {shard_of(x, i, None, 2) for i, x in enumerate(spread["instances"])} == {0, 1}
        codes, seconds = until_good(lambda: server.post("m:predict", spread, timeout=10), deadline_s=120)
        assert codes[0] == 503 and codes[-1] == 200, codes
        print(f"shard restart: {len(codes) - 1} requests answered 503, serving again after {seconds:.1f}s")
        server.good()
        assert victim not in server.children() and server.proc.poll() is None
    finally:
        server.stop()


@pytest.mark.tf
def test_a_model_that_cannot_load_is_dml200(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A saved_model.pb TensorFlow cannot parse: the worker says why and the server stops with DML200
    (was a traceback and uvicorn's exit 3)."""
    pytest.importorskip("tensorflow")
    (tmp_path / "saved_model.pb").write_bytes(b"not a SavedModel")
    code = main(["serve", str(tmp_path), "--port", str(_free_port())])
    err = capsys.readouterr().err
    assert code == 1 and "error[DML200]: cannot load the SavedModel" in err, err[-2000:]
    assert "Traceback" not in err
