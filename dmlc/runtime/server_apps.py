"""The model server's ASGI app (starlette), TF-Serving-compatible; the router of a sharded service is
`router.py`, the event-driven front `events.py`, and what they share (JSON, errors, health) `rest.py`.

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

import gc
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dmlc.runtime.rest import (
    NanJSONResponse,
    error_response,
    health_routes,
    model_status,
    not_found,
    parse_json,
    predictions_response,
    read_body,
    read_json,
    split_target,
)

try:  # the ml extra's fast JSON; the standard library's parser stays the reference and the fallback
    import orjson
except ImportError:  # pragma: no cover - a runtime without the ml extra's orjson
    orjson = None  # type: ignore[assignment]


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
        return None, error_response(400, f"{HEADER} {declared[:40]!r} is not a length within the {len(raw)}-byte body")
    length = int(declared) if declared is not None else len(raw)
    try:
        head = parse_json(raw[:length])
    except RecursionError:
        return None, error_response(400, "request body is nested too deeply")
    except ValueError as exc:
        return None, error_response(400, f"request body is not valid JSON: {str(exc)[:200]}")
    try:
        return parse_request(head, raw[length:], MAX_VALUES), None
    except BadRequest as exc:
        return None, error_response(400, str(exc))


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
            return error_response(404, f"Could not find any versions of model {target}")
        return model_status(name, "predictor" in state)

    async def metadata(request: Request) -> JSONResponse:
        if request.path_params["target"] != name:
            return not_found(request.path_params["target"])
        p = state["predictor"]
        info = {"input_name": p.input_name, "input_shape": p.input_shape, "output_name": p.output_name}
        return JSONResponse({"model_spec": {"name": name, "version": "1"}, "metadata": info})

    async def post(request: Request) -> JSONResponse:
        verb, problem = split_target(request.path_params["target"], name)
        if problem:
            return problem
        if verb != "predict":
            return error_response(400, f"unsupported verb {verb!r}: use :predict")
        with Arrival(state.get("batcher")) as arrival:
            body, bad = await read_json(request)
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
        *health_routes(lambda: "predictor" in state, name),
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
        return error_response(400, f"the model takes one input, {predictor.input_name!r}; the request has {got}")
    if request.outputs is not None and set(request.outputs) - {predictor.output_name}:
        return error_response(400, f"the model has one output, {predictor.output_name!r}; asked for {request.outputs}")
    tensor = request.inputs[0]
    try:
        if tensor.datatype == "BYTES":  # encoded images: JPEG or PNG bytes, or base64 text in JSON
            blobs = [v if isinstance(v, bytes) else _b64_text(v) for v in tensor.value]
            x = await run_in_threadpool(predictor.images_to_array, blobs)
        else:
            data = array(tensor)
            x = await _checked(predictor.tensor_to_array, data, data.size < INLINE_VALUES)
    except BadInstances as exc:
        return error_response(400, str(exc))
    try:
        out = await run_model(predictor, x, arrival) if len(x) else None
    except Exception as exc:  # what TensorFlow still refuses: the request's fault
        return error_response(400, f"prediction failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}")
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
        return error_response(400, 'body must be an object with one of "instances": [...] or "inputs": ...')
    signature = body.get("signature_name", "serving_default")
    if signature != "serving_default":
        return error_response(400, f"unknown signature_name {str(signature)[:80]!r}: this server has serving_default")
    rows = body.get("instances", body.get("inputs"))
    if isinstance(rows, dict) and "inputs" in body:  # columnar form with the input named
        if set(rows) != {predictor.input_name}:
            return error_response(400, f"inputs must name the model's one input, {predictor.input_name!r}")
        rows = rows[predictor.input_name]
    try:
        x = await _checked(predictor.instances_to_array, rows, _small_numbers(rows))  # may decode images
    except BadInstances as exc:
        return error_response(400, str(exc))
    key = "predictions" if "instances" in body else "outputs"
    if not len(x):
        return NanJSONResponse({key: []})
    try:
        out = await run_model(predictor, x, arrival)
    except Exception as exc:  # what TensorFlow still refuses (InvalidArgumentError): the request's fault
        return error_response(400, f"prediction failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}")
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
