"""The live query: `live-chunks` -> verified segments -> one rolling DVR playlist per stream, and the whole
recording as a finished playlist when the stream's end marker arrives.

Follow one batch (`process_live_batch`):
  1. collect and validate the Kafka rows; invalid ones go to the dead-letter topic      common.split_batch
  2. the state of every stream in the batch (from the catalog the first time)           StateCache.load
  3. verify each new segment's SHA-256 against the bytes in the bucket (parallel GETs)   verify_segments
  4. decide, per stream: duplicates, gaps, checksum failures, playlist sequence numbers  plan_stream (pure)
  5. write ONE playlist per stream (parallel PUTs)                                       write_live_playlists
  6. insert the new chunk documents, then each stream's new state (two inserts)          record_batch
  7. end markers: the final playlist with #EXT-X-ENDLIST, then status `vod`              finish_stream

Where the state lives: in the catalog, not in driver memory. After each batch that recorded chunks of a
stream, its state (last sequence number, playlist sequence counter, DVR window, ...) is inserted as a new
version in `live_state`, after the chunk documents it counts. A crash part-way leaves chunks without
their state, never the reverse. A restarted Spark job, or a batch Spark replays, reads the newest state
back, finds the chunks it already recorded (duplicates: skipped), and makes the same decisions for the
rest, so the playlist it rewrites and the documents it inserts are the same.

Why inserts and `_id` lookups only: FerretDB's SQLite backend (the embedded catalog) inserts in ~0.5 ms,
updates in 15-40 ms each, and answers any filter but `_id` equality by scanning and decoding the whole
collection (seconds at a few thousand documents on a busy laptop); an `_id` equality is a cheaper scan in
SQLite that still grows with the collection (catalog.doc_id has the measurements). So documents get `_id`s derived from
their key (`catalog.doc_id`), nothing on the batch's path queries by another field, and the stream
document's live view (latest chunk, DVR window start, ...) is refreshed by a background writer, latest
value wins: it is a view; the state it shows is in `live_state`.

Media sequence numbers: each verified segment gets `playlist_seq` = the number of verified segments before
it in the stream. The live playlist holds the last DVR_WINDOW_SIZE of them and `#EXT-X-MEDIA-SEQUENCE` is
the first one's playlist_seq, so it advances by exactly the number of entries that slid out; the final
playlist starts at 0 with the same numbers. A gap or a corrupted segment consumes no playlist_seq.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from botocore.exceptions import ClientError
from pymongo.errors import BulkWriteError

from lab import catalog, events, hls, media, metrics, storage
from lab.config import settings
from lab.streaming.common import Received, flush_dead_letters, send_dead_letter, split_batch

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY = "live"
STREAM_TYPE = "live"
IO_THREADS = 16  # S3 GETs/PUTs of one batch run in parallel on the driver: small, I/O-bound work

T = TypeVar("T")
R = TypeVar("R")


# =====================================================================================================
# Pure logic: given a stream's state from the catalog and the batch's events -> decisions. No I/O here.
# =====================================================================================================

@dataclass(frozen=True)
class Entry:
    """A verified segment's place in the recording; `playlist_seq` is its HLS media sequence number."""

    chunk_index: int
    playlist_seq: int
    duration_ms: int

    def to_doc(self) -> dict[str, int]:
        return {"chunk_index": self.chunk_index, "playlist_seq": self.playlist_seq,
                "duration_ms": self.duration_ms}

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Entry:
        return cls(int(doc["chunk_index"]), int(doc["playlist_seq"]), int(doc["duration_ms"]))


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
    def new_chunks(self) -> list[ChunkDecision]:
        return [c for c in self.chunks if c.action != "duplicate"]

    @property
    def window_changed(self) -> bool:
        before, after = self.before, self.after
        return after.window != before.window or after.target_duration != before.target_duration


def rounded_seconds(duration_ms: int) -> int:
    """EXTINF rounded to the nearest integer, as RFC 8216 compares it with the target duration."""
    return math.floor(duration_ms / 1000 + 0.5)


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
        window.append(Entry(index, count, event.duration_ms))
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
    """A live (rolling) or finished playlist; MEDIA-SEQUENCE is the first entry's playlist_seq."""
    sequence = entries[0].playlist_seq if entries else (media_sequence or 0)
    items = [(segment_uri(stream_id, e.chunk_index), e.duration_ms / 1000) for e in entries]
    return hls.live_playlist(items, media_sequence=sequence, target_duration=target_duration, ended=ended)


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


