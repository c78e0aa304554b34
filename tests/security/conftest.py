"""Fixtures of the security suite: raw HTTP/1.1 over a socket, for requests httpx would refuse to send."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import httpx
import pytest

from lab.config import settings

HANG_GUARD_S = 60.0  # only so a hang fails the test instead of blocking the suite; nothing is timed


@dataclass
class RawResponse:
    status: int
    body: bytes

    @property
    def detail(self) -> str:
        import json

        try:
            return json.loads(self.body).get("detail", "")
        except ValueError:
            return self.body.decode("latin-1")


def raw_request(head: bytes, body: bytes = b"", *, close_after: bool = False) -> RawResponse:
    """Send `head` (request line + headers, without the blank line) and `body` as given, read one response.
    `close_after=False` keeps the socket open after sending, as a client that promised more would."""
    host, port = settings.api_base.split("//")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=HANG_GUARD_S) as sock:
        sock.sendall(head + b"\r\n\r\n" + body)
        if close_after:
            sock.shutdown(socket.SHUT_WR)
        data = b""
        while True:
            chunk = sock.recv(65536)
            data += chunk
            header_end = data.find(b"\r\n\r\n")
            if not chunk or (header_end >= 0 and _complete(data, header_end)):
                break
    head_part, _, payload = data.partition(b"\r\n\r\n")
    status = int(head_part.split(b" ", 2)[1])
    return RawResponse(status, payload)


def _complete(data: bytes, header_end: int) -> bool:
    for line in data[:header_end].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(data) - header_end - 4 >= int(value)
    return False


@pytest.fixture
def api():
    with httpx.Client(base_url=settings.api_base, timeout=HANG_GUARD_S) as client:
        yield client


KEY = {"X-API-Key": settings.lab_api_key}
KEY_LINE = b"X-API-Key: " + settings.lab_api_key.encode()
