"""Hostile serving requests (issue 12): each malformed request is refused with a 400 in TF Serving's
error shape before the model sees it, and a router whose shard is down answers 503.

Families, each a table a reviewer can extend:
- INSTANCES: request instances checked against a 28x28x1 float32 signature -> the 400 message.
- REQUESTS: whole HTTP requests -> status, sent to the model app with a stand-in model (no TensorFlow).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from dmlc.runtime.predictor import BadInstances, instances_array
from dmlc.runtime.server_apps import MAX_BODY_BYTES, model_app, parse_json, router_app

SHAPE = [28, 28, 1]


def image(value: Any = 0.0, shape: list[int] = SHAPE) -> Any:
    out: Any = value
    for size in reversed(shape):
        out = [out] * size
    return out


GOOD = image()

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
