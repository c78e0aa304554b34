"""The live query's decisions, the same for every engine: a stream's state + the batch's events -> a plan.

Pure functions and value objects: no Spark, Kafka, S3 or catalog here, so the driver engine (`live`), the
executor engine (`live_task`) and the plain consumer (`plain`) make the same decisions and a unit test can
prove it without a stack.

Media sequence numbers: each verified segment gets `playlist_seq` = the number of verified segments before
it in the stream. The live playlist holds the last DVR_WINDOW_SIZE of them and `#EXT-X-MEDIA-SEQUENCE` is
the first one's playlist_seq, so it advances by exactly the number of entries that slid out. At the end the
live playlist keeps its window and gains ENDLIST (RFC 8216 6.2.1: nothing else may change); the recording is
a separate VOD playlist from 0 with the same numbers. A gap or a corrupted segment consumes no playlist_seq.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from lab import catalog, events, hls, storage
from lab.config import settings
from lab.streaming.common import Received

STREAM_TYPE = "live"

@dataclass(frozen=True)
class Entry:
    """A verified segment's place in the recording; `playlist_seq` is its HLS media sequence number."""

    chunk_index: int
    playlist_seq: int
    duration_ms: int
    captured_at_ms: int | None = None  # the first frame's capture time: EXT-X-PROGRAM-DATE-TIME

    def to_doc(self) -> dict[str, int | None]:
        return {"chunk_index": self.chunk_index, "playlist_seq": self.playlist_seq,
                "duration_ms": self.duration_ms, "captured_at_ms": self.captured_at_ms}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Entry:
        captured = doc.get("captured_at_ms")
        return cls(int(doc["chunk_index"]), int(doc["playlist_seq"]), int(doc["duration_ms"]),
                   None if captured is None else int(captured))

    @property
    def program_date_time(self) -> datetime | None:
        return None if self.captured_at_ms is None else datetime.fromtimestamp(self.captured_at_ms / 1000, UTC)


@dataclass(frozen=True)
class StreamState:
    """What the query must remember about a stream between batches (versions kept in `live_state`)."""

    stream_id: str
    status: str = "live"
    version: int = 0                # batches that recorded chunks of this stream: the newest state wins
    last_sequence: int = -1         # highest sequence number accepted so far (verified or not); -1: none
    verified_count: int = 0         # verified segments so far = the next playlist_seq
    window: tuple[Entry, ...] = ()  # the last DVR_WINDOW_SIZE verified segments, oldest first
    target_duration: int = 0        # #EXT-X-TARGETDURATION: only ever grows (RFC 8216 forbids shrinking)
    missing_total: int = 0          # sequence numbers that never arrived (the gaps)
    rejected_total: int = 0         # segments kept out of the playlist (checksum, late, after the end)

    @classmethod
    def from_doc(cls, stream_id: str, status: str, state: Mapping[str, Any] | None) -> StreamState:
        """From the stream document's status and the stream's newest `live_state` document."""
        if not state:
            return cls(stream_id, status)
        return cls(stream_id=stream_id, status=status, version=int(state["version"]),
                   last_sequence=int(state["last_sequence"]), verified_count=int(state["verified_count"]),
                   window=tuple(Entry.from_doc(e) for e in state["window"]),
                   target_duration=int(state["target_duration"]), missing_total=int(state["missing_total"]),
                   rejected_total=int(state["rejected_total"]))

    def to_doc(self) -> dict[str, Any]:
        return {"version": self.version, "last_sequence": self.last_sequence,
                "verified_count": self.verified_count, "window": [e.to_doc() for e in self.window],
                "target_duration": self.target_duration, "missing_total": self.missing_total,
                "rejected_total": self.rejected_total}

    @property
    def media_sequence(self) -> int:
        return self.window[0].playlist_seq if self.window else self.verified_count

    @property
    def dvr_window_start(self) -> int | None:
        return self.window[0].chunk_index if self.window else None

    def view_fields(self) -> dict[str, Any]:
        """What the stream document shows about the live stream (the reference's fields and more)."""
        return {"latest_chunk": self.last_sequence, "dvr_window_start": self.dvr_window_start,
                "media_sequence": self.media_sequence, "verified_chunks": self.verified_count,
                "target_duration": self.target_duration, "missing_total": self.missing_total,
                "rejected_total": self.rejected_total}


Action = Literal["playlist", "rejected", "duplicate"]