# =====================================================================================================
# I/O: catalog, bucket, playlists. Each function does one kind of round trip for the whole batch.
# =====================================================================================================

def _parallel(func: Callable[[T], R], items: Iterable[T]) -> list[R]:
    items = list(items)
    if len(items) <= 1:
        return [func(i) for i in items]
    return list(_io_pool().map(func, items))


@cache
def _io_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(IO_THREADS, thread_name_prefix="live-io")


@dataclass
class Known:
    """What the process knows about one stream: its state, and (unless it restarted mid-stream) every
    verified segment so far, which the final playlist lists."""

    state: StreamState
    entries: list[Entry] | None


class StateCache:
    """The state of every stream this process has seen, read from the catalog once per stream.

    After `POST /streams/start` the live query is the only writer of a stream's state, so the state it
    recorded last IS the catalog's content: it is read back after a restart, or the first time a stream is
    seen, and kept current after each batch. A failed batch stops the query and the process, so this copy
    never outlives a write that failed.
    """

    def __init__(self) -> None:
        self.known: dict[str, Known] = {}

    def load(self, stream_ids: Iterable[str]) -> dict[str, StreamState]:
        """Every stream's state; unknown streams (no stream document) are left out."""
        wanted = list(dict.fromkeys(stream_ids))
        missing = [sid for sid in wanted if sid not in self.known]
        for sid, known in zip(missing, _parallel(read_known, missing), strict=True):
            if known is not None:
                self.known[sid] = known
        return {sid: self.known[sid].state for sid in wanted if sid in self.known}

    def update(self, plans: Iterable[StreamPlan]) -> None:
        for plan in plans:
            known = self.known[plan.after.stream_id]
            known.state = plan.after
            if known.entries is not None:
                known.entries += [Entry(d.event.chunk_index, d.playlist_seq, d.event.duration_ms)
                                  for d in plan.chunks if d.action == "playlist" and d.playlist_seq is not None]

    def entries(self, stream_id: str) -> list[Entry]:
        known = self.known[stream_id]
        if known.entries is None:
            known.entries = read_entries(known.state)
        return known.entries

    def forget(self, stream_id: str) -> None:
        """An ended stream: a stray later event reads it back from the catalog."""
        self.known.pop(stream_id, None)


def read_known(stream_id: str) -> Known | None:
    """A stream's newest state: the stream document says which version its view shows; versions are
    contiguous, so walk forward from there to the newest one recorded (the view may lag behind)."""
    doc = catalog.find_by_id(catalog.LIVE, catalog.stream_doc_id(stream_id), {"status": 1, "state_version": 1})
    if doc is None:
        return None
    version, newest = int(doc.get("state_version", 0)), None
    if version:
        newest = catalog.find_by_id(catalog.LIVE_STATE, state_doc_id(stream_id, version))
    while (following := catalog.find_by_id(catalog.LIVE_STATE, state_doc_id(stream_id, version + 1))) is not None:
        newest, version = following, version + 1
    state = StreamState.from_doc(stream_id, doc.get("status", "live"), newest)
    return Known(state, [] if state.version == 0 else None)


def read_entries(state: StreamState) -> list[Entry]:
    """Every verified segment of a stream from its chunk documents (after a restart mid-stream)."""
    ids = [catalog.doc_id(state.stream_id, i) for i in range(state.last_sequence + 1)]
    projection = {"chunk_index": 1, "playlist_seq": 1, "duration_ms": 1, "in_playlist": 1}
    docs = _parallel(lambda i: catalog.find_by_id(catalog.LIVE, i, projection), ids)
    return [Entry.from_doc(d) for d in docs if d is not None and d["in_playlist"]]


