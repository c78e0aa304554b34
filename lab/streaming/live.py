"""The live query: `live-chunks` -> verified segments -> one rolling DVR playlist per stream, and the whole
recording as a finished playlist when the stream's end marker arrives.

Three Spark engines, one setting (LIVE_ENGINE; default: see LIVE_ENGINE in lab/config.py), the same
decisions (`live_logic.plan_stream`):
- `executors` (`live_task`): each Kafka partition's events are handled in the task that reads it;
  state in one small S3 object per stream; the driver only collects the tasks' summaries.
- `driver` (this module): the batch is collected to the driver, which does everything; state in the
  catalog (insert-only versions in `live_state`, the newest few kept), cached in driver memory.
- `statestore` (`live_statestore`): Spark's own per-key state, transformWithStateInPandas keyed by
  `stream_id` with the RocksDB state store, after a shuffle by key: the reference Spark design.
`plain` (a confluent-kafka consumer loop, no Spark) runs `live_task` too: the floor `lab bench live` compares
them with.

Follow one batch of the driver engine (`process_live_batch`):
  1. collect and validate the Kafka rows; invalid ones go to the dead-letter topic      common.split_batch
  2. the state of every stream in the batch (from the catalog the first time)           StateCache.load
  3. verify each new segment's SHA-256 against the bytes in the bucket (parallel GETs)   live_io.plan_streams
  4. decide, per stream: duplicates, gaps, checksum failures, playlist sequence numbers    -> plan_stream (pure)
  5. write ONE playlist per stream (parallel PUTs)                                       write_live_playlists
  6. insert the new chunk documents, then each stream's new state (two inserts)          record_batch
  7. end markers: the recording (VOD), ENDLIST on the live playlist, status `vod`       finish_stream

Where the driver engine's state lives: in the catalog, not in driver memory. After each batch that recorded
chunks of a stream, its state is inserted as a new version in `live_state`, after the chunk documents it
counts. A crash part-way leaves chunks without their state, never the reverse. A restarted job, or a batch
Spark replays, reads the newest state back, finds the chunks it already recorded (duplicates: skipped), and
makes the same decisions for the rest, so the playlist it rewrites and the documents it inserts are the same.

Why inserts and `_id` lookups only: FerretDB's SQLite backend (the embedded catalog) inserts in ~0.5 ms,
updates in 15-40 ms each, and answers any filter but `_id` equality by scanning the whole collection;
an `_id` equality is a cheaper scan that still grows with the collection (catalog.doc_id). So documents get
`_id`s derived from their key, nothing on the batch's path queries by another field, and the stream
document's live view is refreshed by a background writer, latest value wins: it is a view.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from lab import catalog, metrics, storage
from lab.config import settings
from lab.streaming import live_effects, live_io
from lab.streaming.common import KAFKA_COLUMNS, Received, flush_dead_letters, split_batch
from lab.streaming.live_io import Known, Stages, read_entries, read_known
from lab.streaming.live_logic import (
    STREAM_TYPE,
    Entry,
    StreamPlan,
    StreamState,
    batch_documents,
)
from lab.streaming.live_task import Outputs, Summary, fault_point, run_partition

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY = "live"
ENGINES = ("executors", "driver", "statestore")


# =====================================================================================================
# The driver engine: state cached in driver memory, read from the catalog once per stream
# =====================================================================================================

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
        for sid, known in zip(missing, live_io.parallel(read_known, missing), strict=True):
            if known is not None:
                self.known[sid] = known
        return {sid: self.known[sid].state for sid in wanted if sid in self.known}

    def update(self, plans: Iterable[StreamPlan]) -> None:
        for plan in plans:
            known = self.known[plan.after.stream_id]
            known.state = plan.after
            if known.entries is not None:
                known.entries += plan.added

    def entries(self, stream_id: str) -> list[Entry]:
        known = self.known[stream_id]
        if known.entries is None:
            known.entries = read_entries(catalog.LIVE, known.state)
        return known.entries

    def forget(self, stream_id: str) -> None:
        """An ended stream: a stray later event reads it back from the catalog."""
        self.known.pop(stream_id, None)



STATES = StateCache()
OUTPUTS = Outputs()  # the driver engine writes only the lab's own outputs
VIEWS = live_effects.views(OUTPUTS)


def load_states(stream_ids: Iterable[str]) -> dict[str, StreamState]:
    return STATES.load(stream_ids)


def write_live_playlists(plans: Iterable[StreamPlan]) -> dict[str, datetime]:
    written = live_effects.write_playlists(OUTPUTS, plans)
    metrics.playlist_writes.labels("live").inc(len(written))
    return written


def record_batch(plans: Sequence[StreamPlan], written: Mapping[str, datetime], batch_id: int) -> None:
    """The new chunks, then the streams' new states (inserts only), then the views in the background.
    The order makes a crash part-way harmless: a state in the catalog implies its chunks are recorded."""
    chunks, states = batch_documents(plans, written, batch_id)
    if chunks:
        inserted = live_io.insert_in_order(catalog.LIVE, chunks)
        metrics.live_duplicates_skipped.inc(len(chunks) - inserted)  # recorded by a first attempt of this batch
    if states:
        live_io.insert_in_order(catalog.LIVE_STATE, states)
    STATES.update(plans)
    for plan in plans:
        if plan.new_chunks:
            fields = {**plan.after.view_fields(), "state_version": plan.after.version}
            if plan.after.stream_id in written:
                fields["manifest_updated_at"] = written[plan.after.stream_id]
            VIEWS.submit(plan.after.stream_id, fields)


def finish_stream(state: StreamState, end: Received) -> None:
    """The end marker: the shared end-of-stream write (live_effects.write_final: the recording, ENDLIST on
    the live playlist, status `vod`; deterministic, so a replay writes the same), then forget the stream."""
    entries = STATES.entries(state.stream_id)
    if [e.playlist_seq for e in entries] != list(range(len(entries))):
        log.error("stream %s: playlist sequence numbers are not contiguous: %s", state.stream_id,
                  [e.playlist_seq for e in entries])
    live_effects.write_final(OUTPUTS, replace(state, status="vod"), entries, end)
    for kind in live_effects.FINAL_WRITES:
        metrics.playlist_writes.labels(kind).inc()
    STATES.forget(state.stream_id)
    log.info("stream %s ended: %d segments in the recording", state.stream_id, len(entries))


def process_events(received: Sequence[Received], batch_id: int, stages: Stages | None = None) -> None:
    """Everything after the Kafka rows are collected (Spark-free, so a notebook can call it too)."""
    stages = stages or Stages()
    by_stream, refused = live_io.group_live_events(received)
    states = load_states(by_stream)
    for sid in [s for s in by_stream if s not in states]:
        refused += live_io.refuse_unknown_stream(sid, by_stream.pop(sid))
    if refused:
        flush_dead_letters()
    plans = live_io.plan_streams(catalog.LIVE, states, by_stream, stages)
    written = write_live_playlists(plans)
    stages.mark("playlist")
    fault_point(p.after.stream_id for p in plans if p.new_chunks)  # tests: die before the state insert
    record_batch(plans, written, batch_id)
    stages.mark("catalog")
    observe(plans, written)
    for plan in plans:
        if plan.end is not None:
            finish_stream(plan.after, plan.end)
    if any(p.end for p in plans):
        stages.mark("finish")


def observe(plans: Iterable[StreamPlan], written: Mapping[str, datetime]) -> None:
    for plan in plans:
        at = written.get(plan.after.stream_id)
        if plan.gaps:
            metrics.live_chunk_gaps.inc(plan.gaps)
            log.warning("stream %s: %d sequence number(s) missing", plan.after.stream_id, plan.gaps)
        metrics.live_duplicates_skipped.inc(len(plan.chunks) - len(plan.new_chunks))
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
    """foreachBatch of the driver engine: a replay of the same batch_id rewrites the same objects and
    documents."""
    started = time.perf_counter()
    stages = Stages()
    received = split_batch(batch_df)
    stages.mark("collect")
    if received:
        now = time.time()
        for item in received:  # publish -> rows on the driver: Kafka, waiting for the trigger, collect
            metrics.live_batch_stage.labels("wait").observe(max(0.0, now - item.event.published_at_ms / 1000))
        process_events(received, batch_id, stages)
    stages.export()
    metrics.batch_duration.labels(QUERY).observe(time.perf_counter() - started)


# =====================================================================================================
# The executor engine: the work runs in the tasks (live_task); the driver adds up their summaries
# =====================================================================================================

def process_live_batch_on_executors(batch_df: DataFrame, batch_id: int, *, outputs: Outputs) -> None:
    """foreachBatch of the executor engine: one task per Kafka partition, no shuffle (a stream's events
    are all in one partition); each task returns one small Summary."""
    started = time.perf_counter()
    task = partial(run_partition, batch_id=batch_id, outputs=outputs)
    summaries = batch_df.select(*KAFKA_COLUMNS).rdd.mapPartitions(task).collect()
    total = Summary()
    for summary in summaries:
        total.add(summary)
        for stage, seconds in summary.stages.items():  # per task: the tasks of a batch run side by side
            metrics.live_batch_stage.labels(stage).observe(seconds)
    total.export(remote=True)
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


def checkpoint_dir(name: str, engine: str) -> Path:
    """The driver and executor engines share one checkpoint (Kafka offsets only: either continues where the
    other stopped); the state-store engine's holds its state too, so it has its own."""
    return settings.lab_state_dir / "checkpoints" / (f"{name}-statestore" if engine == "statestore" else name)


