"""The live encoder: ffmpeg makes a real-time stream (a moving test picture with a clock, a tone), H.264/AAC,
one GOP per segment, written as MPEG-TS segments. For each finished segment the encoder:

  1. reads its bytes and computes their SHA-256 (where the segment is made),
  2. uploads them to `live-streams/{stream_id}/chunks/{n}.ts`,
  3. publishes the chunk event straight to Kafka (`live-chunks`, key = stream_id): never through the API.

A stream starts with `POST /streams/start` and, after LIVE_CHUNKS_PER_STREAM chunks, ends with
`POST /streams/end` (its end marker rides the same partition, after the last chunk); then a short pause and
the next stream, as the reference does. Faults are injected on demand (`inject_gap`, `inject_corruption`)
from a notebook or a test. `Replay` publishes pre-encoded real segments instead, at any rate, for
benchmarks and fast tests.
"""

from __future__ import annotations

import csv
import json
import logging
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import KafkaError, Message, Producer

from lab import events, metrics, storage, topics
from lab.apiclient import client
from lab.config import settings
from lab.media.checksum import sha256_bytes
from lab.media.h264 import first_frame_is_idr
from lab.media.sources import live_encoder_command

log = logging.getLogger(__name__)

STREAM_TYPE = "live"
FLUSH_TIMEOUT_S = 10.0


class EncoderError(RuntimeError):
    """ffmpeg stopped on its own; the message ends with the tail of its log."""


# --- the control plane: start and end a stream ------------------------------------------------------

def start_stream(api: httpx.Client, title: str | None = None) -> str:
    """`POST /streams/start`: the catalog entry and an empty playlist exist before the first chunk."""
    resp = api.post("/streams/start", json={"title": title} if title else {})
    resp.raise_for_status()
    return resp.json()["stream_id"]


def end_stream(api: httpx.Client, stream_id: str) -> None:
    """`POST /streams/end`: the API publishes the end marker; Spark writes the final playlist."""
    resp = api.post("/streams/end", json={"stream_id": stream_id})
    resp.raise_for_status()


# --- one stream, seen from the encoder ------------------------------------------------------------

@dataclass(frozen=True)
class PublishedChunk:
    stream_id: str
    sequence_number: int
    published_at_ms: int
    size_bytes: int
    duration_ms: int
    corrupted: bool
    gap_before: int


