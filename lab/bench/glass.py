"""`lab bench glass --streams N --seconds S`: glass to glass as a viewer sees it, in a real player.

N real-time live encoders (ffmpeg, as the producer runs them) publish through the real path: upload to S3,
event to Kafka, spark-live writes the playlist, the API signs it. hls.js in headless Chromium (the API's own
player page, the one the lessons show) plays the first stream and, beside it, the floor: the same encoder's
segments served straight from a directory as a live playlist with the same window and PROGRAM-DATE-TIMEs (no
Kafka, no Spark, no S3). Twice a second each page reports:
- glass to glass: the wall clock minus hls.js's `playingDate` (the capture time of the frame on screen, from
  the segment's EXT-X-PROGRAM-DATE-TIME, which the encoder takes from its capture clock);
- hls.js's `latency`: its distance from the playlist's live edge (what the player holds back on purpose).
It prints p50/p95 of each, the pipeline's ratio to the floor and the load average. Figures, never pass/fail.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lab import hls
from lab.apiclient import client
from lab.bench.live import percentiles
from lab.config import settings
from lab.producer.encoder import Finished, LiveEncoder
from lab.widgets.player import player_url

log = logging.getLogger(__name__)

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--autoplay-policy=no-user-gesture-required",
                 "--disable-background-networking"]
SAMPLE_EVERY_S = 0.5
WARM_UP_S = 6.0  # after playback starts: hls.js settles on its live position
FLOOR_PLAYLIST = "floor.m3u8"
SAMPLE = """() => {
  const h = window.hls, v = document.getElementById("video"), d = h && h.playingDate;
  return {glass: d && !v.paused && v.readyState >= 2 ? (Date.now() - d.getTime()) / 1000 : null,
          latency: h && Number.isFinite(h.latency) ? h.latency : null,
          fatal: window.playerState.fatal, time: v.currentTime};
}"""


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# --- the floor: the encoder's own playlist, straight from a directory ----------------------------------------

class Floor:
    """The segments of one encoder as a live playlist in a directory, written as ffmpeg closes them (before
    any upload), with the pipeline's window size and the same PROGRAM-DATE-TIMEs; served over HTTP."""

    def __init__(self, directory: Path, window: int):
        self.directory, self.window = directory, window
        self.entries: list[tuple[int, Finished]] = []
        self._lock = threading.Lock()
        self.directory.mkdir(parents=True, exist_ok=True)

    def add(self, segment: Finished, data: bytes) -> None:
        with self._lock:
            n = self.entries[-1][0] + 1 if self.entries else 0
            (self.directory / f"{n}.ts").write_bytes(data)
            self.entries.append((n, segment))
            for old, _ in self.entries[:-self.window - 3]:  # slid out (a player may still fetch the last few)
                (self.directory / f"{old}.ts").unlink(missing_ok=True)
            self.entries = self.entries[-self.window - 3:]
            window = self.entries[-self.window:]
            text = hls.live_playlist(
                [(f"{i}.ts", s.duration_ms / 1000, _when(s.captured_at_ms)) for i, s in window],
                media_sequence=window[0][0], target_duration=settings.live_segment_seconds, ended=False)
            tmp = self.directory / f".{FLOOR_PLAYLIST}"
            tmp.write_text(text)
            tmp.replace(self.directory / FLOOR_PLAYLIST)  # a reader never sees half a playlist

    @contextmanager
    def serve(self) -> Iterator[str]:
        """The playlist's URL on 127.0.0.1 (CORS open: the player page comes from the API's origin)."""
        handler = functools.partial(_FloorHandler, directory=str(self.directory))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, name="glass-floor", daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/{FLOOR_PLAYLIST}"
        finally:
            server.shutdown()
            server.server_close()


def _when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


class _FloorHandler(SimpleHTTPRequestHandler):
    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args: Any) -> None:
        pass


# --- the players ------------------------------------------------------------------------------------------

