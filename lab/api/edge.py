"""The API's edge, as pure ASGI middleware: what is checked before any route runs or any body byte is read.

`Guard`, in order, before the app sees the request:
1. the API key of a write route (routes that depend on `deps.require_api_key`), compared as bytes;
2. the declared body size: `Content-Length` against the route's `max_body_size` (413 at once);
3. while the app reads the body: bytes counted as they arrive (a body without a length is cut at the limit)
   and a read timeout per receive, so a client that promises more than it sends is dropped (408).
uvicorn has `timeout_keep_alive` but no body read timeout, hence 3. FastAPI's own `max_body_size` (declared
on the routes, read here) checks only once the app first reads, and its 413 names no limit: the route
declares the limit, this module enforces it first and says which.

`Observe` records every request in the API's metrics with bounded labels: methods outside a known set count
as `other`, unmatched paths as `unmatched`, so a client cannot grow the label sets.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lab import metrics
from lab.api.deps import require_api_key
from lab.config import settings

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
API_KEY_HEADER = b"x-api-key"


class BodyRefused(HTTPException):
    """Raised from `receive` while the app reads a body: FastAPI re-raises HTTPExceptions met while reading
    the body, so its handler answers with this status and detail."""


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def route_table(routers: list[APIRouter], default_limit: int) -> dict[tuple[str, str], tuple[APIRoute, bool, int]]:
    """(method, path) -> (route, needs the API key, body limit), from what the routes declare: the key by
    depending on `require_api_key`, the limit by `max_body_size`. Routes with path parameters take no body
    here; they, and unknown paths, get the default limit."""
    table = {}
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute) or "{" in route.path:
                continue
            keyed = any(d.call is require_api_key for d in route.dependant.dependencies)
            limit = route.max_body_size if route.max_body_size is not None else default_limit
            for method in route.methods:
                table[(method, route.path)] = (route, keyed, limit)
    return table


class Guard:
    def __init__(self, app: ASGIApp, *, routers: list[APIRouter], api_key: str, default_limit: int,
                 read_timeout_s: float):
        self.app = app
        self.table = route_table(routers, default_limit)
        self.api_key = api_key.encode()
        self.default_limit = default_limit
        self.read_timeout_s = read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route, keyed, limit = self.table.get((scope["method"], scope["path"]), (None, False, self.default_limit))
        refusal = self._refusal(scope, keyed, limit)
        if refusal is not None:
            if route is not None:
                scope["route"] = route  # so the metrics name the route that refused
            await _answer(send, *refusal)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, self._limited(receive, limit), tracking_send)
        except BodyRefused as exc:  # raised outside FastAPI's body reading (another reader): answer here
            if started:
                raise
            await _answer(send, exc.status_code, exc.detail)

    def _refusal(self, scope: Scope, keyed: bool, limit: int) -> tuple[int, str] | None:
        if keyed:
            key = _header(scope, API_KEY_HEADER)
            if key is None:
                return 401, "X-API-Key: header missing"
            if not hmac.compare_digest(key, self.api_key):  # bytes: any byte value compares, none raises
                return 403, "X-API-Key: not a valid key"
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit() or len(declared) > 19:
                return 400, "Content-Length: not a byte count"
            if int(declared) > limit:
                return 413, f"Content-Length: {int(declared)} bytes is more than this route takes ({limit} bytes)"
        return None

    def _limited(self, receive: Receive, limit: int) -> Receive:
        """`receive` with the body counted against `limit` and a timeout on each read until the body ends.
        After the body, receive is passed through untouched: it then waits for a disconnect, which may take
        as long as the response does."""
        received = 0
        body_done = False
        timeout = self.read_timeout_s

        async def receive_body() -> Message:
            nonlocal received, body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise BodyRefused(408, f"body: no data for {timeout:g} s (API_BODY_READ_TIMEOUT_S); "
                                       f"the request body stalled") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyRefused(413, f"body: more than this route takes ({limit} bytes)")
                body_done = not message.get("more_body", False)
            return message

        return receive_body


class Observe:
    """Request count and latency per (method, route, status), with bounded label values."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before it answers, the server answers 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            method = method_label(scope["method"])
            path = getattr(scope.get("route"), "path", "unmatched")
            metrics.api_requests.labels(method, path, str(status)).inc()
            metrics.api_request_latency.labels(method, path).observe(time.perf_counter() - started)


def install(app, routers: list[APIRouter]) -> None:
    """Observe outermost (it sees the guard's refusals too), then Guard."""
    app.add_middleware(Guard, routers=routers, api_key=settings.lab_api_key,
                       default_limit=settings.api_max_json_bytes, read_timeout_s=settings.api_body_read_timeout_s)
    app.add_middleware(Observe)
