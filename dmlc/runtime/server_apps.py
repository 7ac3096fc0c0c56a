"""The ASGI apps of model serving (starlette): a TF-Serving-compatible model server, the
scatter-gather router of a sharded service, and the event-driven front (scale from zero, 429s).

REST surface (TF Serving's): `GET /v1/models/NAME` (version status), `GET /v1/models/NAME/metadata`,
`POST /v1/models/NAME:predict` with `{"instances": [...]}` -> `{"predictions": [...]}` (or the columnar
`{"inputs": ...}` -> `{"outputs": ...}`), plus `/healthz` (alive) and `/ready` (model loaded). An
instance of an image model may be an encoded image, `{"b64": ...}` (`predictor.instances_array`).
Errors are TF Serving's `{"error": "..."}`: 400 for a request that does not fit the serving signature
(checked before TensorFlow sees it), 404 for another model's name, 413 past MAX_BODY_BYTES, 503 +
Retry-After from the router when a shard is down.

KServe's clients are answered too. Protocol v1: `GET /` is `{"status": "alive"}`, `GET /v1/models`
lists the model, and `GET /v1/models/NAME` carries KServe's `name` / `ready` beside TF Serving's
`model_version_status`. Protocol v2 (the Open Inference Protocol, `oip.py`): `GET /v2`,
`/v2/health/live`, `/v2/health/ready`, `GET /v2/models/NAME` (metadata: the typed input and output),
`/v2/models/NAME/ready`, and `POST /v2/models/NAME/infer` with typed tensors in JSON or binary.
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import time
import zlib
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dmlc import __version__

try:  # the ml extra's fast JSON; the standard library's parser stays the reference and the fallback
    import orjson
except ImportError:  # pragma: no cover - a runtime without the ml extra's orjson
    orjson = None  # type: ignore[assignment]

AVAILABLE = {
    "model_version_status": [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
}
MAX_BODY_BYTES = 16 * 1024 * 1024  # a request body; parsed, 16 MB of JSON numbers is about 250 MB of Python


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def not_found(model: str) -> JSONResponse:
    """TF Serving's answer for a model name that is not the one served."""
    return _error(404, f"Servable not found for request: Latest({model})")


def unavailable(message: str) -> JSONResponse:
    """503 + Retry-After: a backend is down or restarting; the same request may succeed in a moment."""
    return _error(503, message, headers={"Retry-After": "1"})


class NanJSONResponse(JSONResponse):
    """Predictions may be NaN or Infinity, which TF Serving writes as those literals (its JSON conformance
    notes); starlette's JSONResponse would raise instead."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _split_target(target: str, name: str) -> tuple[str | None, JSONResponse | None]:
    """`NAME:predict` -> ("predict", None); a wrong model name -> (None, a 404)."""
    model, _, verb = target.partition(":")
    if model != name:
        return None, not_found(model)
    return verb, None


def _refuse_constant(literal: str) -> Any:
    raise ValueError(f"{literal} is not a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):  # 1e400 parses as inf
        raise ValueError(f"{text[:40]} is beyond the range of a float")
    return value


_BIG_INT = re.compile(rb"(?<![.\d])\d{20,}(?![.\deE])")  # an integer orjson would read as a float
_DIGITS_TO_0 = bytes.maketrans(b"123456789", b"000000000")


def _may_hold_big_int(raw: bytes) -> bool:
    """An integer of 20 digits or more in `raw` (a fast scan for 20 digits in a row, then the regex)."""
    return b"00000000000000000000" in raw.translate(_DIGITS_TO_0) and _BIG_INT.search(raw) is not None


def parse_json(raw: bytes) -> Any:
    """Strict JSON: NaN, Infinity and numbers beyond a float are refused (ValueError); so is deep nesting
    (RecursionError, which the caller turns into a 400 as well).

    orjson reads it when it can (several times faster; it refuses NaN, Infinity and 1e400 too); what it
    refuses, and a body with an integer of 20 digits or more (which orjson would turn into a float), is
    read again by the standard library, so every answer and every error message is the standard one."""
    if orjson is not None and not _may_hold_big_int(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)


def predictions_response(key: str, out: Any) -> Response:
    """`{key: out}` for a numpy array of predictions: orjson writes finite numbers straight from the
    array; NaN and Infinity go the standard way, as TF Serving's literals (NanJSONResponse)."""
    import numpy as np

    numbers = isinstance(out, np.ndarray) and out.dtype.kind in "biuf"
    if orjson is not None and numbers and (out.dtype.kind != "f" or np.isfinite(out).all()):
        wide = out.astype(np.float64) if out.dtype.kind == "f" else out  # the same digits as tolist()
        body = orjson.dumps({key: wide}, option=orjson.OPT_SERIALIZE_NUMPY)
        return Response(body, media_type="application/json")
    return NanJSONResponse({key: out.tolist() if hasattr(out, "tolist") else out})


