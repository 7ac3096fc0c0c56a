"""A stand-in API server: a real HTTP server on 127.0.0.1 (uvicorn, in a thread) checked against a spec.

Takes an `Api` (the published definition) and a subclass's handlers by operationId; gives a server
whose every request is checked first (path, method, query parameters, body) and whose every answer is
checked against the operation's response schema. A request that departs from the definition is
answered 400 and kept in `violations`, so a test asserts `violations == []` after the client's run.
Also: a bearer token the server demands (401 otherwise, as the real servers answer), and `calls`,
every request as received, for tests that look at what was sent (and at what was never sent: tokens).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.submit_standins.openapi import Api


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


class Standin:
    """Subclasses set `api`, implement `op_<operationId>(path_params, query, body) -> (status, doc)`, and may
    add `extra_routes()` for routes a server has outside its swagger (each citing where it is defined)."""

    api: Api
    unauthorized_code = 16  # google.rpc.Code UNAUTHENTICATED

    def __init__(self, token: str | None = None) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.violations: list[str] = []
        self.url = ""
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- the app -------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        routes = [*self.extra_routes(), Route("/{path:path}", self._dispatch, methods=["GET", "POST", "DELETE", "PUT"])]
        return Starlette(routes=routes)

    def extra_routes(self) -> list[Route]:
        return []

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        return request.headers.get("authorization", "") == f"Bearer {self.token}"

    def error(self, status: int, code: int, message: str) -> Response:
        return JSONResponse({"code": code, "message": message, "details": []}, status_code=status)

    async def record(self, request: Request) -> tuple[dict[str, list[str]], bytes]:
        body = await request.body()
        query = parse_qs(request.url.query, keep_blank_values=True)
        try:
            shown: Any = json.loads(body) if body else None
        except ValueError:
            shown = body.decode("utf-8", "replace")
        self.calls.append(Call(request.method, request.url.path, query, dict(request.headers), shown))
        return query, body

    async def _dispatch(self, request: Request) -> Response:
        query, body = await self.record(request)
        if not self.authorized(request):
            return self.error(401, self.unauthorized_code, "token not valid")
        op, path_params, problems = self.api.request(request.method, request.url.path, query, body)
        if problems:
            self.violations += problems
            return self.error(400, 3, "; ".join(problems)[:500])
        assert op is not None
        handler = getattr(self, "op_" + op.spec["operationId"], None)
        if handler is None:
            self.violations.append(f"{op.spec['operationId']}: the stand-in does not implement it")
            return self.error(501, 12, "not implemented by the stand-in")
        status, doc = handler(path_params, query, json.loads(body) if body else None)
        if isinstance(doc, str):
            return PlainTextResponse(doc, status_code=status)
        self.violations += [f"stand-in answer: {p}" for p in self.api.answer(op, status, doc)]
        return JSONResponse(doc, status_code=status)

    # --- serving -------------------------------------------------------------------------------------

    def __enter__(self) -> Standin:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="error", lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the stand-in server did not start")
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def free_port() -> int:
    """A port nothing listens on (bound, then released): connecting to it is refused."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port
