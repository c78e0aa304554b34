"""The state-store engine (LIVE_ENGINE=statestore): Spark's textbook per-key state, the reference Spark design
`lab bench live` measures beside the others. `transformWithStateInPandas` keyed by `stream_id`, RocksDB state.

Each stream's state lives in the query's state store (RocksDB, checkpointed with the query): a ValueState
`state` (the `StreamState` as one JSON string: one get and one update per stream per batch, and no schema to
evolve when a field is added) and a ListState `recording` (chunk_index, duration_ms, captured_at_ms of every verified
segment; an entry's position is its playlist_seq), read whole only at the end marker, then cleared.
`handleInputRows` runs on the executors, once per stream and batch: validate (invalid events go to the
dead-letter topic), plan (`plan_stream`), verify SHA-256, PUT the playlist, insert the chunk and state
documents (deterministic `_id`s: the catalog is written, never scanned), then update the state. The driver
only adds up one small summary row per stream (foreachBatch) into its metrics.

Exactly once: a failed batch is replayed with the same offsets against the state store's previous version
(a version is committed only with its batch), so the replay makes the same decisions, rewrites the same
playlist bytes and finds its documents already inserted (duplicates skipped).
What differs from the S3-object design (`live_task`): no state GET/PUT and no offsets in the state, but a
shuffle by key (a second stage per batch), streams of a partition handled one after another (no parallel I/O
across them), and every state access is a round trip between the Python worker and the JVM's state server.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.sql.streaming import StatefulProcessor, StatefulProcessorHandle

from lab import metrics
from lab.streaming import live_io, live_task
from lab.streaming.common import Received, decode_rows, flush_dead_letters
from lab.streaming.live_logic import (
    Entry,
    StreamPlan,
    StreamState,
    compact,
    expand,
)
from lab.streaming.live_task import Outputs, Summary
from lab.streaming.plain import Record

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

QUERY = "live"  # = live.QUERY: the label of spark_batch_duration_seconds that lab bench and lab soak read
STATE_SCHEMA = "doc STRING"
RECORDING_SCHEMA = "chunk_index INT, duration_ms INT, captured_at_ms LONG"
OUTPUT_SCHEMA = "stream_id STRING, summary STRING"
BATCH_ID = "streaming.sql.batchId"  # the local property Spark sets for every job of a micro-batch
COUNTS = ("chunks", "gaps", "checksum_failures", "dead_letters", "replayed", "duplicates")


# --- pure: the state and the summary row as strings ---------------------------------------------------

def state_to_json(state: StreamState) -> str:
    return json.dumps({"status": state.status, **state.to_doc()}, separators=(",", ":"))


def state_from_json(stream_id: str, text: str) -> StreamState:
    doc = json.loads(text)
    return StreamState.from_doc(stream_id, doc["status"], doc)


def summary_to_json(summary: Summary) -> str:
    doc: dict[str, Any] = {name: getattr(summary, name) for name in COUNTS}
    doc.update(latencies_s=summary.latencies_s, waits_s=summary.waits_s, stages=summary.stages,
               playlist_writes=dict(summary.playlist_writes),
               catalog_calls=[[c, op, n] for (c, op), n in summary.catalog_calls.items()])
    return json.dumps(doc, separators=(",", ":"))


def summary_from_json(text: str) -> Summary:
    doc = json.loads(text)
    return Summary(**{name: int(doc[name]) for name in COUNTS},
                   latencies_s=[float(s) for s in doc["latencies_s"]], waits_s=[float(s) for s in doc["waits_s"]],
                   playlist_writes=Counter(doc["playlist_writes"]),
                   catalog_calls=Counter({(c, op): n for c, op, n in doc["catalog_calls"]}),
                   stages={k: float(v) for k, v in doc["stages"].items()})


def records(frames: Iterable[pd.DataFrame]) -> list[Record]:
    """The group's rows (pandas frames of the Kafka columns) as the records `decode_rows` reads."""
    return [Record(row.value, row.topic, int(row.partition), int(row.offset),
                   datetime.fromtimestamp(int(row.timestamp_ms) / 1000, UTC))
            for frame in frames for row in frame.itertuples(index=False)]


# --- the stateful processor ------------------------------------------------------------------------------

class LiveStreamProcessor(StatefulProcessor):
    """One instance per task on the executors (and one on the driver, for `init` only: the state schemas)."""

    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.state = handle.getValueState("state", STATE_SCHEMA)
        self.recording = handle.getListState("recording", RECORDING_SCHEMA)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame], timerValues: Any) -> Iterator[pd.DataFrame]:
        import pandas as pd

        stream_key = key[0]
        summary = process_group(self, stream_key, records(rows), batch_id(), self.outputs)
        yield pd.DataFrame({"stream_id": [stream_key], "summary": [summary_to_json(summary)]})

    def close(self) -> None:
        pass

    # the state store, for process_group
    def load(self, stream_id: str) -> tuple[StreamState, bool] | None:
        """(state, first sight); None: no such stream. The first time this query sees a stream, the stream
        document says whether it was started, and another engine's state for it is taken over."""
        value = self.state.get()
        if value is not None:
            return state_from_json(stream_id, value[0]), False
        stored = live_task.read_stored(self.outputs, stream_id)
        if stored is None:
            return None
        entries = live_task.read_recording(self.outputs, stored) if stored.state.verified_count else []
        if entries:
            self.recording.put([tuple(row) for row in compact(entries)])
        return stored.state, True

    def save(self, plan: StreamPlan, state: StreamState) -> None:
        if plan.added:
            self.recording.appendList([tuple(row) for row in compact(plan.added)])
        self.state.update((state_to_json(state),))

    def entries(self) -> list[Entry]:
        return expand(self.recording.get(), 0)

    def end(self, state: StreamState) -> None:
        """An ended stream keeps its small state (a stray event is refused), not its recording."""
        self.recording.clear()
        self.state.update((state_to_json(state),))