async def read_body(request: Request) -> tuple[bytes, JSONResponse | None]:
    """The body, or a 413 past MAX_BODY_BYTES (checked on Content-Length first, then while reading)."""
    declared = request.headers.get("content-length", "")
    too_big = _error(413, f"request body over {MAX_BODY_BYTES} bytes")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", too_big
        chunks.append(chunk)
    return b"".join(chunks), None


async def _read_json(request: Request) -> tuple[Any, JSONResponse | None]:
    raw, bad = await read_body(request)
    if bad:
        return None, bad
    try:
        return parse_json(raw), None
    except RecursionError:
        return None, _error(400, "request body is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, a refused constant, an integer of too many digits, bad UTF-8
        return None, _error(400, f"request body is not valid JSON: {str(exc)[:200]}")


def model_status(name: str, ready: bool, **extra: Any) -> JSONResponse:
    """`GET /v1/models/NAME` in both shapes at once: TF Serving's version status and KServe v1's
    `{"name", "ready"}` (KServe's client reads `ready`; 503 while not ready, as KServe answers)."""
    state = "AVAILABLE" if ready else "LOADING"
    version = {"version": "1", "state": state, "status": {"error_code": "OK", "error_message": ""}}
    body = {"name": name, "ready": ready, "model_version_status": [version], **extra}
    return JSONResponse(body, status_code=200 if ready else 503)


def _health_routes(ready: Callable[[], Any], name: str | None = None) -> list[Route]:
    """Liveness and readiness: ours (`/healthz`, `/ready`), KServe v1's `GET /` and v2's `/v2/health/*`,
    v2's server metadata (`GET /v2`) and, given the model's `name`, `GET /v1/models` and
    `/v2/models/NAME/ready`. `ready` may be a coroutine function (the router asks its shards)."""

    async def is_ready() -> bool:
        got = ready()
        return bool(await got) if asyncio.iscoroutine(got) else bool(got)

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def alive(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive"})

    async def live(request: Request) -> JSONResponse:
        return JSONResponse({"live": True})

    async def readyz(request: Request) -> JSONResponse:
        ok = await is_ready()
        return JSONResponse({"ready": ok}, status_code=200 if ok else 503)

    async def server_metadata(request: Request) -> JSONResponse:
        return JSONResponse({"name": "dmlc", "version": __version__, "extensions": ["binary_tensor_data"]})

    async def models(request: Request) -> JSONResponse:
        return JSONResponse({"models": [name]})

    async def model_ready(request: Request) -> JSONResponse:
        if request.path_params["model"] != name:
            return not_found(request.path_params["model"])
        ok = await is_ready()
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    routes = [
        Route("/", alive, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/ready", readyz),
        Route("/v2", server_metadata, methods=["GET"]),
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", readyz, methods=["GET"]),
    ]
    if name is not None:
        routes += [
            Route("/v1/models", models, methods=["GET"]),
            Route("/v2/models/{model}/ready", model_ready, methods=["GET"]),
        ]
    return routes


async def read_v2(request: Request, name: str) -> tuple[Any, JSONResponse | None]:
    """A v2 infer request for model `name`, parsed (oip.Request), or the error answer."""
    from dmlc.runtime.oip import HEADER, BadRequest, parse_request
    from dmlc.runtime.predictor import MAX_VALUES

    if request.path_params["model"] != name:
        return None, not_found(request.path_params["model"])
    raw, bad = await read_body(request)
    if bad:
        return None, bad
    declared = request.headers.get(HEADER)
    if declared is not None and not (declared.isdigit() and 0 < int(declared) <= len(raw)):
        return None, _error(400, f"{HEADER} {declared[:40]!r} is not a length within the {len(raw)}-byte body")
    length = int(declared) if declared is not None else len(raw)
    try:
        head = parse_json(raw[:length])
    except RecursionError:
        return None, _error(400, "request body is nested too deeply")
    except ValueError as exc:
        return None, _error(400, f"request body is not valid JSON: {str(exc)[:200]}")
    try:
        return parse_request(head, raw[length:], MAX_VALUES), None
    except BadRequest as exc:
        return None, _error(400, str(exc))


def v2_response(body: bytes, headers: dict[str, str], status: int = 200) -> Response:
    return Response(body, status_code=status, headers=headers)


# ---- model server ------------------------------------------------------------------------------


def model_app(model_dir: str, name: str, predictor: Any = None, batching: dict[str, Any] | None = None) -> Starlette:
    """One model server process; the SavedModel loads at startup (or comes loaded, `predictor`), before
    any request is accepted. Concurrent requests are joined into one model call (`batching.Batcher`:
    `batching` is the serve step's block, {"max_batch", "timeout"}; max_batch 1 calls the model per request)."""
    from dmlc.runtime.batching import Batcher, batching_options

    state: dict[str, Any] = {} if predictor is None else {"predictor": predictor}
    max_batch, timeout = batching_options(batching)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        if "predictor" not in state:
            from dmlc.runtime.predictor import Predictor

            state["predictor"] = await run_in_threadpool(Predictor, model_dir)
            gc.collect()
            gc.freeze()  # TensorFlow's million objects out of every collection (a request's JSON ran 5x slower)
        if max_batch > 1:
            state["batcher"] = Batcher(state["predictor"].predict, max_batch, timeout)
        try:
            yield
        finally:
            if "batcher" in state:
                state.pop("batcher").close()

    async def status(request: Request) -> JSONResponse:
        target = request.path_params["target"]
        if target != name:
            return _error(404, f"Could not find any versions of model {target}")
        return model_status(name, "predictor" in state)

    async def metadata(request: Request) -> JSONResponse:
        if request.path_params["target"] != name:
            return not_found(request.path_params["target"])
        p = state["predictor"]
        info = {"input_name": p.input_name, "input_shape": p.input_shape, "output_name": p.output_name}
        return JSONResponse({"model_spec": {"name": name, "version": "1"}, "metadata": info})

    async def post(request: Request) -> JSONResponse:
        verb, problem = _split_target(request.path_params["target"], name)
        if problem:
            return problem
        if verb != "predict":
            return _error(400, f"unsupported verb {verb!r}: use :predict")
        with Arrival(state.get("batcher")) as arrival:
            body, bad = await _read_json(request)
            return bad or await _predict(state["predictor"], body, arrival)

    async def v2_metadata(request: Request) -> JSONResponse:
        if request.path_params["model"] != name:
            return not_found(request.path_params["model"])
        return JSONResponse(v2_model_metadata(name, state["predictor"]))

    async def v2_infer(request: Request) -> Response:
        with Arrival(state.get("batcher")) as arrival:
            parsed, bad = await read_v2(request, name)
            return bad or await _infer(state["predictor"], name, parsed, arrival)

    routes = [
        Route("/v1/models/{target}", status, methods=["GET"]),
        Route("/v1/models/{target}/metadata", metadata, methods=["GET"]),
        Route("/v1/models/{target}", post, methods=["POST"]),
        Route("/v2/models/{model}", v2_metadata, methods=["GET"]),
        Route("/v2/models/{model}/infer", v2_infer, methods=["POST"]),
        *_health_routes(lambda: "predictor" in state, name),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def v2_model_metadata(name: str, predictor: Any) -> dict[str, Any]:
    """`GET /v2/models/NAME`: the model's one input and output as typed tensors (-1: any size)."""
    from dmlc.runtime.oip import datatype_of

    def tensor(tensor_name: str, dtype: Any, shape: list[int | None]) -> dict[str, Any]:
        dims = [-1, *(-1 if d is None else int(d) for d in shape)]
        return {"name": tensor_name, "datatype": datatype_of(dtype.as_numpy_dtype), "shape": dims}

    return {
        "name": name,
        "versions": ["1"],
        "platform": "tensorflow_savedmodel",
        "inputs": [tensor(predictor.input_name, predictor.input_dtype, predictor.input_shape)],
        "outputs": [tensor(predictor.output_name, predictor.output_dtype, predictor.output_shape)],
    }


INLINE_VALUES = 200_000  # a request of fewer numbers is checked on the event loop (a thread hop costs more)


async def _checked(check: Callable[[Any], Any], value: Any, small: bool) -> Any:
    return check(value) if small else await run_in_threadpool(check, value)


class Arrival:
    """A request on its way to the batcher: counted in `batcher.arriving` from its first byte until it
    is queued or answered (the batcher does not wait for others when none is on its way)."""

    def __init__(self, batcher: Any) -> None:
        self.batcher = batcher
        self.counted = False

    def __enter__(self) -> Arrival:
        if self.batcher is not None:
            self.batcher.arrive()
            self.counted = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done()

    def done(self) -> None:
        if self.counted:
            self.counted = False
            self.batcher.arrived()


async def run_model(predictor: Any, x: Any, arrival: Arrival | None = None) -> Any:
    """The model's answer for the checked batch `x`: through the batcher (joined with concurrent
    requests) when the server batches, else one call on a worker thread."""
    if arrival is not None and arrival.batcher is not None:
        arrival.done()  # no await between this and the queueing: the batch cannot run without it
        return await arrival.batcher.predict(x)
    return await run_in_threadpool(predictor.predict, x)


async def _infer(predictor: Any, name: str, request: Any, arrival: Arrival | None = None) -> Response:
    """v2 infer: the model's one input as a numeric tensor (or BYTES of encoded images), checked like
    instances before TensorFlow sees it; the model's output as a typed tensor."""
    from dmlc.runtime.oip import Tensor, array, datatype_of, encode_response
    from dmlc.runtime.predictor import BadInstances

    if len(request.inputs) != 1 or request.inputs[0].name != predictor.input_name:
        got = ", ".join(repr(t.name) for t in request.inputs)
        return _error(400, f"the model takes one input, {predictor.input_name!r}; the request has {got}")
    if request.outputs is not None and set(request.outputs) - {predictor.output_name}:
        return _error(400, f"the model has one output, {predictor.output_name!r}; asked for {request.outputs}")
    tensor = request.inputs[0]
    try:
        if tensor.datatype == "BYTES":  # encoded images: JPEG or PNG bytes, or base64 text in JSON
            blobs = [v if isinstance(v, bytes) else _b64_text(v) for v in tensor.value]
            x = await run_in_threadpool(predictor.images_to_array, blobs)
        else:
            data = array(tensor)
            x = await _checked(predictor.tensor_to_array, data, data.size < INLINE_VALUES)
    except BadInstances as exc:
        return _error(400, str(exc))
    try:
        out = await run_model(predictor, x, arrival) if len(x) else None
    except Exception as exc:  # what TensorFlow still refuses: the request's fault
        return _error(400, f"prediction failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}")
    if out is None:
        import numpy as np

        dims = [0, *(d or 1 for d in predictor.output_shape)]
        out = np.zeros(dims, dtype=predictor.output_dtype.as_numpy_dtype)
    result = Tensor(predictor.output_name, datatype_of(out.dtype), list(out.shape), out.reshape(-1))
    body, headers = encode_response(name, request, [result])
    return v2_response(body, headers)


def _b64_text(text: str) -> bytes:
    from dmlc.runtime.predictor import BadInstances, decode_b64

    try:
        return decode_b64(text)
    except ValueError:
        raise BadInstances("a BYTES element in JSON must be a base64-encoded image") from None


async def _predict(predictor: Any, body: Any, arrival: Arrival | None = None) -> Response:
    """`{"instances": [...]}` (rows) or `{"inputs": [...] | {NAME: [...]}}` (columnar), checked against the
    serving signature before TensorFlow sees anything (predictor.BadInstances -> 400)."""
    from dmlc.runtime.predictor import BadInstances

    if not isinstance(body, dict) or len({"instances", "inputs"} & set(body)) != 1:
        return _error(400, 'body must be an object with one of "instances": [...] or "inputs": ...')
    signature = body.get("signature_name", "serving_default")
    if signature != "serving_default":
        return _error(400, f"unknown signature_name {str(signature)[:80]!r}: this server has serving_default")
    rows = body.get("instances", body.get("inputs"))
    if isinstance(rows, dict) and "inputs" in body:  # columnar form with the input named
        if set(rows) != {predictor.input_name}:
            return _error(400, f"inputs must name the model's one input, {predictor.input_name!r}")
        rows = rows[predictor.input_name]
    try:
        x = await _checked(predictor.instances_to_array, rows, _small_numbers(rows))  # may decode images
    except BadInstances as exc:
        return _error(400, str(exc))
    key = "predictions" if "instances" in body else "outputs"
    if not len(x):
        return NanJSONResponse({key: []})
    try:
        out = await run_model(predictor, x, arrival)
    except Exception as exc:  # what TensorFlow still refuses (InvalidArgumentError): the request's fault
        return _error(400, f"prediction failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}")
    return predictions_response(key, out)


def _small_numbers(rows: Any) -> bool:
    """Rows of numbers (no encoded images) of at most INLINE_VALUES numbers, judged by the first row."""
    if not isinstance(rows, list) or not rows or len(rows) > INLINE_VALUES:
        return isinstance(rows, list) and not rows
    size, first = 1, rows[0]
    while isinstance(first, list) and first:
        size *= len(first)
        first = first[0]
    return not isinstance(first, dict) and size * len(rows) < INLINE_VALUES


# ---- sharded service: scatter-gather router ----------------------------------------------------


def shard_of(instance: Any, position: int, shard_key: str | None, shards: int) -> int:
    """Stable across processes and runs (crc32, not Python's salted hash)."""
    if shard_key and isinstance(instance, dict) and shard_key in instance:
        key = json.dumps(instance[shard_key], sort_keys=True)
    else:
        key = str(position)
    return zlib.crc32(key.encode()) % shards


def router_app(shard_urls: list[str], name: str, shard_key: str | None) -> Starlette:
    """Split `instances` over the shards, ask them concurrently, answer in request order."""
    import httpx

    client: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        async with httpx.AsyncClient(timeout=120) as c:
            client["c"] = c
            yield

    async def shards_ready() -> bool:
        """Every shard's model answers ready (asked concurrently, 2 s each)."""
        if "c" not in client:
            return False

        async def one(url: str) -> bool:
            try:
                return (await client["c"].get(f"{url.rstrip('/')}/v1/models/{name}", timeout=2.0)).status_code == 200
            except httpx.HTTPError:
                return False

        return all(await asyncio.gather(*(one(url) for url in shard_urls)))

    async def status(request: Request) -> JSONResponse:
        if request.path_params["target"] != name:
            return _error(404, f"Could not find any versions of model {request.path_params['target']}")
        return model_status(name, await shards_ready())

    async def post(request: Request) -> JSONResponse:
        verb, problem = _split_target(request.path_params["target"], name)
        if problem:
            return problem
        if verb != "predict":
            return _error(400, f"unsupported verb {verb!r}: use :predict")
        body, bad = await _read_json(request)
        if bad:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            return _error(400, 'body must be {"instances": [...]}')
        return await _scatter(client["c"], shard_urls, name, shard_key, body["instances"])

    async def v2_metadata(request: Request) -> Response:
        """The first shard's answer (every shard serves the same model)."""
        if request.path_params["model"] != name:
            return not_found(request.path_params["model"])
        try:
            reply = await client["c"].get(f"{shard_urls[0].rstrip('/')}/v2/models/{name}")
        except httpx.HTTPError as exc:
            return unavailable(f"shard 0 is unavailable ({type(exc).__name__}); retry shortly")
        return Response(reply.content, status_code=reply.status_code, media_type="application/json")

    async def v2_infer(request: Request) -> Response:
        parsed, bad = await read_v2(request, name)
        return bad or await _scatter_v2(client["c"], shard_urls, name, parsed)

    routes = [
        Route("/v1/models/{target}", status, methods=["GET"]),
        Route("/v1/models/{target}", post, methods=["POST"]),
        Route("/v2/models/{model}", v2_metadata, methods=["GET"]),
        Route("/v2/models/{model}/infer", v2_infer, methods=["POST"]),
        *_health_routes(shards_ready, name),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _scatter_v2(client: Any, urls: list[str], name: str, request: Any) -> Response:
    """v2 infer over the shards: the rows of the batch (first axis of every input) split by position as
    `instances` of plain arrays are, each shard asked for its rows, the outputs joined in request order;
    errors pass on as with `_scatter`."""
    import httpx

    from dmlc.runtime import oip

    try:
        rows = oip.batch_size(request)
    except oip.BadRequest as exc:
        return _error(400, str(exc))
    groups: dict[int, list[int]] = {}
    for pos in range(rows):
        groups.setdefault(shard_of(None, pos, None, len(urls)), []).append(pos)
    if not groups:  # no rows: any shard answers the shape of nothing
        groups = {0: []}

    async def ask(shard: int, positions: list[int]) -> tuple[int, Any, Any]:
        body, headers = oip.encode_request(request, [oip.take_rows(t, positions) for t in request.inputs])
        url = f"{urls[shard].rstrip('/')}/v2/models/{name}/infer"
        try:
            reply = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return 503, {"error": f"shard {shard} is unavailable ({type(exc).__name__}); retry shortly"}, None
        if reply.status_code != 200:
            try:
                return reply.status_code, json.loads(reply.content), None
            except (ValueError, RecursionError):
                return 502, {"error": f"shard {shard} answered HTTP {reply.status_code} without a JSON body"}, None
        try:
            return 200, None, oip.read_response(reply.content, reply.headers.get(oip.HEADER))
        except oip.BadRequest as exc:
            return 502, {"error": f"shard {shard}: {exc}"}, None

    replies = await asyncio.gather(*(ask(s, ps) for s, ps in groups.items()))
    for code, error, _ in replies:
        if code != 200:
            headers = {"Retry-After": "1"} if code == 503 else None
            return NanJSONResponse(error, status_code=code, headers=headers)
    try:
        outputs = oip.join_rows([(ps, out) for ps, (_, _, out) in zip(groups.values(), replies, strict=True)], rows)
    except oip.BadRequest as exc:
        return _error(502, str(exc))
    body, headers = oip.encode_response(name, request, outputs)
    return v2_response(body, headers)


async def _scatter(client: Any, urls: list[str], name: str, shard_key: str | None, instances: list) -> JSONResponse:
    """Ask every shard its part; a shard that is down or restarting makes the answer a 503 (retry), a
    shard's own error (a bad instance: 400) is passed on as it came."""
    import httpx

    groups: dict[int, list[int]] = {}
    for pos, inst in enumerate(instances):
        groups.setdefault(shard_of(inst, pos, shard_key, len(urls)), []).append(pos)

    async def ask(shard: int, positions: list[int]) -> tuple[int, Any]:
        payload = {"instances": [instances[p] for p in positions]}
        url = f"{urls[shard].rstrip('/')}/v1/models/{name}:predict"
        try:
            reply = await client.post(url, json=payload)
        except httpx.HTTPError as exc:  # refused, reset or timed out: the shard died or is restarting
            return 503, {"error": f"shard {shard} is unavailable ({type(exc).__name__}); retry shortly"}
        try:
            return reply.status_code, json.loads(reply.content)  # NaN predictions stay NaN
        except (ValueError, RecursionError):
            return 502, {"error": f"shard {shard} answered HTTP {reply.status_code} without a JSON body"}

    replies = await asyncio.gather(*(ask(s, ps) for s, ps in groups.items()))
    predictions: list[Any] = [None] * len(instances)
    for positions, (code, body) in zip(groups.values(), replies, strict=True):
        if code != 200:
            headers = {"Retry-After": "1"} if code == 503 else None
            return NanJSONResponse(body, status_code=code, headers=headers)
        got = body.get("predictions") if isinstance(body, dict) else None
        if not isinstance(got, list) or len(got) != len(positions):
            return _error(502, "a shard answered a different number of predictions than it was asked")
        for pos, pred in zip(positions, got, strict=True):
            predictions[pos] = pred
    return NanJSONResponse({"predictions": predictions})


# ---- event-driven front ------------------------------------------------------------------------


class TokenBucket:
    """`rate` requests per second, bursts up to max(1, rate)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate or 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        if self.rate is None:
            return True
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
