"""The executor engine (LIVE_ENGINE=executors; default: see LIVE_ENGINE in lab/config.py): each Kafka
partition's events are handled in the Spark task that reads that partition, with each stream's state in one
small S3 object read and written by key.

Why this works without a shuffle: the Kafka key is `stream_id`, so all of a stream's events are in one
partition, and Spark's Kafka source reads one topic partition per task. The task that owns the partition
owns its streams for that batch: it reads their state (one GET each), verifies the segments, writes the
playlists and the catalog documents, and writes the new state (one PUT each). The driver only starts the
tasks and adds their small summaries to its metrics. The plain consumer (`plain`) runs the same function.

Where the state lives: `manifests/{prefix}{stream_id}/live-state.json`: the stream's `StreamState` plus the
Kafka partition and offset of the last event it has applied. Every batch costs one GET and one PUT per
stream, whatever the size of the catalog: the catalog is written (chunk documents, state versions), never
read on this path. It is read once per stream, the first time the stream is seen, to check that it was
started (and to take over a state the driver engine left), and by `_id` for a chunk published twice.

The recording (every verified segment, for the final playlist) is kept in pages of RECORDING_PAGE entries:
the open page inside the state object, each full page as an immutable `recording/{n}.json` beside it. So
the state object stays small and the end of a stream costs (segments / RECORDING_PAGE) GETs.

Exactly once, by order and by offset: pages, playlist, chunk documents, state versions in the catalog, and
the state object LAST. A crash anywhere before the state PUT leaves the old state: the replayed batch (same
offsets) makes the same decisions, rewrites the same objects and skips the documents already inserted. A
crash after it: the replay finds every event at or below the state's offset applied and skips them.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from lab import catalog, metrics, storage
from lab.config import settings
from lab.streaming import live_effects, live_io
from lab.streaming.common import Received, decode_rows, flush_dead_letters
from lab.streaming.live_effects import STATE_NAME, Outputs, submit_views, views  # noqa: F401  (re-exported)
from lab.streaming.live_logic import (
    STREAM_TYPE,
    Entry,
    StreamPlan,
    StreamState,
    batch_documents,
    compact,
    expand,
)

log = logging.getLogger(__name__)

RECORDING_PAGE = 256
FAULT_BEFORE_STATE = "live-crash-before-state"  # fault injection for tests and lesson 08 (see fault_point)


@dataclass(frozen=True)
class Stored:
    """A stream's state object: its state, the open recording page, and the last Kafka event applied."""

    state: StreamState
    page: tuple[Entry, ...] = ()
    partition: int = -1
    offset: int = -1

    def applied(self, item: Received) -> bool:
        return item.partition == self.partition and item.offset <= self.offset

    def to_json(self) -> bytes:
        return json.dumps({"stream_id": self.state.stream_id, "status": self.state.status, **self.state.to_doc(),
                           "page": compact(self.page),
                           "partition": self.partition, "offset": self.offset}).encode()

    @classmethod
    def from_json(cls, stream_id: str, text: str) -> Stored:
        doc = json.loads(text)
        state = StreamState.from_doc(stream_id, doc["status"], doc)
        first = state.verified_count - len(doc["page"])
        page = tuple(expand(doc["page"], first))
        return cls(state, page, int(doc["partition"]), int(doc["offset"]))


