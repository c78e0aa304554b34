"""Internal and public addresses: one rule for every URL the lab makes or fetches.

Code that runs in a kernel, the API or a Spark job reaches services at their internal addresses
(`settings.s3_url`, `api_base`, `kafka_servers`, `service_host(name)`). Only what a browser loads uses the
public ones (`settings.s3_public_url`, `api_public_base`): the signed playlist URLs the API hands out and the
presigned segment URLs in them are made for players. In embedded mode both name this machine; in the
container stack the public host is the laptop's `localhost`, which inside the `jupyter` container is the
container itself.

A URL made for the browser that kernel code must fetch (a lesson checks a refusal, ffmpeg decodes a
playlist) goes through `fetch` or `relay`: the request is sent to the internal address with the public
`Host` header. The API's signatures do not cover the host; a presigned S3 URL's SigV4 signature does, and
SeaweedFS checks it against the request's Host header (weed/s3api/auth_signature_v4.go,
`extractHostHeaderCandidates`: `-s3.externalUrl` when set, else `X-Forwarded-Host`, else `r.Host`), so the
signature made for the public host holds on the internal route.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urljoin, urlsplit

import httpx

from lab.config import settings

PLAYLIST_TYPES = ("application/vnd.apple.mpegurl", "application/x-mpegurl", "audio/mpegurl")


def routes() -> list[tuple[str, str]]:
    """(public base, internal base) of every service a browser loads from: the API and S3."""
    return [(settings.api_public_base.rstrip("/"), settings.api_base.rstrip("/")),
            (settings.s3_public_url.rstrip("/"), settings.s3_url.rstrip("/"))]


def _route_of(url: str) -> tuple[int, str] | None:
    """(route index, the rest of the URL after its public base), or None for a URL that is not public."""
    for index, (public, _) in enumerate(routes()):
        rest = url[len(public):]
        if url.startswith(public) and (not rest or rest[0] in "/?"):
            return index, rest
    return None


def is_public(url: str) -> bool:
    return _route_of(url) is not None


def internal(url: str) -> tuple[str, dict[str, str]]:
    """The URL to send from inside the stack, and the headers to send with it (the public Host)."""
    found = _route_of(url)
    if found is None:
        return url, {}
    index, rest = found
    return routes()[index][1] + rest, {"Host": urlsplit(url).netloc}


def fetch(url: str, *, method: str = "GET", timeout: float = 30.0, headers: dict[str, str] | None = None,
          **kwargs) -> httpx.Response:
    """Fetch a URL made for the browser from inside the stack (see the module docstring); other URLs as
    they are."""
    target, extra = internal(url)
    return httpx.request(method, target, headers={**extra, **(headers or {})}, timeout=timeout, **kwargs)


# --- a relay for programs that follow playlists themselves (ffmpeg) ----------------------------------

class Relay:
    """An HTTP server on 127.0.0.1 that serves every public URL from its internal address. A playlist
    passes through with each public URI in it pointed at the relay, so a player that follows the playlist
    (ffmpeg: master -> media playlists -> presigned segments, live reloads) never leaves the relay. Paths keep
    their last component (`.../3.ts?X-Amz-...`), as ffmpeg's HLS demuxer checks segment extensions."""

    def __init__(self) -> None:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                relay._serve(self)

            def log_message(self, *_: object) -> None:  # no lines on the notebook's stderr
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lab-url-relay", daemon=True)
        self._thread.start()

    def url(self, public_url: str) -> str:
        """The relay's address of a public URL; any other URL (a file, an internal URL) as it is."""
        found = _route_of(public_url)
        return public_url if found is None else f"{self.base}/{found[0]}{found[1]}"

    def _public_of(self, path: str) -> str | None:
        index, _, rest = path.lstrip("/").partition("/")
        if not index.isdigit() or int(index) >= len(routes()):
            return None
        return routes()[int(index)][0] + "/" + rest

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        public = self._public_of(handler.path)
        if public is None:
            handler.send_error(404, "not a relayed URL")
            return
        resp = fetch(public)
        body = resp.content
        kind = resp.headers.get("content-type", "")
        if resp.status_code == 200 and (kind.split(";")[0].strip().lower() in PLAYLIST_TYPES
                                        or urlsplit(public).path.endswith(".m3u8")):
            from lab import hls

            body = hls.rewrite_uris(resp.text, lambda uri: self.url(urljoin(public, uri))).encode()
        handler.send_response(resp.status_code)
        handler.send_header("Content-Type", kind or "application/octet-stream")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextmanager
def relay() -> Iterator[Relay]:
    """A relay for the duration of the block (`with urls.relay() as r: ffmpeg(r.url(public_url))`)."""
    server = Relay()
    try:
        yield server
    finally:
        server.close()


def decode_check(url: str, *, timeout: float = 600.0) -> None:
    """`lab.media` decode_check of a playlist URL made for the browser, run from inside the stack: ffmpeg
    reads it, its variant playlists and its presigned segments through a relay."""
    from lab.media.ffmpeg import decode_check as ffmpeg_decode_check

    with relay() as server:
        ffmpeg_decode_check(server.url(url), timeout=timeout)