class ViewWriter:
    """Refreshes stream documents' live view in the background, latest value per stream wins.

    One update costs 15-40 ms on FerretDB; doing them inside a batch would delay the next batch (and with
    100 streams, every batch). Losing a pending view on a crash is harmless: the next batch refreshes it.
    """

    def __init__(self) -> None:
        self._pending: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._writing = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def submit(self, stream_id: str, fields: dict[str, Any]) -> None:
        with self._lock:
            self._pending[stream_id] = {**self._pending.get(stream_id, {}), **fields}
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-view-writer", daemon=True)
                self._thread.start()
        self._wake.set()

    def discard(self, stream_id: str) -> None:
        """Drop the stream's pending view and wait for one being written: the final write comes next."""
        with self._lock:
            self._pending.pop(stream_id, None)
        with self._writing:
            pass

    def _run(self) -> None:
        coll = catalog.collection(catalog.LIVE)
        while True:
            self._wake.wait()
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._pending:
                        break
                    stream_id = next(iter(self._pending))
                    fields = self._pending.pop(stream_id)
                    self._writing.acquire()
                try:
                    coll.update_one({"_id": catalog.stream_doc_id(stream_id)}, {"$set": fields})
                    metrics.catalog_operations.labels(catalog.LIVE, "update").inc()
                except Exception:  # a view: log it and let the next batch's view replace it
                    log.exception("refreshing the view of stream %s failed", stream_id)
                finally:
                    self._writing.release()


STATES = StateCache()
VIEWS = ViewWriter()


def load_states(stream_ids: Iterable[str]) -> dict[str, StreamState]:
    return STATES.load(stream_ids)


def load_recorded(wanted: Mapping[str, list[int]]) -> dict[str, set[int]]:
    """Which of these chunks are already in the catalog (asked only on replays and for late chunks)."""
    keys = [(sid, i) for sid, idx in wanted.items() for i in idx]
    found = _parallel(lambda k: catalog.find_by_id(catalog.LIVE, catalog.doc_id(*k), {"_id": 1}), keys)
    recorded: dict[str, set[int]] = defaultdict(set)
    for (sid, index), doc in zip(keys, found, strict=True):
        if doc is not None:
            recorded[sid].add(index)
    return recorded


def verify_segment(event: events.LiveChunkEvent) -> str | None:
    """None if the bytes in the bucket are the ones the encoder checksummed, else the reason."""
    try:
        data = storage.get_bytes(settings.bucket_live, event.object_key)
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return f"object_missing: {settings.bucket_live}/{event.object_key} does not exist"
        raise
    digest = media.sha256_bytes(data)
    if digest != event.checksum_sha256:
        return (f"checksum_mismatch: stored bytes hash to {digest[:16]}…, "
                f"the event says {event.checksum_sha256[:16]}…")
    if len(data) != event.size_bytes:
        return f"size_mismatch: stored {len(data)} bytes, the event says {event.size_bytes}"
    return None


def verify_segments(chunks: Sequence[events.LiveChunkEvent]) -> dict[str, dict[int, str | None]]:
    """stream_id -> chunk_index -> None (verified) or the reason it failed."""
    verdicts: dict[str, dict[int, str | None]] = defaultdict(dict)
    for chunk, verdict in zip(chunks, _parallel(verify_segment, chunks), strict=True):
        verdicts[chunk.stream_id][chunk.chunk_index] = verdict
    return verdicts


def write_live_playlist(state: StreamState) -> datetime:
    """Write the rolling playlist; returns when it was written (what `processing_latency_ms` measures to)."""
    text = render_playlist(state.stream_id, state.window, target_duration=state.target_duration,
                           ended=False, media_sequence=state.media_sequence)
    storage.put_playlist(settings.bucket_manifests, storage.live_playlist_key(state.stream_id), text,
                         cache_control=storage.LIVE_PLAYLIST)
    metrics.playlist_writes.labels("live").inc()
    return datetime.now(UTC)


def write_live_playlists(plans: Iterable[StreamPlan]) -> dict[str, datetime]:
    changed = [p.after for p in plans if p.window_changed]
    written = _parallel(write_live_playlist, changed)
    return {state.stream_id: at for state, at in zip(changed, written, strict=True)}


def insert_in_order(name: str, docs: list[dict[str, Any]]) -> int:
    """One ordered insert. A document already there (a batch replayed after a crash part-way through its
    writes) is skipped and the rest inserted: the decisions, hence the documents, are the same."""
    coll = catalog.collection(name)
    inserted, start = 0, 0
    while start < len(docs):
        try:
            result = coll.insert_many(docs[start:], ordered=True)
            return inserted + len(result.inserted_ids)
        except BulkWriteError as exc:
            error = exc.details["writeErrors"][0]
            if error["code"] != 11000:  # only "duplicate key" means "recorded before"
                raise
            inserted += exc.details["nInserted"]
            start += error["index"] + 1
            log.info("%s %s was recorded before this replay; kept", name, docs[start - 1]["_id"])
        finally:
            metrics.catalog_operations.labels(name, "insert").inc()
    return inserted


