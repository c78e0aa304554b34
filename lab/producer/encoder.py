"""The live encoder: ffmpeg makes a real-time stream (a moving test picture with a clock, a tone), H.264/AAC,
one GOP per segment, written as MPEG-TS segments; each finished segment goes out through a `LiveStream`
(stream.py: upload, then the chunk event to Kafka).

A stream starts with `POST /streams/start` and, after LIVE_CHUNKS_PER_STREAM chunks, ends with
`POST /streams/end` once Kafka has acknowledged all its chunks (the end marker rides the same partition,
after the last chunk); then a short pause and the next stream, as the reference does. Faults are injected
on demand (`inject_gap`, `inject_corruption`) from a notebook or a test.
"""

from __future__ import annotations

import csv
import logging
import random
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from confluent_kafka import Producer

from lab import metrics, topics
from lab.apiclient import client
from lab.config import settings
from lab.events import now_ms
from lab.media.h264 import first_frame_is_idr
from lab.media.sources import live_encoder_command
from lab.producer.stream import Faults, LiveStream, UndeliveredChunks, start_stream

log = logging.getLogger(__name__)


class EncoderError(RuntimeError):
    """ffmpeg stopped on its own; the message ends with the tail of its log."""


# --- ffmpeg ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finished:
    path: Path
    duration_ms: int
    captured_at_ms: int  # the wall clock of the segment's first frame (its EXT-X-PROGRAM-DATE-TIME)


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
        """The segment list arrives on stdout as CSV: `file,start_time,end_time` per finished segment.

        The capture clock: with `-re` the source makes the frame at pts t at wall time t0 + t, and the muxer
        closes a segment when the first frame after its end arrives, so t0 = (when the first row arrived) -
        its end_time, up to the encoder's own delay (x264 zerolatency: no lookahead). t0 is fixed for the
        run, so consecutive PROGRAM-DATE-TIMEs differ by exactly their EXTINFs."""
        assert self.proc.stdout is not None
        origin_ms: float | None = None
        for row in csv.reader(self.proc.stdout):
            if len(row) < 3:
                continue
            start, end = float(row[1]), float(row[2])
            if origin_ms is None:
                origin_ms = now_ms() - end * 1000
            path = Path(row[0]) if Path(row[0]).is_absolute() else self.out_dir / row[0]
            yield Finished(path, max(1, round((end - start) * 1000)), round(origin_ms + start * 1000))
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
                 resolution: str | None = None, fps: int | None = None, work_dir: Path | None = None,
                 on_segment: Callable[[Finished, bytes], None] | None = None):
        """`on_segment` sees each segment's bytes as ffmpeg closed it, before it is uploaded (`lab bench
        glass` serves them straight from a directory: the floor the pipeline is compared with)."""
        self.api = api or client()
        self.producer = producer or topics.producer(**{"client.id": "lab-live-encoder"})
        self.chunks_per_stream = chunks_per_stream or settings.live_chunks_per_stream
        self.segment_seconds = segment_seconds or settings.live_segment_seconds
        self.width, self.height = (int(v) for v in (resolution or settings.live_resolution).split("x"))
        self.fps = fps or settings.live_fps
        self.work_dir = work_dir or settings.lab_state_dir / "live-encoder"
        self.faults = Faults()
        self.on_segment = on_segment
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
            except (httpx.HTTPError, EncoderError, UndeliveredChunks, OSError) as exc:
                log.error("live stream failed, retrying in 5 s: %s", exc)
                stop.wait(5.0)
            stop.wait(random.uniform(settings.live_interval_min, settings.live_interval_max))

    def run_stream(self, stop: threading.Event, *, chunks: int | None = None,
                   title: str | None = None) -> str:
        """One stream of `chunks` segments (LIVE_CHUNKS_PER_STREAM by default); returns its stream_id.
        On `stop` the stream still ends properly, so its recording becomes VOD. Raises UndeliveredChunks
        (and sends no end marker) if Kafka did not acknowledge every chunk."""
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
            self._end(self.stream)
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
            if self.on_segment is not None:
                self.on_segment(segment, data)
            self.stream.send(data, segment.duration_ms, captured_at_ms=segment.captured_at_ms,
                             keyframe_aligned=first_frame_is_idr(data))
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

    def _end(self, stream: LiveStream) -> None:
        """The end marker, once every chunk is acknowledged (UndeliveredChunks otherwise, raised). A failed
        `POST /streams/end` is logged: the stream stays live, and the error must not hide an encoder error."""
        try:
            stream.end(self.api)
            log.info("live stream %s ended after %d chunks", stream.stream_id, len(stream.published))
        except httpx.HTTPError as exc:
            log.error("stream %s: POST /streams/end failed: %s", stream.stream_id, exc)
