"""No input gives a 5xx: headers, query strings, paths, multipart field and file names, and JSON bodies with
non-ASCII, NUL, CR/LF or very long values each get a 4xx naming the field.

A few inputs are not HTTP at all (a raw NUL or CR inside a header, raw non-ASCII bytes in the request line,
a Content-Length that is not a number): uvicorn's HTTP parser (h11) refuses them with a 400 before the app
sees a request, so nothing can name a field; those cases check for the 400 only.
"""

from __future__ import annotations

import pytest

from tests.security.conftest import KEY, KEY_LINE, raw_request

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

PLAY = "/play/live-0123456789/live_manifest.m3u8"
HOSTILE = {  # percent-encoded, so they reach the app as decoded text
    "non-ASCII": "%C3%A9%E2%82%AC%F0%9F%8E%A5",
    "invalid UTF-8": "%FF%FE%FD%FC%FB%FA%F9%F8",
    "NUL": "ab%00cd",
    "CR/LF": "ab%0D%0ASet-Cookie:%20x=1",
    "very long": "a" * 8000,
}


def _named(status: int, detail: str, field: str) -> None:
    assert 400 <= status < 500, (status, detail)
    assert detail.startswith(f"{field}:"), detail


@pytest.mark.parametrize("kind", HOSTILE)
def test_query_values_are_refused_naming_the_field(api, kind):
    value = HOSTILE[kind]
    resp = api.get(f"{PLAY}?exp=9999999999&sig={value}")
    _named(resp.status_code, resp.json()["detail"], "sig")
    resp = api.get(f"{PLAY}?exp={value}&sig={'a' * 32}")
    _named(resp.status_code, resp.json()["detail"], "exp")


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("template", ["/vod/{}/metadata", "/vod/{}/manifest", "/streams/{}/live",
                                      "/streams/{}/metadata", "/content/{}", "/play/{}/live_manifest.m3u8"])
def test_path_values_are_refused_naming_the_field(api, kind, template):
    resp = api.get(template.format("live-" + HOSTILE[kind]), params={"exp": 1, "sig": "a" * 32})
    _named(resp.status_code, resp.json()["detail"], "stream_id")


@pytest.mark.parametrize("kind", HOSTILE)
def test_playlist_name_is_refused_naming_the_field(api, kind):
    resp = api.get(f"/play/live-0123456789/{HOSTILE[kind]}.m3u8", params={"exp": 1, "sig": "a" * 32})
    _named(resp.status_code, resp.json()["detail"], "name")


@pytest.mark.parametrize(("value", "name"), [
    (b"\xc3\xa9\xe2\x82\xac", "non-ASCII (UTF-8)"), (b"\xff\xfe\x80", "non-ASCII (not UTF-8)"),
    (b"k" * 12000, "very long"), (b"lab-dev-key\xc3\xa9", "the key plus a non-ASCII byte"),
])
def test_api_key_header_with_hostile_bytes_is_refused_naming_it(value, name):
    resp = raw_request(b"POST /streams/start HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\nX-API-Key: " + value)
    assert (resp.status, resp.detail) == (403, "X-API-Key: not a valid key"), name


@pytest.mark.parametrize("head", [
    b"POST /streams/start HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\nX-API-Key: ab\x00cd",
    b"POST /streams/start HTTP/1.1\r\nHost: lab\r\nContent-Length: 0\r\nX-API-Key: ab\rcd",
    b"POST /streams/start HTTP/1.1\r\nHost: lab\r\nContent-Length: 12a",
    b"GET " + PLAY.encode() + b"?exp=1&sig=\xc3\xa9\xc3\xa9 HTTP/1.1\r\nHost: lab",
    b"GET /vod/vod-\xc3\xa9/metadata HTTP/1.1\r\nHost: lab",
], ids=["NUL in a header", "CR in a header", "Content-Length not a number", "raw non-ASCII query",
        "raw non-ASCII path"])
def test_requests_that_are_not_http_get_a_400_from_the_server(head):
    assert raw_request(head).status == 400


