"""lab.api.edge without a stack: the guard decides on headers alone, counts bodies, times out stalled ones,
and the metric labels stay bounded. A tiny ASGI app stands in for the API (it is the app under the guard,
not a stand-in for a service)."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter

from lab.api import edge
from lab.api.deps import ApiKey

router = APIRouter()


@router.post("/write", dependencies=[ApiKey], max_body_size=100)
def write() -> dict:
    return {}


@router.post("/open")
def open_route() -> dict:
    return {}


async def reading_app(scope, receive, send) -> None:
    """Reads the whole body, then answers 200 with its length."""
    size = 0
    while True:
        message = await receive()
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def call(path: str, headers: dict[str, bytes], chunks: list[bytes], stall: bool = False,
         method: str = "POST") -> tuple[int, bytes, int]:
    """Run one request through Guard; returns (status, body, body bytes the app was handed)."""
    guard = edge.Guard(reading_app, routers=[router], api_key="secret", default_limit=50, read_timeout_s=0.05)
    scope = {"type": "http", "method": method, "path": path,
             "headers": [(k.encode(), v) for k, v in headers.items()]}
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1 or stall}
             for i, c in enumerate(chunks)]
    handed = 0
    sent: list[dict] = []

    async def receive():
        nonlocal handed
        if queue:
            message = queue.pop(0)
            handed += len(message["body"])
            return message
        await asyncio.Event().wait()  # a client that never sends more

    async def send(message):
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), handed


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401), ({"x-api-key": b"wrong"}, 403), ({"x-api-key": b"\xc3\xa9\xff\x00"}, 403),
    ({"x-api-key": b"secret" * 5000}, 403), ({"x-api-key": b"secret"}, 200),
])
def test_the_key_is_judged_before_any_body_byte(headers, status):
    got, _, handed = call("/write", {**headers, "content-length": b"10"}, [b"x" * 10])
    assert got == status
    assert handed == (10 if status == 200 else 0)


def test_a_declared_length_over_the_route_limit_is_refused_before_reading():
    status, body, handed = call("/write", {"x-api-key": b"secret", "content-length": b"101"}, [b"x" * 101])
    assert (status, handed) == (413, 0) and b"Content-Length: 101 bytes" in body


@pytest.mark.parametrize("declared", [b"abc", b"-1", b"9" * 30])
def test_a_content_length_that_is_not_a_count_is_refused(declared):
    assert call("/open", {"content-length": declared}, [b""])[0] == 400


def test_routes_without_a_declared_limit_get_the_default():
    assert call("/open", {"content-length": b"51"}, [b"x" * 51])[0] == 413
    assert call("/elsewhere", {"content-length": b"51"}, [b"x" * 51])[0] == 413


def test_a_body_without_a_length_is_cut_at_the_limit():
    status, body, _ = call("/write", {"x-api-key": b"secret"}, [b"x" * 60, b"x" * 60])
    assert status == 413 and body.startswith(b'{"detail":"body: more than')


def test_a_stalled_body_is_dropped():
    status, body, _ = call("/write", {"x-api-key": b"secret"}, [b"x" * 10], stall=True)
    assert status == 408 and b"body: no data for" in body


@pytest.mark.parametrize(("method", "label"), [("GET", "GET"), ("POST", "POST"), ("FOO", "other"),
                                               ("get", "other"), ("X" * 100, "other")])
def test_method_labels_are_bounded(method, label):
    assert edge.method_label(method) == label