def record_batch(plans: Sequence[StreamPlan], written: Mapping[str, datetime], batch_id: int) -> None:
    """The new chunks, then the streams' new states (inserts only), then the views in the background.
    The order makes a crash part-way harmless: a state in the catalog implies its chunks are recorded."""
    chunks, states = batch_documents(plans, written, batch_id)
    if chunks:
        insert_in_order(catalog.LIVE, chunks)
    if states:
        insert_in_order(catalog.LIVE_STATE, states)
    STATES.update(plans)
    for plan in plans:
        if plan.new_chunks:
            fields = {**plan.after.view_fields(), "state_version": plan.after.version}
            if plan.after.stream_id in written:
                fields["manifest_updated_at"] = written[plan.after.stream_id]
            VIEWS.submit(plan.after.stream_id, fields)


def finish_stream(state: StreamState, end: Received) -> None:
    """The end marker: the whole recording as a finished playlist (immutable), then status `vod`."""
    entries = STATES.entries(state.stream_id)
    if [e.playlist_seq for e in entries] != list(range(len(entries))):
        log.error("stream %s: playlist sequence numbers are not contiguous: %s", state.stream_id,
                  [e.playlist_seq for e in entries])
    text = render_playlist(state.stream_id, entries, target_duration=state.target_duration, ended=True)
    storage.put_playlist(settings.bucket_manifests, storage.live_playlist_key(state.stream_id), text,
                         cache_control=storage.IMMUTABLE)
    metrics.playlist_writes.labels("live_final").inc()
    VIEWS.discard(state.stream_id)
    now = catalog.now()
    # Only this process ends streams, and it skips an end marker once the state says `vod`, so a replay
    # cannot append a second history entry (a filter on status would cost FerretDB a full scan).
    catalog.collection(catalog.LIVE).update_one(
        {"_id": catalog.stream_doc_id(state.stream_id)},
        {"$set": {**state.view_fields(), "state_version": state.version, "status": "vod", "ended_at": now,
                  "recorded_chunks": len(entries),
                  "recorded_duration_s": sum(e.duration_ms for e in entries) / 1000,
                  "end_published_at_ms": end.event.published_at_ms},
         "$push": {"status_history": {"status": "vod", "at": now}}})
    metrics.catalog_operations.labels(catalog.LIVE, "update").inc()
    STATES.forget(state.stream_id)
    log.info("stream %s ended: %d segments in the recording", state.stream_id, len(entries))


# =====================================================================================================
# One batch
# =====================================================================================================

class _Stages:
    """Wall time per stage of a batch, exported as `live_batch_stage_seconds{stage}`."""

    def __init__(self) -> None:
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        metrics.live_batch_stage.labels(stage).observe(now - self.last)
        self.last = now


def _dead_letter(received: Received, reason: str) -> None:
    # The original bytes are not kept after validation; the re-encoded event carries the same fields.
    send_dead_letter(events.encode(received.event), reason, topic=settings.live_topic,
                     partition=received.partition, offset=received.offset)


def group_live_events(received: Iterable[Received]) -> tuple[dict[str, list[Received]], int]:
    """Live events per stream in Kafka order; anything else on this topic is dead-lettered."""
    by_stream: dict[str, list[Received]] = defaultdict(list)
    refused = 0
    for item in received:
        event = item.event
        problem = None
        if not isinstance(event, events.LiveChunkEvent | events.LiveEndEvent):
            problem = f"event_type: {event.event_type} does not belong on {settings.live_topic}"
        elif isinstance(event, events.LiveChunkEvent):
            problem = chunk_problem(event)
        if problem:
            _dead_letter(item, problem)
            refused += 1
        else:
            by_stream[event.stream_id].append(item)
    return by_stream, refused


