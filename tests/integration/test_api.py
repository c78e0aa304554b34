"""The control plane at its edges: API keys on writes, clear 4xx naming the field, signed playback URLs."""

from __future__ import annotations

import time

import httpx
import pytest

from lab import catalog, hls, playback, storage
from lab.api import health
from lab.config import settings

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]
KEY = {"X-API-Key": settings.lab_api_key}


@pytest.fixture
def api():
    with httpx.Client(base_url=settings.api_base, timeout=30) as client:
        yield client


def test_health_reports_each_dependency(api):
    body = api.get("/health").json()
    assert body == {"status": "ok", "checks": {"catalog": "ok", "s3": "ok", "kafka": "ok"}}
    probes = api.get("/health", params={"verbose": "true"}).json()["probes"]
    assert set(probes) == {"catalog", "s3", "kafka"}
    assert all(p["state"] == "ok" and p["age_s"] < health.STALE_AFTER_S for p in probes.values()), probes


def _live_window(stream_id: str, first: int, count: int) -> None:
    """A DVR window as the live query writes it, with real segment objects behind it."""
    for index in range(first, first + count):
        storage.put_segment(settings.bucket_live, storage.live_chunk_key(stream_id, index), b"\x47" * 188, "0" * 64)
    entries = [(f"../../{settings.bucket_live}/{storage.live_chunk_key(stream_id, i)}", 2.0)
               for i in range(first, first + count)]
    storage.put_playlist(settings.bucket_manifests, storage.live_playlist_key(stream_id),
                         hls.live_playlist(entries, media_sequence=first, target_duration=2.0, ended=False),
                         cache_control=storage.LIVE_PLAYLIST)


def _segments(text: str) -> dict[str, str]:
    """chunk file name (e.g. 7.ts) -> its signed URI."""
    uris = [line for line in text.splitlines() if line and not line.startswith("#")]
    return {uri.split("?")[0].rsplit("/", 1)[-1]: uri for uri in uris}


def test_live_playlist_keeps_each_segment_uri_across_polls(api):
    """RFC 8216 6.2.1: a reload may only append, drop from the head and add ENDLIST. Two polls with one
    token, a second apart (a signing time read from the clock would differ) and the window slid between
    them, give identical URIs for the segments they share, and those URIs work."""
    stream_id = api.post("/streams/start", headers=KEY, json={}).json()["stream_id"]
    _live_window(stream_id, first=5, count=4)
    url = api.get(f"/streams/{stream_id}/live").json()["manifest_url"]
    before = _segments(httpx.get(url).text)
    time.sleep(1.1)
    _live_window(stream_id, first=6, count=4)
    after = _segments(httpx.get(url).text)
    shared = before.keys() & after.keys()
    assert shared == {"6.ts", "7.ts", "8.ts"}
    assert {k: before[k] for k in shared} == {k: after[k] for k in shared}
    assert httpx.get(after["9.ts"]).status_code == 200


@pytest.mark.parametrize(("headers", "status", "detail"), [
    ({}, 401, "X-API-Key: header missing"),
    ({"X-API-Key": "wrong"}, 403, "X-API-Key: not a valid key"),
])
def test_write_endpoints_need_the_api_key(api, headers, status, detail):
    for path in ("/streams/start", "/streams/end", "/vod/upload"):
        resp = api.post(path, headers=headers, json={})
        assert (resp.status_code, resp.json()["detail"]) == (status, detail), path


def test_bad_requests_name_the_field(api):
    resp = api.post("/streams/end", headers=KEY, json={"stream_id": "live-NOTHEX"})
    assert resp.status_code == 422 and resp.json()["detail"].startswith("stream_id:")
    resp = api.post("/vod/upload", headers=KEY, data={"title": "x"})
    assert resp.status_code == 422 and "file:" in resp.json()["detail"]
    assert api.get("/vod/not-an-id/metadata").status_code == 422
    assert api.get("/vod/vod-000000000000/metadata").status_code == 404


def test_stream_start_creates_catalog_entry_and_playlist(api):
    resp = api.post("/streams/start", headers=KEY, json={"title": "API test"})
    assert resp.status_code == 201
    stream_id = resp.json()["stream_id"]
    doc = catalog.stream_doc(catalog.LIVE, stream_id)
    assert doc["status"] == "live" and doc["title"] == "API test"
    url = api.get(f"/streams/{stream_id}/live").json()["manifest_url"]
    playlist = httpx.get(url)
    assert playlist.status_code == 200 and playlist.text.startswith("#EXTM3U")
    assert playlist.headers["cache-control"] == "max-age=2, s-maxage=1"
    content = api.get(f"/content/{stream_id}").json()
    assert content["manifest_url"] == f"{settings.cdn_base_url}/manifests/{stream_id}/live_manifest.m3u8"


def test_tampered_or_expired_playlist_urls_are_refused(api):
    stream_id = api.post("/streams/start", headers=KEY, json={}).json()["stream_id"]
    expires, sig = playback.sign(stream_id, ttl_s=60)
    ok = api.get(f"/play/{stream_id}/live_manifest.m3u8", params={"exp": expires, "sig": sig})
    assert ok.status_code == 200
    other = api.post("/streams/start", headers=KEY, json={}).json()["stream_id"]
    forged = api.get(f"/play/{other}/live_manifest.m3u8", params={"exp": expires, "sig": sig})
    assert forged.status_code == 403 and forged.json()["detail"].startswith("sig:")
    past = int(expires) - 3600
    expired = api.get(f"/play/{stream_id}/live_manifest.m3u8",
                      params={"exp": past, "sig": playback._mac(stream_id, past)})
    assert expired.status_code == 403 and expired.json()["detail"].startswith("exp:")


def test_metrics_endpoint_exports_the_reference_names(api):
    text = api.get("/metrics").text
    for name in ("producer_messages_total", "live_chunk_gaps_total", "chunk_processing_latency_seconds",
                 "chunk_checksum_failures_total", "api_requests_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