def batch_function(engine: str, outputs: Outputs):
    if engine == "driver":
        if outputs.prefix:
            raise ValueError("the driver engine writes only the lab's own outputs")
        return process_live_batch
    if engine == "executors":
        return partial(process_live_batch_on_executors, outputs=outputs)
    if engine == "statestore":
        from lab.streaming import live_statestore

        return live_statestore.export_summaries  # the work runs in the stateful stage (see start)
    raise ValueError(f"LIVE_ENGINE: {engine!r} is not one of {', '.join(ENGINES)}")


def start(spark: SparkSession, *, writer_options: Mapping[str, str] | None = None, engine: str | None = None,
          outputs: Outputs | None = None, starting_offsets: str = "earliest") -> StreamingQuery:
    """The live query with LIVE_ENGINE's design (or `engine`); `outputs` and `starting_offsets` let a
    benchmark run a second live query into its own namespace; `writer_options` are extra DataStreamWriter
    options (benchmarks try them)."""
    from lab.streaming import session

    engine, outputs = engine or settings.live_engine, outputs or Outputs()
    function = batch_function(engine, outputs)
    storage.s3(), catalog.client()  # connect before the first batch, not inside its latency
    name = QUERY if not outputs.prefix else f"{QUERY}-{outputs.prefix}"
    rows = session.kafka_stream(spark, settings.live_topic, starting_offsets=starting_offsets,
                                options=READER_OPTIONS)
    if engine == "statestore":
        from lab.streaming import live_statestore

        rows = live_statestore.transform(rows, outputs)
    writer = (rows.writeStream.queryName(name)
              .option("checkpointLocation", str(checkpoint_dir(name, engine)))
              .outputMode("update" if engine == "statestore" else "append")
              .trigger(**trigger_options()))
    for key, value in (writer_options or {}).items():
        writer = writer.option(key, value)
    log.info("live query %s: %s engine", name, engine)
    return writer.foreachBatch(function).start()