def process_events(received: Sequence[Received], batch_id: int, stages: _Stages | None = None) -> None:
    """Everything after the Kafka rows are collected (Spark-free, so a notebook can call it too)."""
    stages = stages or _Stages()
    by_stream, refused = group_live_events(received)
    states = load_states(by_stream)
    for sid in [s for s in by_stream if s not in states]:
        for item in by_stream.pop(sid):
            _dead_letter(item, f"stream_id: no live stream {sid} (start it with POST /streams/start)")
            refused += 1
    if refused:
        flush_dead_letters()
    to_verify: list[events.LiveChunkEvent] = []
    maybe_recorded: dict[str, list[int]] = defaultdict(list)
    for sid, items in by_stream.items():
        for chunk in (i.event for i in items if isinstance(i.event, events.LiveChunkEvent)):
            if needs_verification(states[sid], chunk):
                to_verify.append(chunk)
            else:
                maybe_recorded[sid].append(chunk.chunk_index)
    recorded = load_recorded(maybe_recorded)
    stages.mark("state")
    verdicts = verify_segments(to_verify)
    stages.mark("verify")
    min_target = math.ceil(settings.live_segment_seconds)
    plans = [plan_stream(states[sid], items, verdicts.get(sid, {}), recorded.get(sid, set()),
                         window_size=settings.dvr_window_size, min_target=min_target)
             for sid, items in by_stream.items()]
    written = write_live_playlists(plans)
    stages.mark("playlist")
    record_batch(plans, written, batch_id)
    stages.mark("catalog")
    observe(plans, written)
    for plan in plans:
        if plan.end is not None:
            finish_stream(plan.after, plan.end)
    if any(p.end for p in plans):
        stages.mark("end")


def observe(plans: Iterable[StreamPlan], written: Mapping[str, datetime]) -> None:
    for plan in plans:
        at = written.get(plan.after.stream_id)
        if plan.gaps:
            metrics.live_chunk_gaps.inc(plan.gaps)
            log.warning("stream %s: %d sequence number(s) missing", plan.after.stream_id, plan.gaps)
        for decision in plan.new_chunks:
            metrics.chunks_processed.labels(STREAM_TYPE).inc()
            if decision.checksum_ok is False:
                metrics.chunk_checksum_failures.labels(STREAM_TYPE).inc()
                log.warning("stream %s chunk %d kept out of the playlist: %s", plan.after.stream_id,
                            decision.event.chunk_index, decision.reason)
            if decision.action == "playlist" and at is not None:
                latency_s = at.timestamp() - decision.event.published_at_ms / 1000
                metrics.chunk_processing_latency.labels(STREAM_TYPE).observe(max(latency_s, 0.0))


def process_live_batch(batch_df: DataFrame, batch_id: int) -> None:
    """foreachBatch: a replay of the same batch_id rewrites the same objects and documents."""
    started = time.perf_counter()
    stages = _Stages()
    received = split_batch(batch_df)
    stages.mark("collect")
    if received:
        now = time.time()
        for item in received:  # publish -> rows on the driver: Kafka, waiting for the trigger, collect
            metrics.live_batch_stage.labels("wait").observe(max(0.0, now - item.event.published_at_ms / 1000))
        process_events(received, batch_id, stages)
    metrics.batch_duration.labels(QUERY).observe(time.perf_counter() - started)


# =====================================================================================================
# The query
# =====================================================================================================

# The executors' Kafka consumers read an exact offset range; with the default fetch.max.wait.ms (500) the
# broker holds their fetch at the end of the range for up to 500 ms, which was most of a batch's time
# (collect: ~600 ms -> ~100 ms measured with 10). Live latency matters more than fetch efficiency here.
READER_OPTIONS = {"kafka.fetch.max.wait.ms": "10"}


def trigger_options() -> dict[str, str]:
    """SPARK_LIVE_TRIGGER_S: 0 = start the next micro-batch as soon as the previous one ends."""
    return {"processingTime": f"{round(settings.spark_live_trigger_s * 1000)} milliseconds"}


def start(spark: SparkSession, *, writer_options: Mapping[str, str] | None = None) -> StreamingQuery:
    """The live query; `writer_options` are extra DataStreamWriter options (benchmarks try them)."""
    from lab.streaming import session

    storage.s3(), catalog.client()  # connect before the first batch, not inside its latency
    checkpoint = settings.lab_state_dir / "checkpoints" / QUERY
    writer = (session.kafka_stream(spark, settings.live_topic, options=READER_OPTIONS)
              .writeStream.queryName(QUERY)
              .option("checkpointLocation", str(checkpoint))
              .trigger(**trigger_options()))
    for key, value in (writer_options or {}).items():
        writer = writer.option(key, value)
    return writer.foreachBatch(process_live_batch).start()