@dataclass
class Summary:
    """What a task did, for the driver's metrics (executor processes serve no /metrics)."""

    chunks: int = 0
    gaps: int = 0
    checksum_failures: int = 0
    dead_letters: int = 0
    replayed: int = 0
    duplicates: int = 0
    latencies_s: list[float] = field(default_factory=list)
    waits_s: list[float] = field(default_factory=list)
    playlist_writes: Counter = field(default_factory=Counter)
    catalog_calls: Counter = field(default_factory=Counter)
    stages: dict[str, float] = field(default_factory=dict)

    def add(self, other: Summary) -> None:
        for name in ("chunks", "gaps", "checksum_failures", "dead_letters", "replayed", "duplicates"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.latencies_s += other.latencies_s
        self.waits_s += other.waits_s
        self.playlist_writes.update(other.playlist_writes)
        self.catalog_calls.update(other.catalog_calls)
        for stage, seconds in other.stages.items():
            self.stages[stage] = self.stages.get(stage, 0.0) + seconds

    def export(self, *, remote: bool) -> None:
        """Into this process's metrics (the driver's, or the plain consumer's). `remote`: the work ran in
        other processes (Spark's Python workers), so their dead letters and catalog calls are added here
        too. Stage times are exported by the caller: once per task, not summed over parallel tasks."""
        metrics.chunks_processed.labels(STREAM_TYPE).inc(self.chunks)
        metrics.live_chunk_gaps.inc(self.gaps)
        metrics.chunk_checksum_failures.labels(STREAM_TYPE).inc(self.checksum_failures)
        metrics.live_replayed_events.inc(self.replayed)
        metrics.live_duplicates_skipped.inc(self.duplicates)
        for kind, count in self.playlist_writes.items():
            metrics.playlist_writes.labels(kind).inc(count)
        if remote:
            metrics.dead_letters.labels(settings.live_topic).inc(self.dead_letters)
            for (collection, operation), count in self.catalog_calls.items():
                metrics.catalog_operations.labels(collection, operation).inc(count)
        for seconds in self.latencies_s:
            metrics.chunk_processing_latency.labels(STREAM_TYPE).observe(seconds)
        for seconds in self.waits_s:  # publish -> the task has its rows: Kafka, the trigger, scheduling
            metrics.live_batch_stage.labels("wait").observe(seconds)


# --- state objects ---------------------------------------------------------------------------------------

def read_stored(outputs: Outputs, stream_id: str) -> Stored | None:
    """The stream's state object; the first time, the catalog says whether the stream exists (None: no)."""
    text = storage.get_text(settings.bucket_manifests, outputs.state_key(stream_id))
    if text:
        return Stored.from_json(stream_id, text)
    if outputs.prefix:  # a bench namespace starts every stream fresh, whatever the lab's query recorded
        doc = live_io.find_by_id(catalog.LIVE, catalog.stream_doc_id(stream_id), {"status": 1})
        return None if doc is None else Stored(StreamState(stream_id, doc.get("status", "live")))
    known = live_io.read_known(stream_id)  # also takes over a stream the driver engine was keeping
    if known is None:
        return None
    if known.state.version and known.entries is None:
        entries = live_io.read_entries(outputs.chunks, known.state)
        page = tuple(e for e in entries if e.playlist_seq >= len(entries) - len(entries) % RECORDING_PAGE)
        if len(entries) >= RECORDING_PAGE:
            write_pages(outputs, stream_id, entries[: len(entries) - len(page)])
        return Stored(known.state, page)
    return Stored(known.state)


def write_stored(outputs: Outputs, stored: Stored) -> None:
    storage.put(settings.bucket_manifests, outputs.state_key(stored.state.stream_id), stored.to_json(),
                content_type="application/json", cache_control="no-store")


def write_pages(outputs: Outputs, stream_id: str, entries: Sequence[Entry]) -> None:
    """Full recording pages, each an immutable object (rewritten identically by a replay)."""
    for start in range(0, len(entries) - len(entries) % RECORDING_PAGE, RECORDING_PAGE):
        page = entries[start:start + RECORDING_PAGE]
        body = json.dumps(compact(page)).encode()
        storage.put(settings.bucket_manifests, outputs.page_key(stream_id, page[0].playlist_seq // RECORDING_PAGE),
                    body, content_type="application/json", cache_control="no-store")


def read_recording(outputs: Outputs, stored: Stored) -> list[Entry]:
    full = (stored.state.verified_count - len(stored.page)) // RECORDING_PAGE
    pages = live_io.parallel(lambda n: json.loads(storage.get_text(
        settings.bucket_manifests, outputs.page_key(stored.state.stream_id, n)) or "[]"), range(full))
    entries = [e for n, page in enumerate(pages) for e in expand(page, n * RECORDING_PAGE)]
    return entries + list(stored.page)


def advance(stored: Stored, plan: StreamPlan, items: Sequence[Received]) -> tuple[Stored, list[Entry]]:
    """The state object after the plan, and the recording pages it closed (to write before it)."""
    recording = list(stored.page) + plan.added
    keep = len(recording) % RECORDING_PAGE  # the open page starts on a page boundary: closed pages are full
    closed, page = recording[: len(recording) - keep], tuple(recording[len(recording) - keep:])
    last = items[-1] if items else None
    after = Stored(plan.after, page, last.partition if last else stored.partition,
                   last.offset if last else stored.offset)
    return after, closed


# --- fault injection ----------------------------------------------------------------------------------------

def fault_point(stream_ids: Iterable[str]) -> None:
    """Die like a killed process (no clean-up, no exception handling) after the playlist writes and right
    before the state writes, when `{LAB_STATE_DIR}/faults/live-crash-before-state` names a stream of this
    batch (both engines call it). One shot: the file is removed first, so the restarted job gets past."""
    marker = Path(settings.lab_state_dir) / "faults" / FAULT_BEFORE_STATE
    try:
        target = marker.read_text().strip()
    except OSError:
        return
    if target in set(stream_ids):
        marker.unlink(missing_ok=True)
        log.error("fault injection: dying before the state write of stream %s", target)
        os._exit(17)


# --- one batch's events (a task's partition, or a plain consumer's poll) -------------------------------------

def process_received(received: Sequence[Received], batch_id: int, outputs: Outputs) -> Summary:
    summary, stages = Summary(), live_io.Stages()
    by_stream, summary.dead_letters = live_io.group_live_events(received)
    ids = list(by_stream)
    stored = {sid: s for sid, s in zip(ids, live_io.parallel(lambda s: read_stored(outputs, s), ids),
                                       strict=True) if s is not None}
    for sid in [s for s in ids if s not in stored]:
        summary.dead_letters += live_io.refuse_unknown_stream(sid, by_stream.pop(sid))
    if summary.dead_letters:
        flush_dead_letters()
    for sid, items in by_stream.items():  # a replay: what the state object already counts is done
        by_stream[sid] = [i for i in items if not stored[sid].applied(i)]
        summary.replayed += len(items) - len(by_stream[sid])
    states = {sid: s.state for sid, s in stored.items()}
    plans = live_io.plan_streams(outputs.chunks, states, by_stream, stages)
    written = record_plans(outputs, plans, batch_id, summary, stages)
    advanced = {p.after.stream_id: advance(stored[p.after.stream_id], p, by_stream[p.after.stream_id])
                for p in plans if p.new_chunks or p.end}
    live_io.parallel(lambda sid: write_pages(outputs, sid, advanced[sid][1]), list(advanced))
    live_io.parallel(lambda sid: write_stored(outputs, advanced[sid][0]),
                     [p.after.stream_id for p in plans if p.new_chunks and not p.end])
    stages.mark("state_write")
    for plan in (p for p in plans if p.end is not None):
        finish_stream(outputs, advanced[plan.after.stream_id][0], plan.end, summary)
    submit_views(outputs, plans, written)
    observe(summary, plans, written)
    stages.mark("finish")
    summary.stages = stages.seconds
    return summary


def record_plans(outputs: Outputs, plans: Sequence[StreamPlan], batch_id: int, summary: Summary,
                 stages: live_io.Stages) -> dict[str, datetime]:
    """The playlists, then the chunk and state documents (inserts), then the fault point before the engine's
    own state write: the executor and state-store engines' order. Returns when each playlist was written."""
    written = write_playlists(outputs, plans, summary)
    stages.mark("playlist")
    chunks, states = batch_documents(plans, written, batch_id)
    summary.duplicates += len(chunks) - live_io.insert_in_order(outputs.chunks, chunks)
    live_io.insert_in_order(outputs.states, states)
    stages.mark("catalog")
    fault_point(p.after.stream_id for p in plans if p.new_chunks)
    return written


def write_playlists(outputs: Outputs, plans: Iterable[StreamPlan], summary: Summary) -> dict[str, datetime]:
    written = live_effects.write_playlists(outputs, plans)
    summary.playlist_writes["live"] += len(written)
    return written


def finish_stream(outputs: Outputs, stored: Stored, end: Received, summary: Summary) -> None:
    """The end marker: the shared end-of-stream write (the recording, ENDLIST, status `vod`; the same bytes
    and documents on a replay), then the state object says so."""
    state = replace(stored.state, status="vod")
    entries = read_recording(outputs, stored)
    write_final(outputs, state, entries, end, summary)
    write_stored(outputs, Stored(state, stored.page, end.partition, end.offset))
    log.info("stream %s ended: %d segments in the recording", state.stream_id, len(entries))


def write_final(outputs: Outputs, state: StreamState, entries: Sequence[Entry], end: Received,
                summary: Summary) -> None:
    """The shared end-of-stream write (live_effects.write_final), counted in the task's summary."""
    live_effects.write_final(outputs, state, entries, end)
    summary.playlist_writes.update(live_effects.FINAL_WRITES)


def observe(summary: Summary, plans: Iterable[StreamPlan], written: dict[str, datetime]) -> None:
    for plan in plans:
        summary.gaps += plan.gaps
        summary.duplicates += len(plan.chunks) - len(plan.new_chunks)
        if plan.gaps:
            log.warning("stream %s: %d sequence number(s) missing", plan.after.stream_id, plan.gaps)
        at = written.get(plan.after.stream_id)
        for decision in plan.new_chunks:
            summary.chunks += 1
            if decision.checksum_ok is False:
                summary.checksum_failures += 1
                log.warning("stream %s chunk %d kept out of the playlist: %s", plan.after.stream_id,
                            decision.event.chunk_index, decision.reason)
            if decision.action == "playlist" and at is not None:
                summary.latencies_s.append(max(0.0, at.timestamp() - decision.event.published_at_ms / 1000))


# --- the Spark task ------------------------------------------------------------------------------------------

def run_partition(rows: Iterator[Any], *, batch_id: int, outputs: Outputs) -> Iterator[Summary]:
    """mapPartitions over one Kafka partition's rows of a micro-batch; yields one Summary."""
    started = time.time()
    received, refused = decode_rows(rows)
    summary = process_received(received, batch_id, outputs) if received else Summary()
    summary.dead_letters += refused
    summary.waits_s = [max(0.0, started - i.event.published_at_ms / 1000) for i in received]
    summary.catalog_calls = live_io.take_tally()
    yield summary
