"""Replay: pre-encoded real segments published as live streams at any rate, for benchmarks, lessons and fast
tests (no real-time ffmpeg to wait for). The segments are made once by the live encoder's own ffmpeg
command and cached in the state dir."""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import Producer

from lab import topics
from lab.apiclient import client
from lab.config import settings
from lab.media.checksum import sha256_bytes
from lab.media.h264 import first_frame_is_idr
from lab.producer.encoder import Ffmpeg
from lab.producer.stream import FLUSH_TIMEOUT_S, LiveStream, PublishedChunk, start_stream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Segment:
    data: bytes
    sha256: str
    duration_ms: int
    keyframe_aligned: bool


def sample_segments(count: int = 5, *, resolution: str = "320x180", fps: int = 25,
                    segment_seconds: float | None = None) -> list[Segment]:
    """`count` real segments made once by the live encoder's ffmpeg command, cached in the state dir."""
    seconds = segment_seconds or settings.live_segment_seconds
    cache_dir = settings.lab_state_dir / "live-replay" / f"{resolution}-{fps}fps-{seconds:g}s"
    index = cache_dir / "index.json"
    if not index.exists() or len(json.loads(index.read_text())) < count:
        _encode_samples(cache_dir, count, resolution, fps, seconds)
    entries = json.loads(index.read_text())[:count]
    segments = []
    for entry in entries:
        data = (cache_dir / entry["file"]).read_bytes()
        segments.append(Segment(data, sha256_bytes(data), entry["duration_ms"],
                                entry["keyframe_aligned"]))
    return segments


def _encode_samples(cache_dir: Path, count: int, resolution: str, fps: int, seconds: float) -> None:
    width, height = (int(v) for v in resolution.split("x"))
    work = cache_dir.with_suffix(".tmp")
    shutil.rmtree(work, ignore_errors=True)
    log.info("encoding %d sample segments (%s, %g s) for replay: about %.0f s, once", count, resolution,
             seconds, count * seconds)
    ffmpeg = Ffmpeg(work, segment_seconds=seconds, width=width, height=height, fps=fps)
    entries = []
    try:
        for segment in ffmpeg.segments():
            data = segment.path.read_bytes()
            entries.append({"file": segment.path.name, "duration_ms": segment.duration_ms,
                            "keyframe_aligned": first_frame_is_idr(data)})
            if len(entries) >= count:
                break
    finally:
        ffmpeg.stop()
    shutil.rmtree(cache_dir, ignore_errors=True)
    cache_dir.mkdir(parents=True)
    for entry in entries:
        shutil.copy(work / entry["file"], cache_dir / entry["file"])
    (cache_dir / "index.json").write_text(json.dumps(entries))
    shutil.rmtree(work, ignore_errors=True)


class Replay:
    """Publishes pre-encoded real segments for N streams, each at `rate` chunks/s (one thread per stream,
    so each stream's chunks stay in order while uploads of different streams overlap)."""

    def __init__(self, segments: list[Segment] | None = None, *, api: httpx.Client | None = None,
                 producer: Producer | None = None):
        self.segments = segments or sample_segments()
        self.api = api or client()
        self.producer = producer or topics.producer(**{"client.id": "lab-live-replay"})

    def start_stream(self, title: str | None = None) -> LiveStream:
        return LiveStream(start_stream(self.api, title), self.producer)

    def send(self, stream: LiveStream) -> PublishedChunk:
        """The next segment of `stream` (segments are reused in turn)."""
        segment = self.segments[stream.next_sequence % len(self.segments)]
        return stream.send(segment.data, segment.duration_ms, sha256=segment.sha256,
                           keyframe_aligned=segment.keyframe_aligned)

    def end(self, stream: LiveStream) -> None:
        """The end marker, once Kafka has acknowledged every chunk (UndeliveredChunks otherwise)."""
        stream.end(self.api)

    def run(self, streams: list[LiveStream], rate: float, duration: float, *,
            stop: threading.Event | None = None,
            on_publish: Callable[[PublishedChunk], None] | None = None) -> None:
        """Publish for `duration` seconds; stream i starts i/(N*rate) s after the first (spread load)."""
        stop = stop or threading.Event()
        period = 1.0 / rate
        t0 = time.monotonic() + 0.05
        deadline = t0 + duration

        def pump(i: int, stream: LiveStream) -> None:
            due = t0 + i * period / len(streams)
            while not stop.is_set():
                if stop.wait(max(0.0, due - time.monotonic())) or due >= deadline:
                    return
                chunk = self.send(stream)
                if on_publish:
                    on_publish(chunk)
                due += period

        threads = [threading.Thread(target=pump, args=(i, s), name=f"replay-{i}", daemon=True)
                   for i, s in enumerate(streams)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.producer.flush(FLUSH_TIMEOUT_S)
