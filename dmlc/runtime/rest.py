"""REST plumbing shared by the serving apps (model server, router, events front): TF Serving's error
replies, strict JSON (NaN, Infinity, floats past range and deep nesting refused) read fast with orjson,
bounded body reads (413 past MAX_BODY_BYTES), and the status and health routes in TF Serving's and
KServe's shapes. Takes starlette requests; gives responses.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dmlc import __version__

try:  # the ml extra's fast JSON; the standard library's parser stays the reference and the fallback
    import orjson
except ImportError:  # pragma: no cover - a runtime without the ml extra's orjson
    orjson = None  # type: ignore[assignment]

MAX_BODY_BYTES = 16 * 1024 * 1024  # a request body; parsed, 16 MB of JSON numbers is about 250 MB of Python


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def not_found(model: str) -> JSONResponse:
    """TF Serving's answer for a model name that is not the one served."""
    return error_response(404, f"Servable not found for request: Latest({model})")


def unavailable(message: str) -> JSONResponse:
    """503 + Retry-After: a backend is down or restarting; the same request may succeed in a moment."""
    return error_response(503, message, headers={"Retry-After": "1"})


class NanJSONResponse(JSONResponse):
    """Predictions may be NaN or Infinity, which TF Serving writes as those literals (its JSON conformance
    notes); starlette's JSONResponse would raise instead."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def split_target(target: str, name: str) -> tuple[str | None, JSONResponse | None]:
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
    too_big = error_response(413, f"request body over {MAX_BODY_BYTES} bytes")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return b"", too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", too_big
        chunks.append(chunk)
    return b"".join(chunks), None


async def read_json(request: Request) -> tuple[Any, JSONResponse | None]:
    raw, bad = await read_body(request)
    if bad:
        return None, bad
    try:
        return parse_json(raw), None
    except RecursionError:
        return None, error_response(400, "request body is nested too deeply")
    except ValueError as exc:  # JSONDecodeError, a refused constant, an integer of too many digits, bad UTF-8
        return None, error_response(400, f"request body is not valid JSON: {str(exc)[:200]}")


def model_status(name: str, ready: bool, **extra: Any) -> JSONResponse:
    """`GET /v1/models/NAME` in both shapes at once: TF Serving's version status and KServe v1's
    `{"name", "ready"}` (KServe's client reads `ready`; 503 while not ready, as KServe answers)."""
    state = "AVAILABLE" if ready else "LOADING"
    version = {"version": "1", "state": state, "status": {"error_code": "OK", "error_message": ""}}
    body = {"name": name, "ready": ready, "model_version_status": [version], **extra}
    return JSONResponse(body, status_code=200 if ready else 503)


def health_routes(ready: Callable[[], Any], name: str | None = None) -> list[Route]:
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