def _multipart(parts: list[tuple[bytes, bytes]], boundary: bytes = b"BOUNDARY") -> bytes:
    body = b"".join(b"--" + boundary + b"\r\nContent-Disposition: form-data; " + disposition + b"\r\n\r\n"
                    + content + b"\r\n" for disposition, content in parts)
    return body + b"--" + boundary + b"--\r\n"


def _upload(parts: list[tuple[bytes, bytes]], content_type: bytes = b"multipart/form-data; boundary=BOUNDARY"):
    body = _multipart(parts)
    head = (b"POST /vod/upload HTTP/1.1\r\nHost: lab\r\n" + KEY_LINE + b"\r\nContent-Type: " + content_type
            + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\nConnection: close")
    return raw_request(head, body)


TITLE = (b'name="title"', b"security suite")
NOT_VIDEO = b"not a video at all"


@pytest.mark.parametrize(("disposition", "field"), [
    (b'name="file"; filename="clip.mp\x004"', "file"),               # NUL in the extension
    (b'name="file"; filename="' + b"a" * 300 + b'.mp4"', "file"),    # longer than a file name may be
    (b'name="file"; filename="a\rb.mp4"', "body"),                   # CR breaks the part's header
    (b'name="file"; filename="' + b"a" * 9000 + b'.mp4"', "body"),   # past the part header limit
    (b'name="fil\xc3\xa9"; filename="clip.mp4"', "file"),            # non-ASCII field name: no `file` field
    (b'name="fi\x00le"; filename="clip.mp4"', "file"),               # NUL in the field name
    (b'name="file"; filename="vid\xc3\xa9o.mp4"', "file"),           # a non-ASCII name is fine; the bytes are not
    (b'name="file"; filename="vid\xe9o.mp4"', "file"),               # latin-1 name: the same
])
def test_multipart_names_are_refused_naming_the_field(disposition, field):
    resp = _upload([(disposition, NOT_VIDEO), TITLE])
    _named(resp.status, resp.detail, field)


@pytest.mark.parametrize("title", [b"a\x00b", b"line\r\nbreak", b"x" * 201])
def test_upload_title_with_control_characters_or_too_long_is_refused(title):
    resp = _upload([(b'name="file"; filename="clip.mp4"', NOT_VIDEO), (b'name="title"', title)])
    _named(resp.status, resp.detail, "title")


@pytest.mark.parametrize("content_type", [b"multipart/form-data", b"multipart/form-data; boundary=\xc3\xa9"])
def test_broken_multipart_framing_names_the_body(content_type):
    resp = _upload([(b'name="file"; filename="clip.mp4"', NOT_VIDEO), TITLE], content_type)
    _named(resp.status, resp.detail, "body")


@pytest.mark.parametrize(("body", "field"), [
    ({"title": "a\x00b"}, "title"), ({"title": "a\r\nb"}, "title"), ({"title": "x" * 201}, "title"),
])
def test_json_titles_are_refused_naming_the_field(api, body, field):
    resp = api.post("/streams/start", headers=KEY, json=body)
    _named(resp.status_code, resp.json()["detail"], field)


@pytest.mark.parametrize("stream_id", ["live-\x00\x00\x00\x00\x00", "live-é" * 3, "live-" + "a" * 5000, 42, None])
def test_json_stream_ids_are_refused_naming_the_field(api, stream_id):
    resp = api.post("/streams/end", headers=KEY, json={"stream_id": stream_id})
    _named(resp.status_code, resp.json()["detail"], "stream_id")


@pytest.mark.parametrize("body", [b'{"stream_id":', b"\xff\xfe", b"[" * 3000 + b"]" * 3000])
def test_malformed_json_names_the_body(api, body):
    resp = api.post("/streams/end", headers={**KEY, "Content-Type": "application/json"}, content=body)
    _named(resp.status_code, resp.json()["detail"], "body")  # deep nesting: RecursionError, a 400 too