def batch_id() -> int:
    from pyspark import TaskContext

    context = TaskContext.get()
    value = context.getLocalProperty(BATCH_ID) if context else None
    if value is None:
        raise RuntimeError(f"no {BATCH_ID} in this task's context: not running inside a streaming query")
    return int(value)


def process_group(store: LiveStreamProcessor, stream_key: str, rows: list[Record], batch: int,
                  outputs: Outputs) -> Summary:
    """One stream's events of one batch: the same steps and writes as live_task.process_received."""
    started = time.time()
    summary, stages = Summary(), live_io.Stages()
    received, summary.dead_letters = decode_rows(rows)
    summary.waits_s = [max(0.0, started - i.event.published_at_ms / 1000) for i in received]
    items = own_events(received, stream_key, summary)
    loaded = store.load(stream_key) if items else None
    if items and loaded is None:
        summary.dead_letters += live_io.refuse_unknown_stream(stream_key, items)
        flush_dead_letters()
    if items and loaded is not None:
        apply(store, *loaded, items, batch, outputs, summary, stages)
    summary.catalog_calls = live_io.take_tally()
    summary.stages = stages.seconds
    return summary


def own_events(received: Iterable[Received], stream_key: str, summary: Summary) -> list[Received]:
    """The group's live events; anything else (other event types, bad keys) goes to the dead-letter topic."""
    by_stream, refused = live_io.group_live_events(received)
    summary.dead_letters += refused
    for sid, strays in by_stream.items():
        if sid != stream_key:  # grouped by the value's first `stream_id`; JSON with two of them decodes otherwise
            for item in strays:
                live_io.dead_letter(item, f"stream_id: {sid!r} is ambiguous in this event")
            summary.dead_letters += len(strays)
    if by_stream.keys() - {stream_key}:
        flush_dead_letters()
    return by_stream.get(stream_key, [])


def apply(store: LiveStreamProcessor, state: StreamState, first: bool, items: list[Received], batch: int,
          outputs: Outputs, summary: Summary, stages: live_io.Stages) -> None:
    [plan] = live_io.plan_streams(outputs.chunks, {state.stream_id: state}, {state.stream_id: items}, stages)
    written = live_task.record_plans(outputs, [plan], batch, summary, stages)  # tests die before the state update
    if plan.new_chunks or plan.end or first:
        store.save(plan, plan.after)
    stages.mark("state_write")
    if plan.end is not None:
        finish_stream(store, outputs, plan.after, plan.end, summary)
    live_task.submit_views(outputs, [plan], written)
    live_task.observe(summary, [plan], written)
    stages.mark("finish")


def finish_stream(store: LiveStreamProcessor, outputs: Outputs, state: StreamState, end: Received,
                  summary: Summary) -> None:
    """The end marker: the recording as a finished playlist, status `vod` (the same writes as live_task's,
    the same on a replay: the end time is the marker's Kafka time, the history entry added with $addToSet)."""
    state = replace(state, status="vod")
    entries = store.entries()
    if len(entries) != state.verified_count:
        log.error("stream %s: %d segments recorded, the state counts %d", state.stream_id, len(entries),
                  state.verified_count)
    live_task.write_final(outputs, state, entries, end, summary)
    store.end(state)
    log.info("stream %s ended: %d segments in the recording", state.stream_id, len(entries))


# --- the query --------------------------------------------------------------------------------------------

def transform(kafka_rows: DataFrame, outputs: Outputs) -> DataFrame:
    """Kafka rows -> one summary row per stream and batch. Grouped by the event's own `stream_id` (the Kafka
    key is the same by contract), so this engine accepts and refuses exactly what the others do; rows whose
    value has none (not JSON, no field) form the group "" and are dead-lettered there."""
    from pyspark.sql import functions as F

    stream_id = F.get_json_object(F.col("value").cast("string"), "$.stream_id")
    return (kafka_rows
            .select(F.coalesce(stream_id, F.lit("")).alias("stream_key"), "value", "topic", "partition", "offset",
                    F.unix_millis("timestamp").alias("timestamp_ms"))
            .groupBy("stream_key")
            .transformWithStateInPandas(LiveStreamProcessor(outputs), outputStructType=OUTPUT_SCHEMA,
                                        outputMode="Update", timeMode="None"))


def export_summaries(batch_df: DataFrame, batch_id: int) -> None:
    """foreachBatch: running the stateful stage happens here (one collect: a second action would run it
    again); its summary rows go into the driver's metrics, stage times once per stream."""
    started = time.perf_counter()
    total = Summary()
    for row in batch_df.collect():
        summary = summary_from_json(row.summary)
        total.add(summary)
        for stage, seconds in summary.stages.items():
            metrics.live_batch_stage.labels(stage).observe(seconds)
    total.export(remote=True)
    metrics.batch_duration.labels(QUERY).observe(time.perf_counter() - started)


def read_states(spark: SparkSession, checkpoint: Path) -> dict[str, StreamState]:
    """Every stream's state as the query's last committed batch left it, read from its checkpoint with Spark's
    state data source: what a restarted query starts from (a lesson inspects it; the tests check it)."""
    rows = (spark.read.format("statestore").option("path", str(checkpoint)).option("stateVarName", "state")
            .load().collect())
    return {r.key.stream_key: state_from_json(r.key.stream_key, r.value.doc) for r in rows}
