"""The scatter-gather router of a sharded service (starlette): each request's instances are split over
the shard servers by `shard_of` (a stable crc32 of the shard key, or of the position), asked concurrently,
and answered in request order; v1 (`:predict`) and v2 (`/infer`) alike. A shard that is down makes the
router answer 503 + Retry-After. Takes the shards' URLs; gives the app.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dmlc.runtime.rest import (
    NanJSONResponse,
    error_response,
    health_routes,
    model_status,
    not_found,
    read_json,
    split_target,
    unavailable,
)
from dmlc.runtime.server_apps import read_v2, v2_response


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
            return error_response(404, f"Could not find any versions of model {request.path_params['target']}")
        return model_status(name, await shards_ready())

    async def post(request: Request) -> JSONResponse:
        verb, problem = split_target(request.path_params["target"], name)
        if problem:
            return problem
        if verb != "predict":
            return error_response(400, f"unsupported verb {verb!r}: use :predict")
        body, bad = await read_json(request)
        if bad:
            return bad
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            return error_response(400, 'body must be {"instances": [...]}')
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
        *health_routes(shards_ready, name),
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
        return error_response(400, str(exc))
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
        return error_response(502, str(exc))
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
            return error_response(502, "a shard answered a different number of predictions than it was asked")
        for pos, pred in zip(positions, got, strict=True):
            predictions[pos] = pred
    return NanJSONResponse({"predictions": predictions})
