"""A real browser plays what the lab serves: the API's hls.js page (`/player?src=<signed playlist URL>`) in
headless Chromium (Debian's package, driven by Playwright), for a VOD stream and a live stream.

"Plays" means what a viewer would notice: `window.playerState.currentTime` keeps growing and hls.js reports
no fatal error. Three streams are played:
- a self-contained VOD written straight into the buckets in the pipeline's layout (made here with ffmpeg),
  which checks the read path alone: signed `/play/...` playlists, presigned segments, CORS, hls.js;
- a clip uploaded through `POST /vod/upload` and transcoded by the Spark VOD query;
- a real-time live stream from the live encoder, played while it is live.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest

from lab import catalog, events, hls, media, playback, storage
from lab.config import settings
from lab.waiting import wait_for
from lab.widgets.player import player_url

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                 "--disable-background-networking"]
KEY = {"X-API-Key": settings.lab_api_key}
PLAY_SECONDS = 4.0  # how far playback must advance
LIVE_CHUNKS = 12




# --- the browser -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail("chromium not found: `lab setup --for-tests` installs Debian's chromium "
                    "(or: apt-get install chromium)", pytrace=False)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def play(browser: Any, src: str, *, seconds: float = PLAY_SECONDS, timeout: float = 60.0) -> dict[str, Any]:
    """Open the player on `src`; return its state once currentTime advanced `seconds` past where it first
    moved (so the clock is really running, not a single jump); fail on a fatal hls.js error."""
    page = browser.new_page()
    try:
        page.goto(player_url(src), wait_until="load")
        state: dict[str, Any] = {}
        first: float | None = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = page.evaluate("() => ({...window.playerState})")
            assert state["fatal"] is None, f"hls.js fatal error {state['fatal']}; errors: {state['errors']}"
            now = state["currentTime"]
            if first is None and now > 0:
                first = now
            if first is not None and now >= first + seconds:
                return state
            time.sleep(0.25)
        raise AssertionError(f"playback did not advance {seconds} s within {timeout:.0f} s: {state}")
    finally:
        page.close()


# --- a VOD written straight into the buckets (no Spark needed) -----------------------------------

@pytest.fixture(scope="module")
def handmade_vod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An 8 s 360p H.264/AAC clip cut into 2 s segments and laid out exactly as the VOD query writes
    a stream: segments in `vod-variants/{id}/360p/`, media and master playlists in `manifests/{id}/`."""
    work = tmp_path_factory.mktemp("handmade-vod")
    clip = media.make_test_clip(work / "clip.mp4", 8, 640, 360, fps=25)
    segments = media.cut_segments(clip, work / "segments", 2.0, media.probe(clip))
    stream_id = events.new_vod_id()
    rung = "360p"
    for seg in segments:
        storage.put_segment(settings.bucket_vod_variants, storage.variant_segment_key(stream_id, rung, seg.index),
                            seg.path.read_bytes(), seg.sha256)
    entries = [(f"../../{settings.bucket_vod_variants}/{storage.variant_segment_key(stream_id, rung, s.index)}",
                s.duration_s) for s in segments]
    storage.put_playlist(settings.bucket_manifests, storage.vod_media_playlist_key(stream_id, rung),
                         hls.media_playlist(entries), cache_control=storage.IMMUTABLE)
    peak, average = hls.bandwidth_from_segments([s.size_bytes for s in segments], [s.duration_s for s in segments])
    master = hls.master_playlist([hls.Variant(uri=f"{rung}.m3u8", bandwidth=peak, average_bandwidth=average,
                                              width=640, height=360, codecs=hls.codecs_for("high", "3.0"),
                                              frame_rate=25.0)])
    storage.put_playlist(settings.bucket_manifests, storage.vod_master_key(stream_id), master,
                         cache_control=storage.IMMUTABLE)
    try:
        yield stream_id
    finally:
        storage.delete_prefix(settings.bucket_vod_variants, f"{stream_id}/")
        storage.delete_prefix(settings.bucket_manifests, f"{stream_id}/")


def test_handmade_vod_plays_through_signed_urls(browser, handmade_vod):
    url, _ = playback.signed_playlist_url(handmade_vod, storage.VOD_MASTER)
    state = play(browser, url)
    assert [level.split()[0] for level in state["levels"]] == ["360p"]  # the one rendition written


# --- the pipelines ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    with httpx.Client(base_url=settings.api_base, headers=KEY, timeout=120) as client:
        yield client


def test_uploaded_vod_plays_every_rendition_listed(browser, api):
    from lab.producer.clips import SAMPLE_CLIPS, ensure_sample_clips

    ensure_sample_clips()
    clip = next(c for c in SAMPLE_CLIPS if c.height == 480)  # 480p + 360p
    with open(clip.path, "rb") as f:
        resp = api.post("/vod/upload", files={"file": (clip.name, f, "video/mp4")}, data={"title": "browser test"})
    assert resp.status_code == 202, resp.text
    stream_id = resp.json()["stream_id"]
    doc = wait_for(lambda: (d := catalog.stream_doc(catalog.VOD, stream_id)) and d["status"] in ("ready", "failed")
                   and d, f"{stream_id} to be ready", timeout=300)
    assert doc["status"] == "ready", doc.get("failure_reason")
    state = play(browser, api.get(f"/vod/{stream_id}/manifest").json()["manifest_url"])
    assert sorted(level.split()[0] for level in state["levels"]) == ["360p", "480p"]
    assert state["live"] is False


def test_live_stream_plays_while_live(browser, api):
    from lab.producer.encoder import LiveEncoder

    encoder = LiveEncoder(api=api, resolution="640x360", fps=25, segment_seconds=2.0,
                          work_dir=settings.lab_state_dir / "browser-test-encoder")
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            encoder.run_stream(stop, chunks=LIVE_CHUNKS, title="browser test (live)")
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        stream_id = wait_for(lambda: encoder.stream_id, "the live stream to start", timeout=30)

        def segments() -> int:
            text = storage.get_text(settings.bucket_manifests, storage.live_playlist_key(stream_id)) or ""
            return len(m3u8.loads(text).segments) if text else 0

        wait_for(lambda: segments() >= 3, "3 segments in the live playlist", timeout=60)
        state = play(browser, api.get(f"/streams/{stream_id}/live").json()["manifest_url"])
        assert state["live"] is True
        assert catalog.stream_doc(catalog.LIVE, stream_id)["status"] == "live"  # played while live
        # The player maps what it shows to the capture clock (EXT-X-PROGRAM-DATE-TIME) and shows the latency;
        # its size is `lab bench glass`'s business, not a test's.
        assert state["glass"] is not None and state["glass"] > 0, f"no glass-to-glass figure: {state}"
        assert state["latency"] is not None, f"no hls.js latency: {state}"
    finally:
        stop.set()
        encoder.close()
        thread.join(30)
    assert not errors, errors
