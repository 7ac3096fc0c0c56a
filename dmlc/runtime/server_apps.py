"""The ASGI apps of model serving (starlette): a TF-Serving-compatible model server, the
scatter-gather router of a sharded service, and the event-driven front (scale from zero, 429s).

REST surface (TF Serving's): `GET /v1/models/NAME` (version status), `GET /v1/models/NAME/metadata`,
`POST /v1/models/NAME:predict` with `{"instances": [...]}` -> `{"predictions": [...]}` (or the columnar
`{"inputs": ...}` -> `{"outputs": ...}`), plus `/healthz` (alive) and `/ready` (model loaded).
Errors are TF Serving's `{"error": "..."}`: 400 for a request that does not fit the serving signature
(checked before TensorFlow sees it), 404 for another model's name, 413 past MAX_BODY_BYTES, 503 +
Retry-After from the router when a shard is down.
"""

from __future__ import annotations

import asyncio
import json
import time
import zlib
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

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


def parse_json(raw: bytes) -> Any:
    """Strict JSON: NaN, Infinity and numbers beyond a float are refused (ValueError); so is deep nesting
    (RecursionError, which the caller turns into a 400 as well)."""
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)


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


def _health_routes(ready: Callable[[], bool]) -> list[Route]:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    return [Route("/healthz", healthz), Route("/ready", readyz)]


# ---- model server ------------------------------------------------------------------------------


def model_app(model_dir: str, name: str, predictor: Any = None) -> Starlette:
    """One model server process; the SavedModel loads at startup (or comes loaded, `predictor`), before
    any request is accepted."""
    state: dict[str, Any] = {} if predictor is None else {"predictor": predictor}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        if "predictor" not in state:
            from dmlc.runtime.predictor import Predictor

            state["predictor"] = await run_in_threadpool(Predictor, model_dir)
        yield

    async def status(request: Request) -> JSONResponse:
        target = request.path_params["target"]
        if target != name:
            return _error(404, f"Could not find any versions of model {target}")
        return JSONResponse(AVAILABLE)

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
        body, bad = await _read_json(request)
        return bad or await _predict(state["predictor"], body)

    routes = [
        Route("/v1/models/{target}", status, methods=["GET"]),
        Route("/v1/models/{target}/metadata", metadata, methods=["GET"]),
        Route("/v1/models/{target}", post, methods=["POST"]),
        *_health_routes(lambda: "predictor" in state),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


async def _predict(predictor: Any, body: Any) -> JSONResponse:
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
        x = predictor.instances_to_array(rows)
    except BadInstances as exc:
        return _error(400, str(exc))
    try:
        out = (await run_in_threadpool(predictor.predict, x)).tolist() if len(x) else []
    except Exception as exc:  # what TensorFlow still refuses (InvalidArgumentError): the request's fault
        return _error(400, f"prediction failed: {(str(exc).splitlines() or [type(exc).__name__])[0][:300]}")
    return NanJSONResponse({"predictions": out} if "instances" in body else {"outputs": out})


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

    async def status(request: Request) -> JSONResponse:
        if request.path_params["target"] != name:
            return _error(404, f"Could not find any versions of model {request.path_params['target']}")
        return JSONResponse(AVAILABLE)

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

    routes = [
        Route("/v1/models/{target}", status, methods=["GET"]),
        Route("/v1/models/{target}", post, methods=["POST"]),
        *_health_routes(lambda: "c" in client),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


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
