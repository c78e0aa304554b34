"""One publisher, one ffmpeg: whatever comes in (RTMP from OBS, SRT, the browser camera's WebM pieces) leaves as
the lab's own live segments (MPEG-TS, H.264/AAC, each starting on a keyframe, cut by the segment muxer, listed
as CSV on stdout), and each segment goes out through a `LiveStream` (lab/producer/stream.py): SHA-256,
upload, chunk event to Kafka, with the same backlog and end marker as the lab's encoder.

- RTMP and SRT: the video is copied (no transcoding: what OBS encodes is what viewers get, and a 2-core laptop
  keeps its cores), so segments are cut at the publisher's keyframes. That is why the keyframe interval must be
  the segment duration (`lab live ingest` says so). A publisher that sends no keyframe gets the error
  NO_KEYFRAME and its stream ends; the half-made segment is never handed over.
- The browser: MediaRecorder's WebM (VP8/VP9/H.264, keyframes when it likes) is re-encoded with libx264, one
  GOP per segment, as the lab's encoder does.

A clean end: when the publisher leaves (EOF, disconnect, the browser's last piece) ffmpeg closes its last
segment, which is whole media (shorter, never truncated), the stream's backlog is handed over, and then the
end marker. A publisher that stalls (no media for STALL_TARGETS target durations) is ended the same way.
The stream key: ffmpeg's RTMP listener only logs a wrong stream name ("Unexpected stream X, expecting Y") and
carries on, so this module refuses it by killing ffmpeg before any segment is handed over; SRT's listener
refuses a wrong passphrase in its handshake itself.
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Producer

from lab import catalog, events
from lab.config import settings
from lab.live_ingest.urls import RTMP_APP
from lab.media.ffmpeg import ffmpeg_exe
from lab.media.h264 import first_frame_is_idr
from lab.producer.stream import LiveStream

log = logging.getLogger(__name__)
NO_KEYFRAME = ("no keyframe from the encoder for {s:.0f} s: set its keyframe interval to "
               "{k:g} s (OBS: Settings > Output > Keyframe Interval)")
KEYFRAME_TARGETS = 5   # media flowing but no segment closed for this many target durations: NO_KEYFRAME
STALL_TARGETS = 5      # no media at all for this many target durations: the publisher stalled; end cleanly
SRT_LATENCY_US = 200_000  # SRT's default is 120 ms; 3-4x the round trip is recommended, 200 ms suits a LAN


@dataclass
class Source:
    """How ffmpeg takes the publisher's media in."""

    path: str                  # rtmp, srt, browser
    input_args: list[str]
    transcode: bool            # re-encode the video (the browser) or copy it (RTMP, SRT)
    checks_key: str | None = None  # RTMP: the stream name ffmpeg expects (it only logs a wrong one)


def rtmp_source(key: str, host: str | None = None) -> Source:
    url = f"rtmp://{host or settings.lab_host}:{settings.rtmp_port}/{RTMP_APP}/{key}"
    return Source("rtmp", ["-listen", "1", "-i", url], transcode=False, checks_key=key)


def srt_source(key: str, host: str | None = None) -> Source:
    url = (f"srt://{host or settings.lab_host}:{settings.srt_port}?mode=listener&latency={SRT_LATENCY_US}"
           f"&passphrase={key}&enforced_encryption=1")
    return Source("srt", ["-i", url], transcode=False)


def pipe_source() -> Source:
    """The browser's pieces arrive on stdin, one WebM (or MP4) recording in order."""
    return Source("browser", ["-fflags", "+genpts", "-i", "pipe:0"], transcode=True)


