"""Auth and limits before the body: the key and Content-Length are judged on the headers alone, a body
without a length is cut at the route's limit, a stalled body is dropped, and metric labels stay bounded.

"Before the body" is shown causally: these requests promise a body and never send it. An answer that
comes anyway can only have been decided on the headers (the old API waited for the 64 MiB).
"""

from __future__ import annotations

import re

import pytest

from lab.config import settings
from tests.security.conftest import KEY, KEY_LINE, raw_request

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]
PROMISED = 64 * 1024 * 1024
MULTIPART = b"Content-Type: multipart/form-data; boundary=BOUNDARY"
JSON = b"Content-Type: application/json"


@pytest.mark.parametrize(("path", "content_type"), [(b"/vod/upload", MULTIPART), (b"/streams/end", JSON),
                                                    (b"/streams/start", JSON)])
def test_no_key_is_refused_before_a_promised_body_arrives(path, content_type):
    resp = raw_request(b"POST " + path + b" HTTP/1.1\r\nHost: lab\r\n" + content_type
                       + b"\r\nContent-Length: " + str(PROMISED).encode())
    assert (resp.status, resp.detail) == (401, "X-API-Key: header missing")


def test_a_wrong_key_is_refused_before_a_promised_body_arrives():
    resp = raw_request(b"POST /vod/upload HTTP/1.1\r\nHost: lab\r\nX-API-Key: wrong\r\n" + MULTIPART
                       + b"\r\nContent-Length: " + str(PROMISED).encode())
    assert (resp.status, resp.detail) == (403, "X-API-Key: not a valid key")


@pytest.mark.parametrize(("path", "content_type", "limit"), [
    (b"/streams/end", JSON, settings.api_max_json_bytes),
    (b"/streams/start", JSON, settings.api_max_json_bytes),
    (b"/vod/upload", MULTIPART, settings.vod_max_upload_bytes),
])
def test_a_content_length_over_the_route_limit_is_refused_before_the_body(path, content_type, limit):
    declared = limit + 2 * 1024 * 1024
    resp = raw_request(b"POST " + path + b" HTTP/1.1\r\nHost: lab\r\n" + KEY_LINE + b"\r\n" + content_type
                       + b"\r\nContent-Length: " + str(declared).encode())
    assert resp.status == 413 and resp.detail.startswith(f"Content-Length: {declared} bytes is more than"), resp


def test_reads_have_a_small_limit_too(api):
    resp = api.request("GET", "/health", content=b"x" * (settings.api_max_json_bytes + 1))
    assert resp.status_code == 413 and resp.json()["detail"].startswith("Content-Length:")


def test_a_body_without_a_length_is_counted_and_cut_at_the_limit(api):
    def chunks():
        yield b'{"stream_id": "'
        for _ in range(settings.api_max_json_bytes // 1024 + 2):
            yield b"a" * 1024
        yield b'"}'

    resp = api.post("/streams/end", headers={**KEY, "Content-Type": "application/json"}, content=chunks())
    assert resp.status_code == 413
    assert resp.json()["detail"] == f"body: more than this route takes ({settings.api_max_json_bytes} bytes)"


@pytest.mark.parametrize(("path", "content_type", "sent"), [
    (b"/streams/end", JSON, b'{"stream_id": "live-'),
    (b"/vod/upload", MULTIPART,
     b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\nab'),
])
def test_a_stalled_body_is_dropped_after_the_read_timeout(path, content_type, sent):
    """The client promises more than it sends (within the route's limit) and stops: a 408 after
    API_BODY_READ_TIMEOUT_S, where the old API waited for ever."""
    resp = raw_request(b"POST " + path + b" HTTP/1.1\r\nHost: lab\r\n" + KEY_LINE + b"\r\n" + content_type
                       + b"\r\nContent-Length: 4000", sent)
    assert resp.status == 408 and resp.detail.startswith("body: no data for"), resp


def test_invented_methods_share_one_metric_label(api):
    for method in ("FOO", "PROPFIND", "X" * 40, "BREW"):
        assert api.request(method, "/health").status_code == 405
    methods = set(re.findall(r'api_requests_total\{method="([^"]*)"', api.get("/metrics").text))
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "other"}, methods