@dataclass(frozen=True)
class ChunkDecision:
    """What happens to one chunk event: into the playlist, recorded but kept out, or already recorded."""

    received: Received
    action: Action
    gap_before: int = 0                 # sequence numbers missing right before this one
    playlist_seq: int | None = None
    checksum_ok: bool | None = None     # None: not verified (duplicate, late, after the end)
    reason: str | None = None

    @property
    def event(self) -> events.LiveChunkEvent:
        return self.received.event  # type: ignore[return-value]

    @property
    def entry(self) -> Entry | None:
        """Its place in the recording, if it entered the playlist."""
        if self.action != "playlist" or self.playlist_seq is None:
            return None
        e = self.event
        return Entry(e.chunk_index, self.playlist_seq, e.duration_ms, e.captured_at_ms)


@dataclass(frozen=True)
class StreamPlan:
    """The decisions for one stream in one batch, and its state afterwards."""

    before: StreamState
    after: StreamState
    chunks: tuple[ChunkDecision, ...]
    end: Received | None = None  # an end marker still to act on

    @property
    def gaps(self) -> int:
        return sum(c.gap_before for c in self.chunks)

    @property
    def added(self) -> list[Entry]:
        """The segments this batch added to the recording, in order."""
        return [e for d in self.chunks if (e := d.entry) is not None]

    @property
    def new_chunks(self) -> list[ChunkDecision]:
        return [c for c in self.chunks if c.action != "duplicate"]

    @property
    def window_changed(self) -> bool:
        before, after = self.before, self.after
        return after.window != before.window or after.target_duration != before.target_duration


def rounded_seconds(duration_ms: int) -> int:
    """EXTINF rounded to the nearest integer, as RFC 8216 compares it with the target duration."""
    return math.floor(duration_ms / 1000 + 0.5)


def compact(entries: Sequence[Entry]) -> list[list[int | None]]:
    """Recording entries as small JSON rows `[chunk_index, duration_ms, captured_at_ms]` (their playlist_seq
    is their position); `expand` reads them back, and rows of two (written before PDTs) too."""
    return [[e.chunk_index, e.duration_ms, e.captured_at_ms] for e in entries]


def expand(rows: Iterable[Sequence[int | None]], first_seq: int) -> list[Entry]:
    return [Entry(int(r[0]), first_seq + n, int(r[1]), None if len(r) < 3 or r[2] is None else int(r[2]))
            for n, r in enumerate(rows)]


def chunk_problem(event: events.LiveChunkEvent) -> str | None:
    """Checks beyond the schema that make an event unusable (-> dead letter), naming the field."""
    if event.chunk_index != event.sequence_number:
        return f"chunk_index: {event.chunk_index} differs from sequence_number {event.sequence_number}"
    expected = storage.live_chunk_key(event.stream_id, event.chunk_index)
    if event.object_key != expected:
        # Never verify or list an object outside the key layout: a playlist must not point elsewhere.
        return f"object_key: expected {expected!r} for this stream and chunk, got {event.object_key!r}"
    return None


def needs_verification(state: StreamState, event: events.LiveChunkEvent) -> bool:
    """Only chunks past the last accepted sequence number can enter the playlist; others are not fetched."""
    return state.status == "live" and event.sequence_number > state.last_sequence


def plan_stream(state: StreamState, items: Sequence[Received], verdicts: Mapping[int, str | None],
                recorded: Set[int], *, window_size: int, min_target: int) -> StreamPlan:
    """Decide every event of one stream in one batch, in Kafka (= publish) order.

    `verdicts` maps chunk_index -> None (segment verified) or the reason it failed verification;
    `recorded` holds the chunk indices already in the catalog at or below `state.last_sequence`.
    """
    last, count = state.last_sequence, state.verified_count
    window, target = list(state.window), max(state.target_duration, min_target)
    missing, rejected = state.missing_total, state.rejected_total
    ended, end = state.status != "live", None
    seen = set(recorded)
    decisions: list[ChunkDecision] = []
    for item in items:
        event = item.event
        if isinstance(event, events.LiveEndEvent):
            if not ended:
                ended, end = True, item
            continue
        assert isinstance(event, events.LiveChunkEvent)
        index, seq = event.chunk_index, event.sequence_number
        if index in seen:  # a replayed batch, or the same chunk published twice: already recorded
            decisions.append(ChunkDecision(item, "duplicate"))
            continue
        seen.add(index)
        if ended:
            decisions.append(ChunkDecision(item, "rejected", reason="after_end: the end marker came first"))
            rejected += 1
            continue
        if seq <= last:
            decisions.append(ChunkDecision(item, "rejected", reason=f"late: sequence {seq} after {last}"))
            rejected += 1
            continue
        gap, last = seq - last - 1, seq
        missing += gap
        reason = verdicts.get(index, "unverified: the segment was not checked")
        if reason is not None:
            decisions.append(ChunkDecision(item, "rejected", gap, checksum_ok=False, reason=reason))
            rejected += 1
            continue
        window.append(Entry(index, count, event.duration_ms, event.captured_at_ms))
        target = max(target, rounded_seconds(event.duration_ms))
        decisions.append(ChunkDecision(item, "playlist", gap, playlist_seq=count, checksum_ok=True))
        count += 1
    changed = any(d.action != "duplicate" for d in decisions)
    after = replace(state, version=state.version + changed, last_sequence=last, verified_count=count,
                    window=tuple(window[-window_size:]), target_duration=target, missing_total=missing,
                    rejected_total=rejected)
    return StreamPlan(state, after, tuple(decisions), end)


