"""lab/urls.py: a URL made for the browser, fetched from inside the stack (the container path of issue 14).

A local HTTP server stands for the internal address; the public base is an `.invalid` host that cannot
resolve, as the laptop's `localhost` cannot be reached from the `jupyter` container.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import m3u8
import pytest

from lab import urls

PUBLIC = "http://api.invalid:8000"


@pytest.fixture
def internal(tmp_path: Path, monkeypatch) -> Iterator[tuple[str, list[str], Path]]:
    """An HTTP server on 127.0.0.1 serving tmp_path, recording the Host header of every request; the routes
    map PUBLIC to it."""
    hosts: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hosts.append(self.headers["Host"])
            super().do_GET()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(urls, "routes", lambda: [(PUBLIC, base)])
    yield base, hosts, tmp_path
    server.shutdown()
    server.server_close()


def test_internal_maps_only_the_public_base():
    routes = [(PUBLIC, "http://api:8000")]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(urls, "routes", lambda: routes)
        assert urls.internal(f"{PUBLIC}/play/x.m3u8?sig=1") == ("http://api:8000/play/x.m3u8?sig=1",
                                                               {"Host": "api.invalid:8000"})
        assert urls.internal("http://api.invalid:80001/x") == ("http://api.invalid:80001/x", {})  # not a prefix
        assert urls.internal("http://other:8000/x") == ("http://other:8000/x", {})


def test_fetch_goes_to_the_internal_address_with_the_public_host(internal):
    base, hosts, root = internal
    (root / "seg.ts").write_bytes(b"\x47" * 188)
    resp = urls.fetch(f"{PUBLIC}/seg.ts")
    assert resp.status_code == 200 and resp.content == b"\x47" * 188
    assert hosts == ["api.invalid:8000"]  # what SeaweedFS checks a presigned URL's SigV4 signature against


def test_relay_points_every_public_uri_of_a_playlist_at_itself(internal):
    base, _, root = internal
    (root / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1000,RESOLUTION=64x64\n"
        f"{PUBLIC}/media.m3u8?exp=1&sig=ab\n")
    (root / "media.m3u8").write_text(
        "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n"
        f"{PUBLIC}/0.ts?X-Amz-Signature=cd\n#EXTINF:2.0,\nrelative/1.ts\n#EXT-X-ENDLIST\n")
    with urls.relay() as relay:
        master = m3u8.loads(httpx.get(relay.url(f"{PUBLIC}/master.m3u8")).text)
        variant = master.playlists[0].uri
        assert variant == f"{relay.base}/0/media.m3u8?exp=1&sig=ab"
        media = m3u8.loads(httpx.get(variant).text)
        assert [s.uri for s in media.segments] == [f"{relay.base}/0/0.ts?X-Amz-Signature=cd",
                                                   f"{relay.base}/0/relative/1.ts"]
        assert relay.url("/a/local/file.m3u8") == "/a/local/file.m3u8"


def test_ffmpeg_decodes_a_public_playlist_only_through_the_relay(internal):
    from lab.media.ffmpeg import FfmpegError, decode_check, ffmpeg_exe

    _, hosts, root = internal
    subprocess.run([ffmpeg_exe(), "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=64x64:rate=10", "-t", "2",
                    "-c:v", "libx264", "-g", "10", "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
                    "-hls_base_url", f"{PUBLIC}/", str(root / "index.m3u8")], check=True, timeout=60)
    with pytest.raises(FfmpegError):
        decode_check(f"{PUBLIC}/index.m3u8", timeout=60)  # what the kernel did: the public host is unreachable
    urls.decode_check(f"{PUBLIC}/index.m3u8", timeout=60)
    assert len(hosts) >= 3 and set(hosts) == {"api.invalid:8000"}  # the playlist and every segment