def video_args(transcode: bool) -> list[str]:
    if not transcode:
        return ["-c:v", "copy"]
    width, height = settings.live_ingest_resolution.split("x")
    fps, seg = settings.live_fps, settings.live_segment_seconds
    gop = max(1, round(seg * fps))
    fit = (f"scale={width}:{height}:force_original_aspect_ratio=decrease,"
           f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2,fps={fps},format=yuv420p")
    return ["-vf", fit, "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency",
            "-b:v", "1200k", "-maxrate", "1300k", "-bufsize", "1800k",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop",
            "-force_key_frames", f"expr:gte(t,n_forced*{seg:g})"]


def ffmpeg_argv(source: Source, out_dir: Path) -> list[str]:
    seg = settings.live_segment_seconds
    return [ffmpeg_exe(), "-hide_banner", "-loglevel", "level+info", "-nostats", "-progress", "pipe:2",
            "-y", *(["-nostdin"] if source.path != "browser" else []), *source.input_args,
            "-map", "0:v:0", "-map", "0:a:0?", *video_args(source.transcode),
            "-c:a", "aac", "-b:a", "96k", "-ar", "48000",
            "-f", "segment", "-segment_time", f"{seg:g}", "-segment_format", "mpegts",
            "-reset_timestamps", "0", "-segment_list", "pipe:1", "-segment_list_type", "csv",
            "-segment_list_flags", "+live", str(out_dir / "%d.ts")]


@dataclass
class Outcome:
    connected: bool = False
    chunks: int = 0
    error: str | None = None       # why the stream ended badly (NO_KEYFRAME, ffmpeg's own error)
    refused: str | None = None     # why a publisher was turned away (its stream still waits)
    log_tail: list[str] = field(default_factory=list)


class Session:
    """Runs ffmpeg for one stream until its publisher leaves; then ends the stream (if one connected)."""

    def __init__(self, stream_id: str, source: Source, *, producer: Producer, api_factory: Callable,
                 origin_ms: Callable[[], int | None] = lambda: None):
        self.stream_id, self.source, self.producer = stream_id, source, producer
        self.api_factory = api_factory
        self.origin_ms = origin_ms  # epoch ms of media time 0 on the capture clock, if the publisher said
        self.out_dir = settings.lab_state_dir / "live-ingest" / stream_id
        self.connected = threading.Event()
        self.outcome = Outcome()
        self.proc: subprocess.Popen | None = None
        self.stream: LiveStream | None = None
        self._media_us = 0
        self._media_at = time.monotonic()
        self._segment_at = time.monotonic()
        self._connected_at_ms = 0
        self._stop_reason: str | None = None
        self._lock = threading.Lock()

    # --- control -----------------------------------------------------------------------------------

    def start(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stdin = subprocess.PIPE if self.source.path == "browser" else subprocess.DEVNULL
        self.proc = subprocess.Popen(ffmpeg_argv(self.source, self.out_dir), stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=False)
        threading.Thread(target=self._read_log, name=f"ingest-log-{self.stream_id}", daemon=True).start()

    def stop(self, reason: str, *, clean: bool = True) -> None:
        """SIGTERM: ffmpeg closes its last segment whole; `clean=False` kills it (that segment is discarded)."""
        with self._lock:
            self._stop_reason = self._stop_reason or reason
            proc = self.proc
        if proc and proc.poll() is None:
            (proc.terminate if clean else proc.kill)()

    def run(self) -> Outcome:
        """Start ffmpeg, hand over every segment, end the stream; returns what happened."""
        if self.proc is None:
            self.start()
        watchdog = threading.Thread(target=self._watch, name=f"ingest-watch-{self.stream_id}", daemon=True)
        watchdog.start()
        try:
            self._segments()
        finally:
            self._finish()
        return self.outcome

    # --- ffmpeg's two outputs ---------------------------------------------------------------------------

    def _read_log(self) -> None:
        assert self.proc and self.proc.stderr
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line.startswith("out_time_us="):
                value = line.split("=", 1)[1]
                if value.isdigit() and int(value) != self._media_us:
                    self._media_us, self._media_at = int(value), time.monotonic()
                continue
            if "=" in line and " " not in line:  # the rest of -progress's key=value block
                continue
            self.outcome.log_tail = [*self.outcome.log_tail[-11:], line]
            if "Unexpected stream" in line and self.source.checks_key:
                self.outcome.refused = "rtmp: wrong stream key (the key `POST /streams/start` issued)"
                log.warning("stream %s: %s; publisher refused", self.stream_id, self.outcome.refused)
                self.stop("refused", clean=False)
            elif line.startswith("[info] Input #0") and not self.outcome.refused:
                self.mark_connected()

    def mark_connected(self) -> None:
        self._connected_at_ms = events.now_ms()
        self._media_at = self._segment_at = time.monotonic()
        self.stream = LiveStream(self.stream_id, self.producer)
        self.outcome.connected = True
        self.connected.set()
        log.info("stream %s: %s publisher connected", self.stream_id, self.source.path)

    def _segments(self) -> None:
        assert self.proc and self.proc.stdout
        lines = (raw.decode(errors="replace") for raw in self.proc.stdout)
        for row in csv.reader(lines):
            if len(row) < 3:
                continue
            path = Path(row[0]) if Path(row[0]).is_absolute() else self.out_dir / row[0]
            self._segment_at = time.monotonic()
            if self.stream is None or self.outcome.refused or self._stop_reason == "no_keyframe":
                path.unlink(missing_ok=True)
                continue
            data = path.read_bytes()
            path.unlink(missing_ok=True)
            start_s, end_s = float(row[1]), float(row[2])
            origin = self.origin_ms() or self._connected_at_ms
            self.stream.send(data, max(1, round((end_s - start_s) * 1000)),
                             captured_at_ms=round(origin + start_s * 1000),
                             keyframe_aligned=first_frame_is_idr(data))
            self.outcome.chunks += 1

    def _watch(self) -> None:
        """Stall and keyframe checks while connected (ffmpeg has no read timeout on a live input)."""
        target = settings.live_segment_seconds
        while self.proc and self.proc.poll() is None:
            time.sleep(0.5)
            if not self.connected.is_set():
                continue
            now = time.monotonic()
            if now - self._media_at > STALL_TARGETS * target:
                log.warning("stream %s: no media for %.0f s; ending it", self.stream_id, now - self._media_at)
                self.stop("stalled")
                return
            if now - self._segment_at > KEYFRAME_TARGETS * target:
                self.outcome.error = NO_KEYFRAME.format(s=now - self._segment_at, k=target)
                log.error("stream %s: %s", self.stream_id, self.outcome.error)
                self.stop("no_keyframe", clean=False)
                return

    def _finish(self) -> None:
        assert self.proc
        code = self.proc.wait()
        shutil.rmtree(self.out_dir, ignore_errors=True)
        if self.outcome.connected and code != 0 and not self._stop_reason and not self.outcome.error:
            self.outcome.error = f"ffmpeg exited with {code}: " + " | ".join(self.outcome.log_tail[-3:])
        if self.stream is None:
            return
        if self.outcome.error:
            try:
                catalog.upsert(catalog.LIVE, self.stream_id, catalog.STREAM_DOC, {"ingest_error": self.outcome.error})
            except Exception as exc:
                log.error("stream %s: ingest error not recorded (%s)", self.stream_id, exc)
        with self.api_factory() as api:
            try:
                self.stream.end(api)
                log.info("stream %s ended after %d chunks (%s)", self.stream_id, self.outcome.chunks,
                         self.outcome.error or self._stop_reason or "publisher left")
            except Exception as exc:  # the reaper ends it after its silence bound
                log.error("stream %s: end failed (%s); the reaper will end it", self.stream_id, exc)