class Faults:
    """Faults to inject on demand; each applies to the next segment published (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gap = 0
        self._corrupt = 0

    def inject_gap(self, size: int = 1) -> None:
        """Skip `size` sequence numbers before the next segment: Spark counts a gap of that size."""
        if size < 1:
            raise ValueError("size: a gap skips at least one sequence number")
        with self._lock:
            self._gap += size

    def inject_corruption(self) -> None:
        """Upload bytes that differ from the checksummed ones for the next segment."""
        with self._lock:
            self._corrupt += 1

    def take(self) -> tuple[int, bool]:
        with self._lock:
            gap, corrupt = self._gap, self._corrupt > 0
            self._gap, self._corrupt = 0, max(0, self._corrupt - 1)
        return gap, corrupt


def corrupted(data: bytes) -> bytes:
    """Same length, different bytes: flips bits in the middle, as a bad disk or a truncated copy might."""
    middle = len(data) // 2
    span = min(188, len(data) - middle)  # one MPEG-TS packet
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + span]) + data[middle + span:]


def _on_delivery(err: KafkaError | None, msg: Message) -> None:
    if err is not None:
        metrics.producer_delivery_failures.labels(STREAM_TYPE).inc()
        log.error("chunk event for %s was not delivered: %s", msg.key(), err)


class LiveStream:
    """Uploads each segment of one stream, then publishes its event; owns the sequence numbers."""

    def __init__(self, stream_id: str, producer: Producer, faults: Faults | None = None):
        self.stream_id = stream_id
        self.producer = producer
        self.faults = faults or Faults()
        self.next_sequence = 0
        self.published: list[PublishedChunk] = []

    def inject_gap(self, size: int = 1) -> None:
        self.faults.inject_gap(size)

    def inject_corruption(self) -> None:
        self.faults.inject_corruption()

    def send(self, data: bytes, duration_ms: int, *, sha256: str | None = None,
             keyframe_aligned: bool = True) -> PublishedChunk:
        gap, corrupt = self.faults.take()
        seq = self.next_sequence + gap
        digest = sha256 or sha256_bytes(data)
        key = storage.live_chunk_key(self.stream_id, seq)
        # Upload first, publish second: an event never names a segment that is not in the bucket yet.
        storage.put_segment(settings.bucket_live, key, corrupted(data) if corrupt else data, digest)
        event = events.LiveChunkEvent(
            stream_id=self.stream_id, chunk_index=seq, sequence_number=seq, object_key=key,
            checksum_sha256=digest, size_bytes=len(data), duration_ms=duration_ms,
            keyframe_aligned=keyframe_aligned, audio_track_id=f"audio-{self.stream_id}",
            video_track_id=f"video-{self.stream_id}", published_at_ms=events.now_ms())
        topics.publish(self.producer, settings.live_topic, self.stream_id, events.encode(event), _on_delivery)
        metrics.producer_messages.labels(STREAM_TYPE).inc()
        metrics.producer_bytes.labels(STREAM_TYPE).inc(len(data))
        chunk = PublishedChunk(self.stream_id, seq, event.published_at_ms, len(data), duration_ms,
                               corrupt, gap)
        self.published.append(chunk)
        self.next_sequence = seq + 1
        if gap or corrupt:
            log.info("stream %s chunk %d: injected %s", self.stream_id, seq,
                     f"a gap of {gap}" if gap else "a corrupted upload")
        return chunk


# --- ffmpeg ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finished:
    path: Path
    duration_ms: int


class Ffmpeg:
    """One real-time ffmpeg run; yields each segment once the segment muxer has closed it."""

    def __init__(self, out_dir: Path, *, segment_seconds: float, width: int, height: int, fps: int):
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.log_path = out_dir / "ffmpeg.log"
        argv = live_encoder_command(out_dir, segment_seconds, width, height, fps, start_number=0)
        with open(self.log_path, "wb") as log_file:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log_file,
                                         stdin=subprocess.DEVNULL, text=True, bufsize=1)
        self.stopping = False

    def segments(self) -> Iterator[Finished]:
        """The segment list arrives on stdout as CSV: `file,start_time,end_time` per finished segment."""
        assert self.proc.stdout is not None
        for row in csv.reader(self.proc.stdout):
            if len(row) < 3:
                continue
            path = Path(row[0]) if Path(row[0]).is_absolute() else self.out_dir / row[0]
            yield Finished(path, max(1, round((float(row[2]) - float(row[1])) * 1000)))
        code = self.proc.wait()
        if not self.stopping:
            tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-5:])
            raise EncoderError(f"ffmpeg exited with {code} mid-stream; {self.log_path}:\n{tail}")

    def stop(self) -> None:
        """SIGTERM: ffmpeg closes the current segment and exits; SIGKILL if it does not within 5 s."""
        self.stopping = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the encoder loop ---------------------------------------------------------------------------------

class LiveEncoder:
    """Real-time streams back to back, as the producer service runs them; faults on demand."""

    def __init__(self, *, api: httpx.Client | None = None, producer: Producer | None = None,
                 chunks_per_stream: int | None = None, segment_seconds: float | None = None,
                 resolution: str | None = None, fps: int | None = None, work_dir: Path | None = None):
        self.api = api or client()
        self.producer = producer or topics.producer(**{"client.id": "lab-live-encoder"})
        self.chunks_per_stream = chunks_per_stream or settings.live_chunks_per_stream
        self.segment_seconds = segment_seconds or settings.live_segment_seconds
        self.width, self.height = (int(v) for v in (resolution or settings.live_resolution).split("x"))
        self.fps = fps or settings.live_fps
        self.work_dir = work_dir or settings.lab_state_dir / "live-encoder"
        self.faults = Faults()
        self.stream: LiveStream | None = None
        self._ffmpeg: Ffmpeg | None = None
        self._lock = threading.Lock()

    @property
    def stream_id(self) -> str | None:
        return self.stream.stream_id if self.stream else None

    def inject_gap(self, size: int = 1) -> None:
        self.faults.inject_gap(size)

    def inject_corruption(self) -> None:
        self.faults.inject_corruption()

    def run(self, stop: threading.Event) -> None:
        """Until `stop`: a stream of LIVE_CHUNKS_PER_STREAM chunks, its end, a pause, the next stream."""
        while not stop.is_set():
            try:
                self.run_stream(stop)
            except (httpx.HTTPError, EncoderError, OSError) as exc:
                log.error("live stream failed, retrying in 5 s: %s", exc)
                stop.wait(5.0)
            stop.wait(random.uniform(settings.live_interval_min, settings.live_interval_max))

    def run_stream(self, stop: threading.Event, *, chunks: int | None = None,
                   title: str | None = None) -> str:
        """One stream of `chunks` segments (LIVE_CHUNKS_PER_STREAM by default); returns its stream_id.
        On `stop` the stream still ends properly, so its recording becomes VOD."""
        wanted = chunks or self.chunks_per_stream
        stream_id = start_stream(self.api, title)
        self.stream = LiveStream(stream_id, self.producer, self.faults)
        metrics.live_streams_started.inc()
        log.info("live stream %s started (%d chunks of %.1f s, %dx%d)", stream_id, wanted,
                 self.segment_seconds, self.width, self.height)
        out_dir = self.work_dir / stream_id
        try:
            self._encode(stop, out_dir, wanted)
        finally:
            self._stop_ffmpeg()
            shutil.rmtree(out_dir, ignore_errors=True)
            self._end(stream_id)
        return stream_id

    def close(self) -> None:
        """Stop ffmpeg now (SIGTERM path); the running `run_stream` then ends its stream."""
        self._stop_ffmpeg()

    def _encode(self, stop: threading.Event, out_dir: Path, wanted: int) -> None:
        with self._lock:
            if stop.is_set():
                return
            self._ffmpeg = Ffmpeg(out_dir, segment_seconds=self.segment_seconds, width=self.width,
                                  height=self.height, fps=self.fps)
        watcher = threading.Thread(target=self._watch, args=(stop, self._ffmpeg), daemon=True)
        watcher.start()
        assert self.stream is not None
        for segment in self._ffmpeg.segments():
            data = segment.path.read_bytes()
            segment.path.unlink(missing_ok=True)
            self.stream.send(data, segment.duration_ms, keyframe_aligned=first_frame_is_idr(data))
            if len(self.stream.published) >= wanted or stop.is_set():
                break

    def _watch(self, stop: threading.Event, ffmpeg: Ffmpeg) -> None:
        while ffmpeg.proc.poll() is None:
            if stop.wait(0.2):
                ffmpeg.stop()
                return

    def _stop_ffmpeg(self) -> None:
        with self._lock:
            if self._ffmpeg is not None:
                self._ffmpeg.stop()
                self._ffmpeg = None

    def _end(self, stream_id: str) -> None:
        if self.producer.flush(FLUSH_TIMEOUT_S):
            log.error("stream %s: chunk events still undelivered after %.0f s", stream_id, FLUSH_TIMEOUT_S)
        try:
            end_stream(self.api, stream_id)
            log.info("live stream %s ended after %d chunks", stream_id,
                     len(self.stream.published) if self.stream else 0)
        except httpx.HTTPError as exc:
            log.error("stream %s: POST /streams/end failed: %s", stream_id, exc)


# --- replay: pre-encoded real segments for benchmarks and fast tests ------------------------------

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
        self.producer.flush(FLUSH_TIMEOUT_S)
        end_stream(self.api, stream.stream_id)

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
