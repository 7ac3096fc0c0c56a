"""Serving that real clients can talk to (issue 14): KServe's Python client (protocols v1 and v2) and the
book's chapter-9 request (`{"instances": [{"image_bytes": {"b64": JPEG}}]}`).

- Without TensorFlow: every KServe route and the v2 codec on an app with a stand-in model; malformed v2
  requests and encoded images refused with a 400 before the model sees them.
- With TensorFlow: a cnn trained on the real Fashion-MNIST images of ../shared/data, served by
  `dmlc serve`, by a replicated serve step and by a sharded server; KServe's own client (the `kserve`
  package, in a venv of its own: see `kserve_python`) gets live, ready and predictions from each, and
  the book's base64 JPEG request gets the class the raw-tensor request gets.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import numpy as np
import pytest

from dmlc.runtime import oip
from dmlc.runtime.predictor import (
    MAX_IMAGE_PIXELS,
    BadInstances,
    image_size,
    images_array,
    instances_array,
    tensor_array,
)
from dmlc.runtime.router import router_app
from dmlc.runtime.server_apps import model_app
from tests.adversarial.test_serving import GOOD, AppClient, StandInModel
from tests.runtime.conftest import SHARED, check, run_step, step_env

KSERVE = "kserve==0.21.0"  # the client's version under test
SHAPE = [28, 28, 1]


def png(width: int, height: int, gray: bytes | None = None) -> bytes:
    """A real 8-bit grayscale PNG (or, without pixels, only a header that declares its size)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    head = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    if gray is None:
        return head
    rows = b"".join(b"\x00" + gray[y * width : (y + 1) * width] for y in range(height))
    return head + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class ImageModel(StandInModel):
    """The stand-in with the v2 and image parts of the predictor's interface; its "decoder" reads the
    PNG header only and answers a constant image, so no TensorFlow is needed."""

    input_dtype = output_dtype = SimpleNamespace(as_numpy_dtype=np.float32)
    output_shape = [10]

    def __init__(self, takes_images: bool = True) -> None:
        super().__init__()
        self.decoded: list[int] = []
        self.images = self.decode if takes_images else None

    def decode(self, blobs: list[bytes]) -> np.ndarray:
        self.decoded.append(len(blobs))
        return np.full((len(blobs), *SHAPE), 0.5, dtype=np.float32)

    def instances_to_array(self, instances: Any) -> np.ndarray:
        return instances_array(instances, self.input_name, SHAPE, np.float32, images=self.images)

    def tensor_to_array(self, x: np.ndarray) -> np.ndarray:
        return tensor_array(x, SHAPE, np.float32)

    def images_to_array(self, blobs: list[bytes]) -> np.ndarray:
        return images_array(blobs, self.input_name, SHAPE, np.float32, self.images)


def v2_body(data: Any, shape: list[int], name: str = "image_bytes", datatype: str = "FP32", **extra: Any) -> dict:
    return {"id": "r1", "inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": data}], **extra}


def binary_body(x: np.ndarray, outputs: list | None = None) -> tuple[bytes, dict[str, str]]:
    """A request in the binary tensor extension, as KServe's client sends one."""
    raw = x.astype("<f4").tobytes()
    head: dict[str, Any] = {
        "inputs": [
            {
                "name": "image_bytes",
                "shape": list(x.shape),
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(raw)},
            }
        ]
    }
    if outputs is not None:
        head["outputs"] = outputs
    text = json.dumps(head).encode()
    return text + raw, {"content-type": "application/octet-stream", oip.HEADER: str(len(text))}


# --- KServe's routes on an app with a stand-in model (no TensorFlow) --------------------------------