@dataclass
class Viewer:
    """One Chromium page playing one playlist, and what it reported."""

    name: str
    src: str
    low_latency: bool = False
    page: Any = None
    started: float | None = None
    glass: list[float] = field(default_factory=list)
    latency: list[float] = field(default_factory=list)
    fatal: str | None = None

    def open(self, browser: Any) -> None:
        self.page = browser.new_page()
        url = player_url(self.src) + ("&ll=1" if self.low_latency else "")
        self.page.goto(url, wait_until="load")

    def sample(self) -> None:
        state = self.page.evaluate(SAMPLE)
        self.fatal = self.fatal or state["fatal"]
        if state["glass"] is None:
            return
        now = time.monotonic()
        self.started = self.started or now
        if now - self.started >= WARM_UP_S:
            self.glass.append(state["glass"])
            if state["latency"] is not None:
                self.latency.append(state["latency"])


def _row(viewer: Viewer, floor_p50: float | None) -> str:
    g, lat = percentiles(viewer.glass, (50, 95)), percentiles(viewer.latency, (50, 95))
    if not g:
        return f"  {viewer.name:<28} no samples (fatal: {viewer.fatal})"
    ratio = f"{g[50] / floor_p50:5.2f}x" if floor_p50 else "    -"
    behind = f"{lat[50]:6.2f} {lat[95]:6.2f}" if lat else "     -      -"
    return f"  {viewer.name:<28} {len(viewer.glass):7d} {g[50]:7.2f} {g[95]:7.2f}   {behind}   {ratio}"


# --- the run ----------------------------------------------------------------------------------------------------

def run(streams: int = 1, seconds: float = 60.0, resolution: str = "640x360") -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise SystemExit("lab bench glass: Playwright is missing (a dev dependency: pip install -e '.[dev]')") from None
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        raise SystemExit("lab bench glass: no chromium (apt-get install chromium, or `lab setup --for-tests`)")
    api = client()
    stop = threading.Event()
    work = Path(tempfile.mkdtemp(prefix="lab-glass-"))
    floor = Floor(work / "floor", settings.dvr_window_size)
    segments = max(8, round((seconds + 40) / settings.live_segment_seconds))
    encoders = [LiveEncoder(api=api, resolution=resolution, work_dir=work / f"enc-{i}", chunks_per_stream=segments,
                            on_segment=floor.add if i == 0 else None) for i in range(streams)]
    threads = [threading.Thread(target=e.run_stream, args=(stop,), kwargs={"title": f"bench glass {i}"},
                                name=f"glass-{i}", daemon=True) for i, e in enumerate(encoders)]
    load_before = os.getloadavg()[0]
    _out(f"lab bench glass: {streams} real-time stream(s) of {resolution}, {settings.live_segment_seconds:g} s "
         f"segments, window {settings.dvr_window_size}, engine {settings.live_engine}; playing stream 0 for "
         f"{seconds:g} s after a {WARM_UP_S:g} s warm-up")
    for t in threads:
        t.start()
    try:
        stream_id = _wait(lambda: encoders[0].stream_id, "stream 0 to start", 60)
        _wait(lambda: len(floor.entries) >= 3, "3 segments from the encoder", 60)
        answer = api.get(f"/streams/{stream_id}/live")
        answer.raise_for_status()
        viewers = [Viewer("pipeline (standard HLS)", answer.json()["manifest_url"])]
        with floor.serve() as floor_url, sync_playwright() as pw:
            viewers.append(Viewer("floor (encoder's own playlist)", floor_url))
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            try:
                for v in viewers:
                    v.open(browser)
                deadline, give_up = None, time.monotonic() + 120  # every player must start within 2 min
                while time.monotonic() < (deadline or give_up):
                    for v in viewers:
                        v.sample()
                    if deadline is None and all(v.started for v in viewers):
                        deadline = time.monotonic() + WARM_UP_S + seconds
                    time.sleep(SAMPLE_EVERY_S)
            finally:
                browser.close()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()[0]
    floor_g = percentiles(viewers[-1].glass, (50,))
    _out(f"  {'player':<28} {'samples':>7} {'glass to glass p50 p95 (s)':>15}   "
         f"{'behind edge p50 p95':>13}   {'÷ floor':>6}")
    for v in viewers:
        _out(_row(v, floor_g.get(50)))
    _out(f"  load average (1 min): {load_before:.1f} before, {load_after:.1f} after; "
         f"{os.cpu_count()} cores; {streams} encoder(s) beside whatever else runs on this machine")


def _wait(predicate: Any, what: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise SystemExit(f"lab bench glass: timed out waiting for {what}")
