"""One live stream, seen from the encoder: start and end it through the API, upload each segment and publish
its chunk event, inject faults on demand. Used by the live encoder (encoder.py) and the replay tool
(replay.py) alike.

For each segment: the SHA-256 of its bytes (where the segment is made), the upload to
`live-streams/{stream_id}/chunks/{n}.ts`, then the chunk event straight to Kafka (`live-chunks`, key =
stream_id): never through the API. The end marker (`POST /streams/end`, which the API publishes on the
stream's own partition) is asked for only once Kafka has acknowledged every chunk event of the stream: an
end marker ahead of an undelivered chunk would close the playlist without it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import httpx
from confluent_kafka import KafkaError, Message, Producer

from lab import events, metrics, storage, topics
from lab.config import settings
from lab.media.checksum import sha256_bytes

log = logging.getLogger(__name__)

STREAM_TYPE = "live"
FLUSH_TIMEOUT_S = 10.0


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
    resp = api.post("/streams/end", json={"stream_id": stream_id})
    resp.raise_for_status()


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


class LiveStream:
    """Uploads each segment of one stream, then publishes its event; owns the sequence numbers and counts
    what Kafka acknowledged (delivery reports arrive on whichever thread serves the producer's callbacks)."""

    def __init__(self, stream_id: str, producer: Producer, faults: Faults | None = None):
        self.stream_id = stream_id
        self.producer = producer
        self.faults = faults or Faults()
        self.next_sequence = 0
        self.published: list[PublishedChunk] = []
        self._lock = threading.Lock()
        self._acked = 0
        self._failures: list[str] = []

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
        chunk = PublishedChunk(self.stream_id, seq, event.published_at_ms, len(data), duration_ms,
                               corrupt, gap)
        with self._lock:  # before the produce: its delivery report may arrive before produce returns
            self.published.append(chunk)
        topics.publish(self.producer, settings.live_topic, self.stream_id, events.encode(event), self._delivered)
        metrics.producer_messages.labels(STREAM_TYPE).inc()
        metrics.producer_bytes.labels(STREAM_TYPE).inc(len(data))
        self.next_sequence = seq + 1
        if gap or corrupt:
            log.info("stream %s chunk %d: injected %s", self.stream_id, seq,
                     f"a gap of {gap}" if gap else "a corrupted upload")
        return chunk

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
        chunk that may still arrive, or ending with a hole nobody was told about."""
        self.producer.flush(timeout)
        pending, failures = self.undelivered()
        if pending or failures:
            raise UndeliveredChunks(
                f"stream {self.stream_id}: {len(failures)} chunk event(s) refused by Kafka"
                f"{f' ({failures[0]})' if failures else ''}, {pending - len(failures)} unacknowledged after "
                f"{timeout:g} s; no end marker sent")
        end_stream(api, self.stream_id)
