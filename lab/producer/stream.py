"""One live stream, seen from the encoder: start and end it through the API, upload each segment and publish
its chunk event, inject faults on demand. Used by the live encoder (encoder.py) and the replay tool
(replay.py) alike.

For each segment: the SHA-256 of its bytes (where the segment is made), the upload to
`live-streams/{stream_id}/chunks/{n}.ts`, then the chunk event straight to Kafka (`live-chunks`, key =
stream_id): never through the API. The end marker (`POST /streams/end`, which the API publishes on the
stream's own partition) is asked for only once Kafka has acknowledged every chunk event of the stream: an
end marker ahead of an undelivered chunk would close the playlist without it.

S3 or Kafka away for a while (a restart, a blip) does not end the stream: a segment that cannot be handed over
waits in a bounded backlog (LIVE_BACKLOG_SEGMENTS) and is retried in order, with backoff, by the stream's
worker thread, and later segments queue behind it (so chunk events stay in sequence order). When the backlog
is full the oldest waiting segment is dropped: its sequence number becomes a gap, never a crash. While a
`LiveStream` is open its process heartbeats it in the open-stream registry (one write per process for all its
streams, see Heartbeats), so the reaper (lab/live_ingest/reaper.py) can tell a publisher that is gone (killed,
its machine off) from one that is waiting for S3 or for Spark.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

import httpx
from botocore.exceptions import BotoCoreError, ClientError
from confluent_kafka import KafkaError, Message, Producer

from lab import catalog, events, metrics, storage, topics
from lab.config import settings
from lab.live_ingest import registry
from lab.media.checksum import sha256_bytes

log = logging.getLogger(__name__)

STREAM_TYPE = "live"
FLUSH_TIMEOUT_S = 10.0
RETRY_FIRST_S, RETRY_MAX_S = 0.25, 5.0   # backoff of a segment hand-over that failed
END_ATTEMPTS = 4                         # POST /streams/end tries (1, 2, 4 s apart); then the reaper ends it
# What a failed hand-over may raise and is worth retrying: S3 unreachable or answering 5xx, a socket error.
RETRYABLE = (BotoCoreError, ClientError, OSError)


class UndeliveredChunks(RuntimeError):
    """Kafka did not acknowledge every chunk event of a stream, so its end marker was not sent."""


# --- the control plane: start and end a stream ------------------------------------------------------

def start_stream(api: httpx.Client, title: str | None = None) -> str:
    """`POST /streams/start`: the catalog entry and an empty playlist exist before the first chunk."""
    resp = api.post("/streams/start", json={"title": title} if title else {})
    resp.raise_for_status()
    return resp.json()["stream_id"]


def end_stream(api: httpx.Client, stream_id: str) -> None:
    """`POST /streams/end`: the API publishes the end marker; Spark writes the final playlist. Call it
    through `LiveStream.end`, which first makes sure every chunk event is on the broker."""
    for attempt in range(END_ATTEMPTS):
        try:
            resp = api.post("/streams/end", json={"stream_id": stream_id})
            if resp.status_code < 500 or attempt == END_ATTEMPTS - 1:
                resp.raise_for_status()
                return
            log.warning("stream %s: POST /streams/end answered %d; trying again", stream_id, resp.status_code)
        except httpx.TransportError as exc:  # the API restarting: try again, then leave it to the reaper
            if attempt == END_ATTEMPTS - 1:
                raise
            log.warning("stream %s: POST /streams/end failed (%s); trying again", stream_id, exc)
        time.sleep(2.0 ** attempt)


# --- faults --------------------------------------------------------------------------------------

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


# --- the stream --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PublishedChunk:
    stream_id: str
    sequence_number: int
    published_at_ms: int
    size_bytes: int
    duration_ms: int
    corrupted: bool
    gap_before: int


class Heartbeats:
    """The publisher's sign of life for the reaper: every open stream of this process, in one registry write per
    beat (a replay of a thousand streams writes once, not a thousand times). One daemon thread, started with the
    first stream. A stream is open from its LiveStream's creation to its end (or close)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[str] = set()
        self._thread: threading.Thread | None = None

    @staticmethod
    def every_s() -> float:
        return max(1.0, settings.live_silence_targets * settings.live_segment_seconds / 5)

    def close(self, stream_id: str) -> None:
        with self._lock:
            self._open.discard(stream_id)

    def open(self, stream_id: str) -> None:
        with self._lock:
            self._open.add(stream_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-heartbeats", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every_s())
            with self._lock:
                ids = set(self._open)
            if ids:
                try:
                    registry.heartbeat(sorted(ids))
                except Exception as exc:  # the catalog away: the reaper cannot read it either; next beat
                    log.warning("heartbeat of %d live stream(s) failed (%s)", len(ids), exc)


HEARTBEATS = Heartbeats()


@dataclass(frozen=True)
class _Pending:
    """A segment captured and not yet handed over (uploaded, then its event produced)."""

    data: bytes
    digest: str
    keyframe_aligned: bool
    captured_at_ms: int
    chunk: PublishedChunk


class LiveStream:
    """Uploads each segment of one stream, then publishes its event; owns the sequence numbers and counts
    what Kafka acknowledged (delivery reports arrive on whichever thread serves the producer's callbacks)."""

    def __init__(self, stream_id: str, producer: Producer, faults: Faults | None = None, *,
                 backlog: int | None = None):
        self.stream_id = stream_id
        self.producer = producer
        self.faults = faults or Faults()
        self.next_sequence = 0
        self.published: list[PublishedChunk] = []
        self.dropped: list[int] = []  # sequence numbers dropped from a full backlog: gaps
        self._lock = threading.Lock()
        self._acked = 0
        self._failures: list[str] = []
        self._backlog: deque[_Pending] = deque()
        self._backlog_max = backlog or settings.live_backlog_segments
        self._in_flight: _Pending | None = None
        self._hand_over_lock = threading.Lock()  # one hand-over at a time keeps the events in order
        self._closed = threading.Event()
        self._worker: threading.Thread | None = None
        HEARTBEATS.open(stream_id)

    def inject_gap(self, size: int = 1) -> None:
        self.faults.inject_gap(size)

    def inject_corruption(self) -> None:
        self.faults.inject_corruption()

    def send(self, data: bytes, duration_ms: int, *, captured_at_ms: int | None = None,
             sha256: str | None = None, keyframe_aligned: bool = True) -> PublishedChunk:
        """Upload one segment, then publish its chunk event (now, or from the backlog once S3 and Kafka take it:
        see the module's docstring). `captured_at_ms`: epoch ms of the segment's first frame on the capture
        clock (its EXT-X-PROGRAM-DATE-TIME); None = now - duration_ms, right for a real-time source handing
        over a segment the moment it closed."""
        gap, corrupt = self.faults.take()
        captured = captured_at_ms if captured_at_ms is not None else events.now_ms() - duration_ms
        seq = self.next_sequence + gap
        self.next_sequence = seq + 1
        chunk = PublishedChunk(self.stream_id, seq, events.now_ms(), len(data), duration_ms, corrupt, gap)
        item = _Pending(corrupted(data) if corrupt else data, sha256 or sha256_bytes(data), keyframe_aligned,
                        captured, chunk)
        with self._lock:
            self._backlog.append(item)
            while len(self._backlog) > self._backlog_max:
                self._drop_oldest()
        if gap or corrupt:
            log.info("stream %s chunk %d: injected %s", self.stream_id, seq,
                     f"a gap of {gap}" if gap else "a corrupted upload")
        if not self.drain():
            self._start_worker()  # it retries with backoff; this caller goes back to its source
        return chunk

    def _drop_oldest(self) -> None:
        """Called with the lock held: drop the oldest waiting segment that is not being handed over."""
        index = 1 if self._backlog[0] is self._in_flight else 0
        lost = self._backlog[index]
        del self._backlog[index]
        self.dropped.append(lost.chunk.sequence_number)
        metrics.live_segments_dropped.inc()
        log.error("stream %s: backlog full (%d segments); chunk %d dropped, a gap", self.stream_id,
                  self._backlog_max, lost.chunk.sequence_number)

    def backlog(self) -> int:
        with self._lock:
            return len(self._backlog)

    def drain(self) -> bool:
        """Hand over the waiting segments in order, stopping at the first that fails; True once none waits.
        Returns False at once when another thread is handing over (it will carry on)."""
        if not self._hand_over_lock.acquire(blocking=False):
            return False
        try:
            while True:
                with self._lock:
                    if not self._backlog:
                        return True
                    self._in_flight = item = self._backlog[0]
                try:
                    self._hand_over(item)
                except RETRYABLE as exc:
                    metrics.live_segment_retries.inc()
                    log.warning("stream %s chunk %d: hand-over failed (%s); kept in the backlog (%d waiting)",
                                self.stream_id, item.chunk.sequence_number, exc, self.backlog())
                    return False
                finally:
                    self._in_flight = None
                with self._lock:
                    if self._backlog and self._backlog[0] is item:
                        self._backlog.popleft()
        finally:
            self._hand_over_lock.release()

    def _hand_over(self, item: _Pending) -> None:
        chunk, seq = item.chunk, item.chunk.sequence_number
        key = storage.live_chunk_key(self.stream_id, seq)
        # Upload first, publish second: an event never names a segment that is not in the bucket yet.
        storage.put_segment(settings.bucket_live, key, item.data, item.digest)
        event = events.LiveChunkEvent(
            stream_id=self.stream_id, chunk_index=seq, sequence_number=seq, object_key=key,
            checksum_sha256=item.digest, size_bytes=chunk.size_bytes, duration_ms=chunk.duration_ms,
            keyframe_aligned=item.keyframe_aligned, audio_track_id=f"audio-{self.stream_id}",
            video_track_id=f"video-{self.stream_id}", captured_at_ms=item.captured_at_ms,
            published_at_ms=events.now_ms())
        with self._lock:  # before the produce: its delivery report may arrive before produce returns
            self.published.append(chunk)
        topics.publish(self.producer, settings.live_topic, self.stream_id, events.encode(event), self._delivered)
        metrics.producer_messages.labels(STREAM_TYPE).inc()
        metrics.producer_bytes.labels(STREAM_TYPE).inc(chunk.size_bytes)

    # --- the worker: retries the backlog with backoff (started on the first failed hand-over) -----------

    def _start_worker(self) -> None:
        with self._lock:
            if self._worker is None and not self._closed.is_set():
                self._worker = threading.Thread(target=self._work, name=f"live-{self.stream_id}", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        delay = RETRY_FIRST_S
        while not self._closed.wait(delay):
            if self.backlog():
                delay = RETRY_FIRST_S if self.drain() else min(RETRY_MAX_S, delay * 2)
            else:
                delay = RETRY_FIRST_S

    def close(self, wait_s: float = 0.0) -> list[int]:
        """Stop the worker after trying the backlog for up to `wait_s` seconds; what still waits is dropped
        (gaps) and returned with the other dropped sequence numbers."""
        deadline = time.monotonic() + wait_s
        while not self.drain() and time.monotonic() < deadline:
            time.sleep(min(RETRY_MAX_S, max(0.05, deadline - time.monotonic())))
        self._closed.set()
        HEARTBEATS.close(self.stream_id)
        with self._lock:
            while self._backlog and self._backlog[0] is not self._in_flight:
                self._drop_oldest()
            return list(self.dropped)

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        with self._lock:
            if err is None:
                self._acked += 1
                return
            self._failures.append(str(err))
        metrics.producer_delivery_failures.labels(STREAM_TYPE).inc()
        log.error("chunk event for %s was not delivered: %s", self.stream_id, err)

    def undelivered(self) -> tuple[int, list[str]]:
        """(chunk events Kafka has not acknowledged, the delivery errors reported so far)."""
        with self._lock:
            return len(self.published) - self._acked, list(self._failures)

    def end(self, api: httpx.Client, timeout: float = FLUSH_TIMEOUT_S) -> None:
        """Wait until Kafka has acknowledged every chunk event, then ask the API for the end marker. If a
        chunk failed or is still unacknowledged after `timeout` seconds, raise UndeliveredChunks and send no
        end marker: the stream then stays live (its playlist without ENDLIST) rather than ending before a
        chunk that may still arrive, or ending with a hole nobody was told about. Segments still in the
        backlog get up to a silence bound to go out first; any that cannot are gaps, named in the catalog.
        If this raises, the reaper ends the stream once its silence bound has passed."""
        dropped = self.close(wait_s=settings.live_silence_targets * settings.live_segment_seconds)
        if dropped:
            self._name_gaps(dropped)
        self.producer.flush(timeout)
        pending, failures = self.undelivered()
        if pending or failures:
            raise UndeliveredChunks(
                f"stream {self.stream_id}: {len(failures)} chunk event(s) refused by Kafka"
                f"{f' ({failures[0]})' if failures else ''}, {pending - len(failures)} unacknowledged after "
                f"{timeout:g} s; no end marker sent")
        end_stream(api, self.stream_id)

    def _name_gaps(self, dropped: list[int]) -> None:
        """The dropped sequence numbers in the stream document: a gap at the very end has no later chunk for
        Spark to count it by."""
        try:
            catalog.upsert(catalog.LIVE, self.stream_id, catalog.STREAM_DOC, {"publisher_dropped": dropped})
        except Exception as exc:
            log.error("stream %s: dropped chunks %s not recorded in the catalog (%s)", self.stream_id, dropped, exc)