def segment_uri(stream_id: str, chunk_index: int) -> str:
    """Relative to `manifests/{id}/`: stored playlists stay host-free (the API signs URIs per request)."""
    return f"../../{settings.bucket_live}/{storage.live_chunk_key(stream_id, chunk_index)}"


def render_playlist(stream_id: str, entries: Sequence[Entry], *, target_duration: int, ended: bool,
                    media_sequence: int | None = None) -> str:
    """The live playlist (rolling; with ENDLIST once the stream ended); MEDIA-SEQUENCE is the first entry's
    playlist_seq, or `media_sequence` for an empty window."""
    sequence = entries[0].playlist_seq if entries else (media_sequence or 0)
    return hls.live_playlist(_items(stream_id, entries), media_sequence=sequence,
                             target_duration=target_duration, ended=ended)


def render_recording(stream_id: str, entries: Sequence[Entry], *, target_duration: int) -> str:
    """The whole recording as a VOD playlist of its own (never the live playlist's URL: see the module doc)."""
    return hls.media_playlist(_items(stream_id, entries), target_duration=target_duration)


def _items(stream_id: str, entries: Sequence[Entry]) -> list[hls.SegmentSpec]:
    return [(segment_uri(stream_id, e.chunk_index), e.duration_ms / 1000, e.program_date_time) for e in entries]


def state_doc_id(stream_id: str, version: int) -> str:
    return f"{stream_id}/{version}"


def chunk_document(decision: ChunkDecision, after: StreamState, *, written_at: datetime | None,
                   batch_id: int) -> dict[str, Any]:
    """The `live_metadata` document of one chunk (inserted once; `_id` derived from its natural key)."""
    event, received = decision.event, decision.received
    in_playlist = decision.action == "playlist"
    doc: dict[str, Any] = {
        "_id": catalog.doc_id(event.stream_id, event.chunk_index), "stream_id": event.stream_id,
        "chunk_index": event.chunk_index, "stream_type": STREAM_TYPE, "sequence_number": event.sequence_number,
        "object_key": f"{settings.bucket_live}/{event.object_key}", "checksum_sha256": event.checksum_sha256,
        "size_bytes": event.size_bytes, "duration_ms": event.duration_ms,
        "keyframe_aligned": event.keyframe_aligned, "audio_track_id": event.audio_track_id,
        "video_track_id": event.video_track_id, "published_at_ms": event.published_at_ms,
        "captured_at_ms": event.captured_at_ms,
        "kafka_partition": received.partition, "kafka_offset": received.offset,
        "kafka_timestamp_ms": received.kafka_timestamp_ms, "checksum_ok": decision.checksum_ok,
        "in_playlist": in_playlist, "reason": decision.reason, "gap_before": decision.gap_before,
        "playlist_seq": decision.playlist_seq, "dvr_window_start": after.dvr_window_start,
        "batch_id": batch_id, "recorded_at": datetime.now(UTC),
    }
    if in_playlist and written_at is not None:
        doc["manifest_updated_at"] = written_at
        doc["processing_latency_ms"] = round(written_at.timestamp() * 1000 - event.published_at_ms, 1)
    return doc


def state_document(after: StreamState, batch_id: int) -> dict[str, Any]:
    """A stream's state after a batch (`live_state`, inserted once per version)."""
    return {"_id": state_doc_id(after.stream_id, after.version), "stream_id": after.stream_id,
            **after.to_doc(), "batch_id": batch_id, "recorded_at": datetime.now(UTC)}


def batch_documents(plans: Iterable[StreamPlan], written: Mapping[str, datetime],
                    batch_id: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The batch's new chunk documents, and the new state of each stream that recorded any."""
    chunks: list[dict[str, Any]] = []
    states: list[dict[str, Any]] = []
    for plan in plans:
        at = written.get(plan.after.stream_id)
        chunks += [chunk_document(d, plan.after, written_at=at, batch_id=batch_id) for d in plan.new_chunks]
        if plan.new_chunks:
            states.append(state_document(plan.after, batch_id))
    return chunks, states

