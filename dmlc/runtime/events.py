"""The event-driven serving front: the model server starts on the first request and stops after
`idle_timeout` without requests (scale to zero); past `max_concurrency` in-flight requests, or past
`rate_limit` requests per second, the front answers HTTP 429 at once instead of queueing. A backend
that cannot start, or that exited, makes the front answer 503 + Retry-After; a backend that exited is
stopped and started again by the next request. KServe's routes (`oip.py`, `server_apps.py`) pass
through the front alike: v2 infer and metadata go to the backend, liveness and readiness are the
front's own (it is ready at once: it scales the model from zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from dmlc.runtime.rest import health_routes, model_status, read_body, unavailable
from dmlc.units import parse_duration

PASSED_HEADERS = {"content-type", "inference-header-content-length"}  # v2's binary tensor data needs both


class Backend:
    """A model server the front starts and stops; `start` returns its base URL once it is ready, `alive`
    says whether the started one still runs."""

    def __init__(
        self,
        start: Callable[[], Awaitable[str]],
        stop: Callable[[], Awaitable[None]],
        alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.start, self.stop, self.alive = start, stop, alive


class Front:
    def __init__(self, backend: Backend, max_concurrency: int, rate_limit: float | None, idle_timeout: float) -> None:
        self.backend = backend
        self.max_concurrency = max_concurrency
        self.bucket = TokenBucket(rate_limit)
        self.idle_timeout = idle_timeout
        self.in_flight = 0
        self.url: str | None = None
        self.last_used = time.monotonic()
        self.starts = 0
        self._lock = asyncio.Lock()

    def admit(self) -> str | None:
        """None when the request may go on, else why it is refused."""
        if self.in_flight >= self.max_concurrency:
            return f"too many requests in flight (max_concurrency = {self.max_concurrency})"
        if not self.bucket.take():
            return f"rate limit exceeded ({self.bucket.rate} requests/s)"
        return None

    async def ensure_backend(self) -> str:
        async with self._lock:
            if self.url is not None and not self.backend.alive():  # it exited since: start a new one
                self.url = None
                await self.backend.stop()
            if self.url is None:
                self.url = await self.backend.start()
                self.starts += 1
            return self.url

    async def drop_dead(self, url: str) -> None:
        """After a failed request to `url`: when that backend exited, stop it so the next request starts
        a new one (a backend that still runs is only slow or restarting a worker: it stays)."""
        async with self._lock:
            if self.url == url and not self.backend.alive():
                self.url = None
                await self.backend.stop()

    async def reap_idle(self) -> None:
        """Stop the backend after idle_timeout with nothing in flight."""
        while True:
            await asyncio.sleep(min(1.0, max(0.05, self.idle_timeout / 4)))
            idle = time.monotonic() - self.last_used
            if self.url is not None and self.in_flight == 0 and idle >= self.idle_timeout:
                async with self._lock:
                    self.url = None
                    await self.backend.stop()


def events_app(backend: Backend, name: str, events: dict[str, Any]) -> Starlette:
    import httpx

    front = Front(
        backend,
        int(events.get("max_concurrency") or 1),
        events.get("rate_limit"),
        parse_duration(events.get("idle_timeout") or 60.0),  # the spec carries unit strings ("5m")
    )
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        reaper = asyncio.create_task(front.reap_idle())
        async with httpx.AsyncClient(timeout=300) as client:
            state["client"] = client
            yield
        reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reaper
        if front.url is not None:
            await backend.stop()

    async def status(request: Request) -> JSONResponse:
        if request.path_params["target"] != name:
            message = f"Could not find any versions of model {request.path_params['target']}"
            return JSONResponse({"error": message}, status_code=404)
        return model_status(name, True, dmlc={"backend_running": front.url is not None, "starts": front.starts})

    async def forward(request: Request) -> Response:
        refused = front.admit()
        if refused:
            return JSONResponse({"error": refused}, status_code=429, headers={"Retry-After": "1"})
        front.in_flight += 1
        try:
            body, too_big = await read_body(request)
            if too_big:
                return too_big
            try:
                url = await front.ensure_backend()
            except Exception as exc:  # it exited or was not ready in time (TransientError)
                return unavailable(f"the model server could not start: {str(exc)[:300]}")
            sent = {k: v for k, v in request.headers.items() if k in PASSED_HEADERS}
            try:
                reply = await state["client"].request(
                    request.method, f"{url}{request.url.path}", content=body, headers=sent
                )
            except httpx.HTTPError as exc:  # refused or reset: the backend died mid-request
                await front.drop_dead(url)
                return unavailable(f"the model server is unavailable ({type(exc).__name__}); retry shortly")
            headers = {k: v for k, v in reply.headers.items() if k in PASSED_HEADERS | {"retry-after"}}
            headers.setdefault("content-type", "application/json")
            return Response(reply.content, status_code=reply.status_code, headers=headers)
        finally:
            front.in_flight -= 1
            front.last_used = time.monotonic()

    routes = [
        Route("/v1/models/{target}", status, methods=["GET"]),
        Route("/v1/models/{target}", forward, methods=["POST"]),
        Route("/v2/models/{model}", forward, methods=["GET"]),
        Route("/v2/models/{model}/infer", forward, methods=["POST"]),
        *health_routes(lambda: True, name),  # the front is ready at once: it scales the model from zero
    ]
    return Starlette(routes=routes, lifespan=lifespan)


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
