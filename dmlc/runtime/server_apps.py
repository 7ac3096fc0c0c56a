"""The ASGI apps of model serving (starlette): a TF-Serving-compatible model server, the
scatter-gather router of a sharded service, and the event-driven front (scale from zero, 429s).

REST surface (TF Serving's): `GET /v1/models/NAME` (version status), `GET /v1/models/NAME/metadata`,
`POST /v1/models/NAME:predict` with `{"instances": [...]}` -> `{"predictions": [...]}` (or the columnar
`{"inputs": ...}` -> `{"outputs": ...}`), plus `/healthz` (alive) and `/ready` (model loaded).
"""

from __future__ import annotations

import asyncio
import json
import os
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


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _split_target(target: str, name: str) -> tuple[str | None, str | None]:
    """`NAME:predict` -> ("predict", None); a wrong model name -> (None, error)."""
    model, _, verb = target.partition(":")
    if model != name:
        return None, f"Servable not found for request: Latest({model})"
    return verb, None


async def _read_json(request: Request) -> tuple[Any, JSONResponse | None]:
    try:
        return await request.json(), None
    except ValueError:
        return None, _error(400, "request body is not valid JSON")


def _health_routes(ready: Callable[[], bool]) -> list[Route]:
    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> JSONResponse:
        return JSONResponse({"ready": ready()}, status_code=200 if ready() else 503)

    return [Route("/healthz", healthz), Route("/ready", readyz)]


# ---- model server ------------------------------------------------------------------------------


def model_app(model_dir: str, name: str) -> Starlette:
    """One model server process; the SavedModel loads at startup, before any request is accepted."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        from dmlc.runtime.predictor import Predictor

        state["predictor"] = await run_in_threadpool(Predictor, model_dir)
        yield

    async def status(request: Request) -> JSONResponse:
        target = request.path_params["target"]
        if target != name:
            return _error(404, f"Could not find any versions of model {target}")
        return JSONResponse(AVAILABLE)

    async def metadata(request: Request) -> JSONResponse:
        p = state["predictor"]
        info = {"input_name": p.input_name, "input_shape": p.input_shape, "output_name": p.output_name}
        return JSONResponse({"model_spec": {"name": name, "version": "1"}, "metadata": info})

    async def post(request: Request) -> JSONResponse:
        verb, problem = _split_target(request.path_params["target"], name)
        if problem:
            return _error(404, problem)
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
    if not isinstance(body, dict) or not ({"instances", "inputs"} & set(body)):
        return _error(400, 'body must be {"instances": [...]} or {"inputs": ...}')
    rows = body.get("instances", body.get("inputs"))
    if isinstance(rows, dict):  # columnar form with the input named
        rows = rows.get(predictor.input_name)
    try:
        x = predictor.instances_to_array(rows if isinstance(rows, list) else [])
        out = (await run_in_threadpool(predictor.predict, x)).tolist() if len(x) else []
    except (ValueError, TypeError, KeyError) as exc:
        return _error(400, f"bad instances: {exc}")
    except Exception as exc:  # TF raises InvalidArgumentError for shape mismatches
        return _error(400, f"prediction failed: {str(exc).splitlines()[0]}")
    return JSONResponse({"predictions": out} if "instances" in body else {"outputs": out})


def app_from_env() -> Starlette:
    """Factory for `uvicorn --factory` worker processes (replicas): the model comes from the env."""
    return model_app(os.environ["DMLC_SERVE_MODEL_DIR"], os.environ.get("DMLC_SERVE_NAME", "model"))


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
        if problem or verb != "predict":
            return _error(404 if problem else 400, problem or "use :predict")
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
    groups: dict[int, list[int]] = {}
    for pos, inst in enumerate(instances):
        groups.setdefault(shard_of(inst, pos, shard_key, len(urls)), []).append(pos)

    async def ask(shard: int, positions: list[int]) -> Any:
        payload = {"instances": [instances[p] for p in positions]}
        return await client.post(f"{urls[shard].rstrip('/')}/v1/models/{name}:predict", json=payload)

    replies = await asyncio.gather(*(ask(s, ps) for s, ps in groups.items()))
    predictions: list[Any] = [None] * len(instances)
    for positions, reply in zip(groups.values(), replies, strict=True):
        if reply.status_code != 200:
            return JSONResponse(reply.json(), status_code=reply.status_code)
        for pos, pred in zip(positions, reply.json()["predictions"], strict=True):
            predictions[pos] = pred
    return JSONResponse({"predictions": predictions})


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
