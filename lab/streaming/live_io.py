"""The live engines' shared I/O: a batch's decisions (plan_streams: verify, then plan), verify a segment,
insert in order, dead letters, the catalog's view of a
stream, and reading a stream's state back from the catalog (the driver engine's store; the other engines
read it once per stream, to take over a stream another engine started).

Every catalog call is counted once in `catalog_operations{collection, operation}`: one unit, one database
round trip, reads included.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any, TypeVar

from botocore.exceptions import ClientError
from pymongo import DeleteOne
from pymongo.errors import BulkWriteError

from lab import catalog, events, media, metrics, storage
from lab.config import settings
from lab.streaming.common import Received, send_dead_letter
from lab.streaming.live_logic import (
    Entry,
    StreamPlan,
    StreamState,
    chunk_problem,
    needs_verification,
    plan_stream,
    state_doc_id,
)

log = logging.getLogger(__name__)

IO_THREADS = 16  # S3 GETs/PUTs of one batch run in parallel: small, I/O-bound work
POOL_PREFIX = "live-io"
VIEW_INTERVAL_S = 1.0  # ViewWriter: the stream documents' live view is at most this stale
STATE_VERSIONS_KEPT = 10  # per stream: older state versions are deleted once the view points past them

T = TypeVar("T")
R = TypeVar("R")


def parallel(func: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`func` over `items` on the shared I/O pool. Called from a task already on that pool (a stream's state
    read that needs its chunk documents), it runs inline: waiting on the bounded pool from inside it
    deadlocks once IO_THREADS outer tasks wait at once (it did: 1000 streams taken over in one batch)."""
    items = list(items)
    if len(items) <= 1 or threading.current_thread().name.startswith(POOL_PREFIX):
        return [func(i) for i in items]
    return list(_io_pool().map(func, items))


@cache
def _io_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(IO_THREADS, thread_name_prefix=POOL_PREFIX)


_TALLY: Counter[tuple[str, str]] = Counter()
_TALLY_LOCK = threading.Lock()


def counted(collection: str, operation: str, calls: int = 1) -> None:
    """One unit for `catalog_operations`: database calls (an insert_many of 40 documents is one). Also
    tallied, for a Spark task to hand to the driver: an executor process serves no /metrics."""
    metrics.catalog_operations.labels(collection, operation).inc(calls)
    with _TALLY_LOCK:
        _TALLY[(collection, operation)] += calls


def take_tally() -> Counter[tuple[str, str]]:
    """The calls counted since the last take (in this process)."""
    with _TALLY_LOCK:
        taken = Counter(_TALLY)
        _TALLY.clear()
    return taken


def find_by_id(collection: str, _id: str, projection: dict[str, Any] | None = None) -> dict[str, Any] | None:
    counted(collection, "read")
    return catalog.find_by_id(collection, _id, projection)


# --- events -----------------------------------------------------------------------------------------

def dead_letter(received: Received, reason: str) -> None:
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
            dead_letter(item, problem)
            refused += 1
        else:
            by_stream[event.stream_id].append(item)
    return by_stream, refused


def refuse_unknown_stream(stream_id: str, items: Sequence[Received]) -> int:
    """Dead-letter the events of a stream never started through the API; how many (flush after)."""
    for item in items:
        dead_letter(item, f"stream_id: no live stream {stream_id} (start it with POST /streams/start)")
    return len(items)


# --- decisions ----------------------------------------------------------------------------------------

def plan_streams(collection: str, states: Mapping[str, StreamState], by_stream: Mapping[str, list[Received]],
                 stages: Stages) -> list[StreamPlan]:
    """Every engine's decisions for a batch: verify the new segments (parallel GETs), ask the catalog about
    chunks at or below a stream's last accepted one (a duplicate or a late chunk), then plan each stream
    (pure: live_logic.plan_stream). Marks the stages `state` and `verify`."""
    to_verify: list[events.LiveChunkEvent] = []
    maybe_recorded: dict[str, list[int]] = defaultdict(list)
    for sid, items in by_stream.items():
        for chunk in (i.event for i in items if isinstance(i.event, events.LiveChunkEvent)):
            if needs_verification(states[sid], chunk):
                to_verify.append(chunk)
            else:
                maybe_recorded[sid].append(chunk.chunk_index)
    recorded = recorded_chunks(collection, maybe_recorded)
    stages.mark("state")
    verdicts = verify_segments(to_verify)
    stages.mark("verify")
    min_target = math.ceil(settings.live_segment_seconds)
    return [plan_stream(states[sid], items, verdicts.get(sid, {}), recorded.get(sid, set()),
                        window_size=settings.dvr_window_size, min_target=min_target)
            for sid, items in by_stream.items() if items]


# --- segments -----------------------------------------------------------------------------------------

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
    for chunk, verdict in zip(chunks, parallel(verify_segment, chunks), strict=True):
        verdicts[chunk.stream_id][chunk.chunk_index] = verdict
    return verdicts


# --- catalog --------------------------------------------------------------------------------------------

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
            counted(name, "insert")
    return inserted


def recorded_chunks(collection: str, wanted: dict[str, list[int]]) -> dict[str, set[int]]:
    """Which of these chunks are already in the catalog. Asked only for chunks at or below a stream's last
    accepted sequence number (the same chunk published twice, or a late one): never on the hot path."""
    keys = [(sid, i) for sid, idx in wanted.items() for i in idx]
    found = parallel(lambda k: find_by_id(collection, catalog.doc_id(*k), {"_id": 1}), keys)
    recorded: dict[str, set[int]] = defaultdict(set)
    for (sid, index), doc in zip(keys, found, strict=True):
        if doc is not None:
            recorded[sid].add(index)
    return recorded