def test_kserve_v1_and_v2_routes() -> None:
    with AppClient(model_app("unused", "m", ImageModel())) as client:
        assert client.get("/").json() == {"status": "alive"}  # KServe v1 is_server_live
        assert client.get("/v1/models").json() == {"models": ["m"]}
        status = client.get("/v1/models/m").json()  # both shapes: KServe v1's and TF Serving's
        assert status["name"] == "m" and status["ready"] is True
        assert status["model_version_status"][0]["state"] == "AVAILABLE"
        assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").json() == {"ready": True}
        assert client.get("/v2/models/m/ready").json() == {"name": "m", "ready": True}
        meta = client.get("/v2/models/m").json()
        assert meta["inputs"] == [{"name": "image_bytes", "datatype": "FP32", "shape": [-1, 28, 28, 1]}]
        assert meta["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 10]}]
        for path in ("/v2/models/other", "/v2/models/other/ready", "/v1/models/other"):
            assert client.get(path).status_code == 404, path


def test_v2_infer_json_binary_and_images() -> None:
    model = ImageModel()
    x = np.stack([np.zeros(SHAPE), np.ones(SHAPE)]).astype(np.float32)
    with AppClient(model_app("unused", "m", model)) as client:
        flat = client.post("/v2/models/m/infer", json=v2_body(x.reshape(-1).tolist(), [2, *SHAPE]))
        assert flat.status_code == 200, flat.text
        answer = flat.json()
        assert (answer["model_name"], answer["id"]) == ("m", "r1")
        assert answer["outputs"][0] | {"data": None} == {
            "name": "probs",
            "datatype": "FP32",
            "shape": [2, 10],
            "data": None,
        }
        assert np.allclose(answer["outputs"][0]["data"], 0.1) and len(answer["outputs"][0]["data"]) == 20
        nested = client.post("/v2/models/m/infer", json=v2_body(x.tolist(), [2, *SHAPE], datatype="FP64"))
        assert nested.status_code == 200 and nested.json()["outputs"][0]["shape"] == [2, 10]

        body, headers = binary_body(x, outputs=[{"name": "probs", "parameters": {"binary_data": True}}])
        reply = client.post("/v2/models/m/infer", content=body, headers=headers)
        assert reply.status_code == 200, reply.text
        (out,) = oip.read_response(reply.content, reply.headers.get(oip.HEADER))
        assert out.shape == [2, 10] and np.allclose(out.value, 0.1)
        assert int(reply.headers[oip.HEADER]) < len(reply.content)  # the data came as raw bytes
        body, headers = binary_body(x)
        everything = json.loads(body[: int(headers[oip.HEADER])]) | {"parameters": {"binary_data_output": True}}
        text = json.dumps(everything).encode()
        reply = client.post(
            "/v2/models/m/infer", content=text + body[int(headers[oip.HEADER]) :], headers={oip.HEADER: str(len(text))}
        )
        assert reply.status_code == 200 and oip.HEADER in reply.headers, reply.text  # every output in binary

        png_b64 = base64.b64encode(png(28, 28, bytes(784))).decode()
        reply = client.post("/v2/models/m/infer", json=v2_body([png_b64], [1], datatype="BYTES"))
        assert reply.status_code == 200 and reply.json()["outputs"][0]["shape"] == [1, 10], reply.text
        book = {"instances": [{"image_bytes": {"b64": png_b64}}, {"b64": png_b64}]}  # TF Serving's b64 form
        reply = client.post("/v1/models/m:predict", json=book)
        assert reply.status_code == 200 and len(reply.json()["predictions"]) == 2, reply.text
        assert model.decoded == [1, 2]
        empty = client.post("/v2/models/m/infer", json=v2_body([], [0, *SHAPE]))
        assert empty.status_code == 200 and empty.json()["outputs"][0]["shape"] == [0, 10]


BAD_V2: list[tuple[str, Any, int, str]] = [
    # (case, body (dict: JSON; bytes: raw), status, part of the message)
    ("another input name", v2_body([0.0] * 784, [1, *SHAPE], name="x"), 400, "takes one input, 'image_bytes'"),
    ("two inputs", {"inputs": [v2_body([0.0], [1, 1])["inputs"][0]] * 2}, 400, "same name"),
    ("no inputs", {"inputs": []}, 400, "non-empty list"),
    ("a list body", [1, 2], 400, "must be an object"),
    ("a 2-number tensor", v2_body([0.0, 1.0], [1, 2]), 400, "the model takes a batch of shape [N, 28x28x1]"),
    ("no batch axis", v2_body([0.0] * 784, SHAPE), 400, "the model takes a batch"),
    ("three channels", v2_body([0.0] * 2352, [1, 28, 28, 3]), 400, "axis 3 differs"),
    ("count below the shape", v2_body([0.0] * 783, [1, *SHAPE]), 400, "holds 783 values"),
    ("count above the shape", v2_body([0.0] * 785, [1, *SHAPE]), 400, "holds 785 values"),
    ("ragged data", v2_body([[0.0], [0.0, 1.0]], [2, 1]), 400, "ragged"),
    ("strings as FP32", v2_body(["0"] * 784, [1, *SHAPE]), 400, "must be numbers"),
    ("booleans as FP32", v2_body([True] * 784, [1, *SHAPE]), 400, "must be numbers"),
    ("null data", v2_body(None, [1, *SHAPE]), 400, '"data" must be a list'),
    ("beyond float32", v2_body([3.5e38] * 784, [1, *SHAPE]), 400, "finite numbers"),
    ("an unknown datatype", v2_body([0.0] * 784, [1, *SHAPE], datatype="FP8"), 400, "is not one of"),
    ("a negative size", v2_body([], [-1, *SHAPE]), 400, '"shape" must be a list of sizes'),
    ("a shape beyond the cap", v2_body([], [10**6, *SHAPE]), 400, "over the 4000000 values"),
    ("deep data", v2_body(json.loads("[" * 50 + "]" * 50), [1, *SHAPE]), 400, "nested deeper"),
    ("an unknown output", v2_body([0.0] * 784, [1, *SHAPE], outputs=[{"name": "logits"}]), 400, "has one output"),
    ("base64 that is not", v2_body(["%%%"], [1], datatype="BYTES"), 400, "base64-encoded image"),
    ("BYTES that are no image", v2_body([base64.b64encode(b"GIF89a").decode()], [1], datatype="BYTES"), 400, "JPEG"),
    (
        "a decompression bomb",
        v2_body([base64.b64encode(png(60000, 60000)).decode()], [1], datatype="BYTES"),
        400,
        "pixels",
    ),
    ("NaN", b'{"inputs": [{"name": "image_bytes", "shape": [1], "datatype": "FP32", "data": [NaN]}]}', 400, "JSON"),
    ("not JSON", b"nope", 400, "not valid JSON"),
    (
        "data and binary",
        v2_body([0.0], [1, 1])
        | {"inputs": [{**v2_body([0.0], [1, 1])["inputs"][0], "parameters": {"binary_data_size": 4}}]},
        400,
        "not both",
    ),
]


@pytest.mark.parametrize(("case", "body", "status", "message"), BAD_V2, ids=[b[0] for b in BAD_V2])
def test_malformed_v2_requests_are_refused_before_the_model(case: str, body: Any, status: int, message: str) -> None:
    model = ImageModel()
    with AppClient(model_app("unused", "m", model)) as client:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        reply = client.post("/v2/models/m/infer", content=content, headers={"content-type": "application/json"})
        assert reply.status_code == status, reply.text
        assert set(reply.json()) == {"error"} and message in reply.json()["error"], reply.json()
        assert model.batches == [] and model.decoded == []


def test_malformed_binary_requests() -> None:
    model = ImageModel()
    x = np.zeros((1, *SHAPE), dtype=np.float32)
    with AppClient(model_app("unused", "m", model)) as client:

        def post(content: bytes, length: str) -> httpx.Response:
            return client.post("/v2/models/m/infer", content=content, headers={oip.HEADER: length})

        body, headers = binary_body(x)
        length = headers[oip.HEADER]
        assert post(body, length).status_code == 200
        for bad_length in ("0", "-1", "x", str(len(body) + 1)):
            reply = post(body, bad_length)
            assert reply.status_code == 400 and oip.HEADER in reply.json()["error"], bad_length
        assert "not part of any input" in post(body + b"\0", length).json()["error"]
        assert "beyond the" in post(body[:-4], length).json()["error"]
        nan = np.full((1, *SHAPE), np.nan, dtype=np.float32)
        body, headers = binary_body(nan)
        reply = post(body, headers[oip.HEADER])
        assert reply.status_code == 400 and "finite" in reply.json()["error"]
        assert client.post("/v2/models/other/infer", content=body, headers=headers).status_code == 404
    assert len(model.batches) == 1


def test_encoded_images_are_checked_before_decoding() -> None:
    decoded: list[int] = []

    def decode(blobs: list[bytes]) -> np.ndarray:
        decoded.append(len(blobs))
        return np.zeros((len(blobs), *SHAPE), dtype=np.float32)

    def b64(blob: bytes) -> dict:
        return {"image_bytes": {"b64": base64.b64encode(blob).decode()}}

    good = png(28, 28, bytes(784))
    assert instances_array([b64(good)], "image_bytes", SHAPE, np.float32, images=decode).shape == (1, *SHAPE)
    urlsafe = {"b64": base64.urlsafe_b64encode(good).decode().rstrip("=")}  # URL-safe, unpadded: TF Serving takes it
    assert instances_array([urlsafe], "image_bytes", SHAPE, np.float32, images=decode).shape == (1, *SHAPE)
    cases = [
        ([b64(good)], None, "is not an image"),  # a model without image input
        ([{"b64": "%%%"}], decode, "not valid base64"),
        ([{"b64": 5}], decode, "must be a base64 string"),
        ([b64(b"hello")], decode, "not a JPEG or PNG"),
        ([b64(png(0, 28))], decode, "empty picture"),
        ([b64(png(5000, 5000))], decode, f"at most {MAX_IMAGE_PIXELS}"),
        ([b64(png(4000, 4000))] * 3, decode, "a request may hold at most"),
        ([b64(good), GOOD], decode, "send one kind per request"),
        ([GOOD, b64(good)], decode, "send one kind per request"),
        ([b64(good)] * 6, decode, "a request may hold at most 3920 numbers"),
    ]
    for instances, images, message in cases:
        with pytest.raises(BadInstances, match=message):
            instances_array(instances, "image_bytes", SHAPE, np.float32, max_values=3920, images=images)
    with pytest.raises(BadInstances, match="is not an image"):
        instances_array([{"x": b64(good)["image_bytes"]}], "x", [784], np.float32, images=decode)
    assert decoded == [1, 1], "nothing that failed a check was decoded"
    assert instances_array([{"image_bytes": GOOD, "b": 1}], "image_bytes", SHAPE, np.float32).shape == (1, *SHAPE)
    with pytest.raises(BadInstances, match="without the input"):
        instances_array([{"pixels": {"b": 1}}], "image_bytes", SHAPE, np.float32, images=decode)


def test_image_headers() -> None:
    assert image_size(png(28, 30)) == (28, 30)
    # a JPEG's frame header after an APP0 segment: FFD8, FFE0 + length 16, FFC0 + length 11 + precision + h + w
    jpeg = b"\xff\xd8\xff\xe0\x00\x10" + b"JFIF\x00" + b"\x00" * 9 + b"\xff\xc0\x00\x0b\x08\x00\x1c\x00\x2a\x01"
    assert image_size(jpeg + b"\x00" * 8) == (42, 28)
    assert image_size(b"\xff\xd8\xff\xda\x00\x08") is None  # a scan before any frame header
    assert image_size(b"\xff\xd8") is None and image_size(b"") is None and image_size(b"GIF89a") is None


def test_rows_split_and_join_in_request_order() -> None:
    x = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    request = oip.parse_request(v2_body(x.tolist(), [5, 3], name="a"), b"", 100)
    assert oip.batch_size(request) == 5
    parts = []
    for rows in ([0, 2, 4], [1, 3]):
        (part,) = [oip.take_rows(t, rows) for t in request.inputs]
        assert part.shape == [len(rows), 3]
        parts.append((rows, [oip.Tensor("y", "FP32", part.shape, np.asarray(part.value) * 2)]))
    (joined,) = oip.join_rows(parts, 5)
    assert joined.shape == [5, 3] and np.array_equal(oip.array(joined), x * 2)
    blobs = oip.parse_request(
        {"inputs": [{"name": "b", "shape": [3], "datatype": "BYTES", "data": ["x", "y", "z"]}]}, b"", 100
    )
    assert oip.take_rows(blobs.inputs[0], [2, 0]).value == ["z", "x"]
    with pytest.raises(oip.BadRequest, match="same size"):
        oip.batch_size(
            oip.parse_request(
                {"inputs": [v2_body([1.0], [1])["inputs"][0], v2_body([1.0, 2.0], [2], "c")["inputs"][0]]}, b"", 9
            )
        )


def test_an_image_model_keeps_every_check_of_plain_instances() -> None:
    """With an image decoder, plain instances are refused as before (the adversarial table)."""
    from tests.adversarial.test_serving import INSTANCES

    def decode(blobs: list[bytes]) -> np.ndarray:
        raise AssertionError("no instance of the table is an encoded image")

    for _case, instances, message in INSTANCES:
        with pytest.raises(BadInstances, match=message):
            instances_array(instances, "image_bytes", SHAPE, np.float32, images=decode)


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """`app` served by uvicorn on a free port in a thread; its base URL."""
    import threading

    import uvicorn

    from dmlc.runtime.local_cluster import free_ports

    port = free_ports(1)[0]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class Doubling(ImageModel):
    """Predicts each image's mean twice over ten classes: a row's answer shows which row it was."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x.shape)
        return np.repeat(x.reshape(len(x), -1).mean(axis=1, keepdims=True) * 2, 10, axis=1)


def test_a_router_splits_v2_rows_over_its_shards_and_keeps_their_order() -> None:
    shards = [Doubling(), Doubling()]
    x = np.arange(8, dtype=np.float32)[:, None, None, None] * np.ones((1, *SHAPE), dtype=np.float32)
    with (
        serving(model_app("unused", "m", shards[0])) as one,
        serving(model_app("unused", "m", shards[1])) as two,
        AppClient(router_app([one, two], "m", None)) as router,
    ):
        assert router.get("/v1/models/m").json()["ready"] is True
        assert router.get("/v2/health/ready").json() == {"ready": True}
        assert router.get("/v2/models/m").json()["inputs"][0]["name"] == "image_bytes"
        body, headers = binary_body(x, outputs=[{"name": "probs", "parameters": {"binary_data": True}}])
        reply = router.post("/v2/models/m/infer", content=body, headers=headers)
        assert reply.status_code == 200, reply.text
        (out,) = oip.read_response(reply.content, reply.headers.get(oip.HEADER))
        assert np.array_equal(oip.array(out)[:, 0], np.arange(8) * 2.0)  # request order
        reply = router.post("/v2/models/m/infer", json=v2_body(x.tolist(), [8, *SHAPE]))
        assert reply.status_code == 200 and reply.json()["outputs"][0]["data"][::10] == list(np.arange(8) * 2.0)
        assert all(s.batches for s in shards), "both shards answered"
        bad = router.post("/v2/models/m/infer", json=v2_body([0.0, 1.0] * 8, [8, 2]))
        assert bad.status_code == 400 and "the model takes a batch" in bad.json()["error"]  # a shard's 400
        assert router.post("/v2/models/other/infer", json=v2_body([], [0, 2])).status_code == 404
    with AppClient(router_app([one, two], "m", None)) as router:  # both shards stopped
        assert router.get("/v1/models/m").status_code == 503 and router.get("/v1/models/m").json()["ready"] is False
        reply = router.post("/v2/models/m/infer", json=v2_body(x.tolist(), [8, *SHAPE]))
        assert reply.status_code == 503 and reply.headers["retry-after"] == "1"
        assert router.get("/v2/health/live").json() == {"live": True}


def test_an_events_front_passes_v2_requests_through() -> None:
    from dmlc.runtime.events import Backend, events_app

    model = Doubling()
    x = np.full((2, *SHAPE), 0.25, dtype=np.float32)
    with serving(model_app("unused", "m", model)) as url:

        async def start() -> str:
            return url

        async def stop() -> None:
            pass

        with AppClient(events_app(Backend(start, stop), "m", {"max_concurrency": 4, "idle_timeout": 60})) as front:
            assert front.get("/").json() == {"status": "alive"}
            status = front.get("/v1/models/m").json()
            assert status["ready"] is True and status["dmlc"]["backend_running"] is False
            body, headers = binary_body(x, outputs=[{"name": "probs", "parameters": {"binary_data": True}}])
            reply = front.post("/v2/models/m/infer", content=body, headers=headers)
            assert reply.status_code == 200 and oip.HEADER in reply.headers, reply.text
            (out,) = oip.read_response(reply.content, reply.headers[oip.HEADER])
            assert np.allclose(oip.array(out), 0.5)
            assert front.get("/v2/models/m").json()["outputs"][0]["name"] == "probs"
            assert front.get("/v2/models/m/ready").json() == {"name": "m", "ready": True}


# --- real servers of a cnn trained on real Fashion-MNIST images, with real clients ------------------


@pytest.fixture(scope="module")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A cnn trained (3 epochs) on the 720 Fashion-MNIST train images of ../shared/data; 20 test images
    (two per class) as raw tensors, JPEG and PNG files, and what model.predict says about them."""
    pytest.importorskip("tensorflow")
    if not (SHARED / "data" / "make_fashion_idx.py").exists():
        pytest.skip("../shared/data is absent")
    root = tmp_path_factory.mktemp("fashion")
    idx = root / "idx"
    subprocess.run([sys.executable, str(SHARED / "data" / "make_fashion_idx.py"), str(idx)], check=True, timeout=300)
    attrs = {"dataset": "fashion_mnist", "path": str(idx), "format": "idx", "batch": 64}
    check(run_step("ingest", attrs, root / "ingest"))
    data = root / "ingest" / "outputs" / "dataset"
    check(run_step("train", {"data": str(data), "model": "cnn", "epochs": 3, "strategy": "single"}, root / "train"))
    model = root / "train" / "outputs" / "model"

    import tensorflow as tf
    import tf_keras

    test = np.load(data / "test.npz")
    picks = np.concatenate([np.flatnonzero(test["y"] == c)[:2] for c in range(10)])
    x = test["x"][picks].astype(np.float32)  # ingest scaled the uint8 pixels by 1/255
    pixels = np.round(x * 255).astype(np.uint8)
    jpeg = [tf.io.encode_jpeg(p, quality=95).numpy() for p in pixels]
    big_rgb = [  # 84x84 RGB: the server converts to one channel and resizes to 28x28
        tf.io.encode_jpeg(tf.image.grayscale_to_rgb(tf.image.resize(p, [84, 84], "nearest")), quality=95).numpy()
        for p in pixels
    ]
    png_files = [tf.io.encode_png(p).numpy() for p in pixels]
    expected = tf_keras.models.load_model(str(model)).predict(x, verbose=0)
    cases = root / "cases.npz"
    np.savez(cases, x=x, jpeg=np.array(jpeg, dtype=object))
    return SimpleNamespace(model=model, x=x, jpeg=jpeg, big_rgb=big_rgb, png=png_files, expected=expected, cases=cases)


@pytest.fixture(scope="module")
def dmlc_serve(fashion: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dmlc serve MODEL --name fashion` (the CLI, one model worker); its base URL."""
    from dmlc.runtime.local_cluster import free_ports
    from dmlc.runtime.serve import wait_ready

    port = free_ports(1)[0]
    log = tmp_path_factory.mktemp("dmlc-serve") / "serve.log"
    argv = [sys.executable, "-m", "dmlc.cli", "serve", str(fashion.model), "--name", "fashion", "--port", str(port)]
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, env=step_env(), start_new_session=True, stdout=out, stderr=out)
    try:
        wait_ready(f"http://127.0.0.1:{port}/v1/models/fashion", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def classes(predictions: Any, fashion: SimpleNamespace | None = None) -> list[int]:
    """The predicted classes; given `fashion`, of the images the model is sure of (a margin of 0.1 over
    the second class, 16 or more of the 20 here): JPEG's loss may flip a near tie, and that is no bug."""
    picked = np.argmax(np.asarray(predictions), axis=1)
    if fashion is not None:
        top2 = np.sort(fashion.expected, axis=1)[:, -2:]
        sure = top2[:, 1] - top2[:, 0] > 0.1
        assert sure.sum() >= 16, "the trained model is unsure of too many test images"
        picked = picked[sure]
    return picked.tolist()


@pytest.mark.tf
@pytest.mark.slow
def test_the_books_jpeg_request_gets_the_raw_tensor_class(fashion: SimpleNamespace, dmlc_serve: str) -> None:
    url = f"{dmlc_serve}/v1/models/fashion:predict"

    def predict(instances: list) -> np.ndarray:
        reply = httpx.post(url, json={"instances": instances}, timeout=120)
        assert reply.status_code == 200, reply.text
        return np.asarray(reply.json()["predictions"])

    def book(files: list[bytes]) -> dict:  # the book's chapter-9 request: inference-input.json's form
        return {"instances": [{"image_bytes": {"b64": base64.b64encode(f).decode()}} for f in files]}

    raw = predict(fashion.x.tolist())
    np.testing.assert_allclose(raw, fashion.expected, rtol=1e-4, atol=1e-5)
    reply = httpx.post(url, content=json.dumps(book(fashion.jpeg)), timeout=120)  # as the book's script posts it
    assert reply.status_code == 200, reply.text
    from_jpeg = np.asarray(reply.json()["predictions"])
    assert classes(from_jpeg, fashion) == classes(raw, fashion), (classes(from_jpeg), classes(raw))
    assert np.abs(from_jpeg - raw).max() < 0.1  # JPEG's loss moves the probabilities only a little
    from_png = predict(book(fashion.png)["instances"])  # lossless: the very numbers of the raw tensors
    np.testing.assert_allclose(from_png, raw, rtol=1e-4, atol=1e-5)
    from_big = predict(book(fashion.big_rgb)["instances"])  # RGB 84x84: to gray, resized to 28x28
    agree = np.mean(np.array(classes(from_big, fashion)) == np.array(classes(raw, fashion)))
    assert agree >= 0.8, (classes(from_big), classes(raw))
    same = np.mean(np.array(classes(from_jpeg)) == np.array(classes(raw)))
    print(f"book JPEG: {len(fashion.jpeg)} images, {same:.0%} of classes equal to the raw tensors' (all sure ones)")
    change = np.abs(from_jpeg - raw).max()
    print(f"84x84 RGB JPEG, resized: {agree:.0%} of the sure classes equal; JPEG moved a probability {change:.3f}")
    damaged = [  # headers that pass the checks, bodies that TensorFlow's decoders must refuse
        fashion.jpeg[0][: len(fashion.jpeg[0]) // 2],  # a JPEG cut in half
        fashion.png[0][:33] + b"\0" * 40,  # a PNG header, then no image data
        b"\xff\xd8junk",
    ]
    for blob in damaged:
        bad = httpx.post(url, json=book([blob]), timeout=60)
        assert bad.status_code == 400 and set(bad.json()) == {"error"}, bad.text
        assert predict(fashion.x[:1].tolist()).shape == (1, 10)  # still serving


@pytest.fixture(scope="session")
def kserve_python() -> str:
    """The Python of a venv that has KServe's client: `$DMLC_KSERVE_PYTHON`, else one made here on first
    use from the package index, in the user's cache (one per machine, kserve version and Python: every
    checkout and CI run shares it). Not dmlc's own venv: kserve brings uvicorn[standard] (uvloop and
    httptools, which uvicorn then picks for dmlc's servers too) and moves python-dateutil back a major
    version, so it is kept apart; skipped with pip's reason when it cannot be installed."""
    given = os.environ.get("DMLC_KSERVE_PYTHON")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dmlc-tests"
    venv = cache / f"{KSERVE.replace('==', '-')}-py{sys.version_info.major}.{sys.version_info.minor}"
    python = Path(given) if given else venv / "bin" / "python"

    def has_kserve() -> bool:
        probe = [str(python), "-c", "import kserve, PIL"]
        return python.exists() and subprocess.run(probe, capture_output=True, timeout=120).returncode == 0

    if not has_kserve() and not given:
        made = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
        pip = [str(python), "-m", "pip", "install", "-q", KSERVE]
        installed = made.returncode == 0 and subprocess.run(pip, capture_output=True, text=True, timeout=1200)
        if not installed or installed.returncode != 0:
            tail = (installed.stderr if installed else made.stderr)[-600:]
            pytest.skip(f"cannot install {KSERVE} into {venv}: {tail}")
    if not has_kserve():
        pytest.skip(f"{python} has no kserve")
    return str(python)


def kserve_report(python: str, base: str, model: str, cases: Path) -> dict:
    script = Path(__file__).with_name("kserve_client.py")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [python, str(script), base, model, str(cases)], capture_output=True, text=True, timeout=300, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def check_report(report: dict, fashion: SimpleNamespace) -> None:
    """Live, ready and predictions through KServe's client, protocols v1 and v2, equal to model.predict."""
    assert report["v1_live"] is True and report["v1_model_ready"] is True, report
    assert report["v2_live"] is True and report["v2_server_ready"] is True and report["v2_model_ready"] is True
    want = fashion.expected
    for key in ("v1_predictions", "v2_json_outputs", "v2_binary_outputs"):
        np.testing.assert_allclose(np.asarray(report[key]), want, rtol=1e-4, atol=1e-5, err_msg=key)
    for key in ("v1_book_jpeg_predictions", "v2_jpeg_outputs"):
        assert classes(report[key], fashion) == classes(want, fashion), key
        assert np.abs(np.asarray(report[key]) - want).max() < 0.1, key
    assert report["v2_json_id"] == "json-1" and report["v2_bad_input"] == 400
    assert report["v2_metadata"]["inputs"][0] == {"name": "image_bytes", "datatype": "FP32", "shape": [-1, 28, 28, 1]}


@pytest.mark.tf
@pytest.mark.slow
def test_kserve_client_against_dmlc_serve(kserve_python: str, fashion: SimpleNamespace, dmlc_serve: str) -> None:
    report = kserve_report(kserve_python, dmlc_serve, "fashion", fashion.cases)
    check_report(report, fashion)
    print(f"KServe client {report['kserve']} (httpx {report['httpx']}) against dmlc serve: live, ready, predictions")


@pytest.mark.tf
@pytest.mark.slow
def test_kserve_client_against_a_replicated_serve_step(
    kserve_python: str, fashion: SimpleNamespace, tmp_path: Path
) -> None:
    pidfile = tmp_path / "serve.json"
    attrs = {"model": str(fashion.model), "replicas": 2}
    check(run_step("serve", attrs, tmp_path, env={"DMLC_SERVE_PIDFILE": str(pidfile)}, step="fashion"))
    record = json.loads(pidfile.read_text())
    try:
        base = record["endpoint"].rsplit("/v1/models/", 1)[0]
        check_report(kserve_report(kserve_python, base, "fashion", fashion.cases), fashion)
    finally:
        for pgid in record["pgids"]:
            os.killpg(pgid, signal.SIGKILL)


@pytest.mark.tf
@pytest.mark.slow
def test_kserve_client_against_a_sharded_server(kserve_python: str, fashion: SimpleNamespace, tmp_path: Path) -> None:
    """Two shard servers behind the router: v1 instances and v2 rows are split over both and joined."""
    from dmlc.runtime.local_cluster import free_ports
    from dmlc.runtime.serve import server_argv, wait_ready

    port = free_ports(1)[0]
    argv = server_argv(str(fashion.model), "fashion", port, shards=2)
    with (tmp_path / "serve.log").open("ab") as out:
        proc = subprocess.Popen(argv, env=step_env(), start_new_session=True, stdout=out, stderr=out)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/v1/models/fashion", proc)
        check_report(kserve_report(kserve_python, base, "fashion", fashion.cases), fashion)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