@dataclass
class Known:
    """What the process knows about one stream: its state, and (unless it restarted mid-stream) every
    verified segment so far, which the final playlist lists."""

    state: StreamState
    entries: list[Entry] | None


def read_known(stream_id: str) -> Known | None:
    """A stream's newest state in the catalog: the stream document says which version its view shows;
    versions are contiguous, so walk forward from there to the newest one recorded (the view may lag).
    None: no such stream (never started through the API)."""
    doc = find_by_id(catalog.LIVE, catalog.stream_doc_id(stream_id), {"status": 1, "state_version": 1})
    if doc is None:
        return None
    version, newest = int(doc.get("state_version", 0)), None
    if version:
        newest = find_by_id(catalog.LIVE_STATE, state_doc_id(stream_id, version))
    while (following := find_by_id(catalog.LIVE_STATE, state_doc_id(stream_id, version + 1))) is not None:
        newest, version = following, version + 1
    state = StreamState.from_doc(stream_id, doc.get("status", "live"), newest)
    return Known(state, [] if state.version == 0 else None)


def read_entries(collection: str, state: StreamState) -> list[Entry]:
    """Every verified segment of a stream from its chunk documents, by `_id` (the final playlist after a
    restart mid-stream; once per stream, at its end)."""
    ids = [catalog.doc_id(state.stream_id, i) for i in range(state.last_sequence + 1)]
    projection = {"chunk_index": 1, "playlist_seq": 1, "duration_ms": 1, "captured_at_ms": 1, "in_playlist": 1}
    docs = parallel(lambda i: find_by_id(collection, i, projection), ids)
    return [Entry.from_doc(d) for d in docs if d is not None and d["in_playlist"]]


class ViewWriter:
    """Refreshes stream documents' live view in the background, latest value per stream wins.

    One update costs 15-40 ms on FerretDB; doing them inside a batch would delay the next batch (and with
    100 streams, every batch). Losing a pending view on a crash is harmless: the next batch refreshes it.
    After each round it rests VIEW_INTERVAL_S, gathering the next values: without the rest it updated as fast
    as FerretDB could, and the catalog took ~30 % of a core at 5 chunks/s, on the cores the batches need.
    Once a view is written, it also deletes the stream's state versions it makes unreachable (_prune).
    """

    def __init__(self, collection: str = catalog.LIVE, states: str = catalog.LIVE_STATE) -> None:
        self.collection, self.states = collection, states
        self._pruned: dict[str, int] = {}  # stream -> the newest of its state versions deleted
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
            self._pruned.pop(stream_id, None)

    def _run(self) -> None:
        coll = catalog.collection(self.collection)
        while True:
            self._wake.wait()
            time.sleep(VIEW_INTERVAL_S)  # a view a second per stream at most: later values replace earlier
            self._wake.clear()
            while True:
                with self._lock:
                    if not self._pending:
                        break
                    stream_id = next(iter(self._pending))
                    fields = self._pending.pop(stream_id)
                    self._writing.acquire()
                try:
                    # a bench namespace has no stream documents of its own: its view creates one
                    coll.update_one({"_id": catalog.stream_doc_id(stream_id)}, {"$set": fields},
                                    upsert=self.collection != catalog.LIVE)
                    counted(self.collection, "update")
                    if "state_version" in fields:
                        self._prune(stream_id, int(fields["state_version"]))
                except Exception:  # a view: log it and let the next batch's view replace it
                    log.exception("refreshing the view of stream %s (or pruning its states) failed", stream_id)
                finally:
                    self._writing.release()

    def _prune(self, stream_id: str, version: int) -> None:
        """Delete the stream's state versions older than its newest STATE_VERSIONS_KEPT, by `_id` (an index
        lookup, however big the collection). Safe once the view showing `version` is written: a restarted
        driver reads forward from the view's version (read_known) and never reads an older one. Without it,
        `live_state` grew by a document per stream per batch all day. A process that has not pruned this
        stream yet looks back one command's worth (WRITE_BATCH): what the process before it left between its
        last prune and its end."""
        upto = version - STATE_VERSIONS_KEPT
        start = self._pruned.get(stream_id, max(0, upto - catalog.WRITE_BATCH))
        if upto <= start:
            return
        deletes = [DeleteOne({"_id": state_doc_id(stream_id, v)}) for v in range(start + 1, upto + 1)]
        catalog.bulk_write(self.states, deletes)
        counted(self.states, "delete", -(-len(deletes) // catalog.WRITE_BATCH))
        self._pruned[stream_id] = upto


class Stages:
    """Wall time per stage of a batch (or of one task's share of it), in seconds."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def mark(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = self.seconds.get(stage, 0.0) + now - self.last
        self.last = now

    def export(self) -> None:
        """Into `live_batch_stage_seconds{stage}` (in the process that serves the metrics)."""
        for stage, seconds in self.seconds.items():
            metrics.live_batch_stage.labels(stage).observe(seconds)


def stage_report() -> str:
    """The line a bench engine prints at exit: `live_batch_stage_seconds` and batch time of this process."""
    stages: dict[str, list[float]] = {}
    for histogram in (metrics.live_batch_stage, metrics.batch_duration):
        for family in histogram.collect():
            for sample in family.samples:
                label = sample.labels.get("stage") or "batch"
                if sample.name.endswith("_sum"):
                    stages.setdefault(label, [0.0, 0.0])[0] += sample.value
                elif sample.name.endswith("_count"):
                    stages.setdefault(label, [0.0, 0.0])[1] += sample.value
    return json.dumps({"stages": stages})
