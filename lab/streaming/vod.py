"""The VOD query, driver side: `vod-chunks` -> raw segments transcoded to every rung on Spark executors -> ABR HLS.

Three modules, read in this order:
  vod_plan.py   the decisions, pure (statuses, batch plans, segment documents, playlists)
  vod.py        this file: the driver, per batch: catalog reads and writes, statuses, tasks, metrics, the query
  vod_task.py   the executor task (one raw segment -> every rung, in S3) and Spark's Python daemon module

Follow one batch (`process_vod_batch`):
  1. collect and validate the Kafka rows; invalid ones go to the dead-letter topic       common.split_batch
  2. load the stream document of each stream in the batch (by `_id`); events of an unknown
     stream, or that contradict their stream's document, are dead-lettered             vod_plan.plan_batch
  3. leave out what needs no work (a replay): streams already ready or failed, and
     segments already done (the stream document's `segment_results`)                   vod_plan.plan_batch
  4. status `processing`: the batch has taken the stream's segments and submits their tasks; a stream
     waits here while the executor cores are busy with other segments                    process_events
  5. the segments spread over every executor core, one task per segment: download the raw segment,
     verify its SHA-256, ONE ffmpeg encodes every rung, upload each rendition with its own SHA-256;
     status `transcoding` once the first task of the stream has started on an executor   run_tasks, vod_task
  6. results back on the driver: the segment documents and the stream document's
     `segment_results`, in one bulk write; metrics                                      record_results
  7. per stream: `failed` with the reason if any segment failed (never `ready` with
     holes); once every segment is done, the media playlists, then the master, then
     `ready`                                                                            finish_streams

Why one task per segment: the events of one upload all carry the same key (stream_id), so they sit in ONE
Kafka partition and Spark would read them in one task. `parallelize(..., numSlices=len(segments))` turns
them into as many tasks as segments, and the scheduler hands each free core the next one.

Replays: `foreachBatch` sees the same rows again after a restart from an older checkpoint. A segment
already `done` is not transcoded again and a stream already `ready` is not touched at all, so a replay
changes nothing in the catalog or the buckets. A crash between two steps replays into the same writes:
objects and documents are keyed by (stream_id, rung, chunk_index), playlists are rebuilt from the stream
document (the same bytes), and a status only ever moves forward.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from lab import catalog, events, metrics, storage
from lab.config import settings
from lab.streaming.common import Received, flush_dead_letters, send_dead_letter, split_batch
from lab.streaming.vod_plan import (
    TERMINAL,
    BatchPlan,
    build_playlists,
    can_move,
    chunk_fields,
    latency_ms,
    plan_batch,
    rendition_facts,
    segment_results,
    segment_summary,
    stream_verdict,
)
from lab.streaming.vod_task import transcode_task

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY = "vod"
STREAM_TYPE = "vod"
TRANSIENT_ATTEMPTS = 3
TRANSIENT_BACKOFF_S = 2.0
STARTED_POLL_S = 0.05  # how often the driver asks Spark's status tracker whether segment tasks have started

# =====================================================================================================
# Catalog, statuses, tasks, metrics, playlists
# =====================================================================================================

# Every catalog read and write of the query goes by `_id` alone (catalog.doc_id: FerretDB scans the whole
# collection for any other filter). Statuses are therefore checked in Python, not in the update's filter:
# safe because after the upload this query, on one driver, is the only writer of a VOD stream's document.

def load_stream(stream_id: str) -> dict[str, Any] | None:
    """The stream document with its `_id`, which later writes use."""
    return catalog.find_by_id(catalog.VOD, catalog.stream_doc_id(stream_id))


def load_streams(stream_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Stream documents by stream_id; a stream without one is simply absent."""
    docs = {sid: load_stream(sid) for sid in sorted(set(stream_ids))}
    metrics.catalog_operations.labels(catalog.VOD, "read").inc(len(docs))  # one find_one each
    return {sid: doc for sid, doc in docs.items() if doc is not None}


def advance(streams: Iterable[dict[str, Any]], status: str, extra: Mapping[str, Any] | None = None) -> list[str]:
    """Move streams forward to `status` with its time and a history entry (`can_move`: a replay or a late
    batch never moves a stream back). Updates the given documents too. Returns the ids that moved."""
    moved = []
    for doc in streams:
        if not can_move(doc["status"], status):
            continue
        now = catalog.now()
        entry: dict[str, Any] = {"status": status, "at": now}
        if extra and extra.get("failure_reason"):
            entry["reason"] = extra["failure_reason"]
        fields = {"status": status, f"{status}_at": now, **(extra or {})}
        catalog.collection(catalog.VOD).update_one({"_id": doc["_id"]},
                                                   {"$set": fields, "$push": {"status_history": entry}})
        doc.update(fields)
        moved.append(doc["stream_id"])
    metrics.catalog_operations.labels(catalog.VOD, "update").inc(len(moved))
    return moved


def ffmpeg_threads(sc: SparkContext) -> int:
    """Threads per ffmpeg = the cores one task owns (spark.task.cpus). Every core already transcodes its own
    segment, so more threads would only make the processes fight over the same cores (the README's VOD
    figures have the measurement)."""
    return max(1, int(sc.getConf().get("spark.task.cpus", "1")))


def run_tasks(sc: SparkContext, work: Sequence[events.VodChunkEvent], batch_id: int,
              on_started: Callable[[int], None] = lambda started: None) -> list[dict[str, Any]]:
    """One Spark task per segment: numSlices=len(work), so a stream's segments spread over every core.
    While they run, a watcher thread calls `on_started(n)` each time the number of tasks that have started
    grows (read from Spark's status tracker); task i is work[i]."""
    threads = ffmpeg_threads(sc)
    tasks = [{**e.model_dump(), "threads": threads} for e in work]
    # The job runs in the streaming query's job group (its run id: stopping the query cancels the job); the
    # watcher finds it there as the group's one job that did not exist before this call.
    group = sc.getLocalProperty("spark.jobGroup.id")
    tracker = sc.statusTracker()
    earlier = set(tracker.getJobIdsForGroup(group))
    sc.setJobDescription(f"vod batch {batch_id}: transcode {len(tasks)} segment(s)")
    submitted_ms = events.now_ms()
    finished = threading.Event()
    watcher = threading.Thread(target=_watch_started, args=(tracker, group, earlier, finished, on_started),
                               name=f"vod-started-{batch_id}", daemon=True)
    watcher.start()
    try:
        results = sc.parallelize(tasks, numSlices=len(tasks)).map(transcode_task).collect()
    finally:
        finished.set()
        watcher.join()
        sc.setJobDescription(None)
    wall = (events.now_ms() - submitted_ms) / 1000
    busy = sum(r.get("task_seconds", 0.0) for r in results)
    first_start = (min(r["started_at_ms"] for r in results) - submitted_ms) / 1000
    log.info("batch %d: %d segment task(s) in %.2f s wall, %.2f s inside tasks (first task began after %.2f s)",
             batch_id, len(results), wall, busy, first_start)
    return results


def _watch_started(tracker: Any, group: str | None, earlier: set[int], finished: threading.Event,
                   on_started: Callable[[int], None]) -> None:
    """Poll the status tracker until the job is over (one last look after). A failure here is logged and
    ends the watching: the statuses are then set when the results come back."""
    seen = 0
    try:
        while True:
            over = finished.wait(STARTED_POLL_S)
            started = _started_tasks(tracker, group, earlier)
            if started > seen:
                seen = started
                on_started(started)
            if over:
                return
    except Exception:
        log.exception("could not follow the segment tasks of job group %s", group)


def _started_tasks(tracker: Any, group: str | None, earlier: set[int]) -> int:
    """Tasks that have started (running, finished or failed) in the group's jobs not among `earlier`."""
    count = 0
    for job_id in set(tracker.getJobIdsForGroup(group)) - earlier:
        job = tracker.getJobInfo(job_id)
        for stage_id in job.stageIds if job else ():
            stage = tracker.getStageInfo(stage_id)
            if stage:
                count += stage.numActiveTasks + stage.numCompletedTasks + stage.numFailedTasks
    return count


def transcoding_marker(streams: Mapping[str, dict[str, Any]], work: Sequence[events.VodChunkEvent]
                       ) -> Callable[[int], None]:
    """`on_started` for run_tasks: a stream moves to `transcoding` once the task of its first segment in
    `work` has started. Spark's TaskSetManager queues a stage's tasks so that they launch in partition order
    (it adds them in reverse and pops from the end), so "n tasks started" means tasks 0..n-1."""
    first: dict[str, int] = {}
    for i, event in enumerate(work):
        first.setdefault(event.stream_id, i)

    def on_started(started: int) -> None:
        advance([streams[sid] for sid, i in first.items() if i < started], "transcoding")

    return on_started


def record_results(results: Sequence[Mapping[str, Any]], work: Mapping[tuple[str, int], events.VodChunkEvent],
                   streams: Mapping[str, Mapping[str, Any]], batch_id: int) -> None:
    """One ordered bulk write (catalog.bulk_write): every segment document, then each stream document's
    `segment_results` (the query's state goes last: a crash in between replays into the same writes). Then the metrics,
    observed here: executors are other processes, whose counters Prometheus never sees."""
    from pymongo import UpdateOne

    now = catalog.now()
    final = [r for r in results if r["error_kind"] != "transient"]
    # No upsert: the upload created every segment document.
    ops = [UpdateOne({"_id": catalog.doc_id(r["stream_id"], r["chunk_index"])},
                     {"$set": {**chunk_fields(r, batch_id), "transcoded_at": now}})
           for r in final]
    for sid in sorted({r["stream_id"] for r in final}):
        mine = [r for r in final if r["stream_id"] == sid]
        fields = {f"segment_results.{r['chunk_index']}":
                  segment_summary(r, work[(sid, r["chunk_index"])].duration_ms) for r in mine}
        fields.update({f"renditions.{rung}": facts for rung, facts in rendition_facts(mine).items()})
        ops.append(UpdateOne({"_id": streams[sid]["_id"]}, {"$set": fields}))
    if ops:
        catalog.bulk_write(catalog.VOD, ops)
        metrics.catalog_operations.labels(catalog.VOD, "update").inc(-(-len(ops) // catalog.WRITE_BATCH))
    for r in results:
        observe(r, work[(r["stream_id"], r["chunk_index"])].published_at_ms)


def observe(result: Mapping[str, Any], published_at_ms: int) -> None:
    if result["error_kind"] == "transient":
        return  # not processed yet: it is tried again
    metrics.chunks_processed.labels(STREAM_TYPE).inc()
    if result["error_kind"] == "checksum":
        metrics.chunk_checksum_failures.labels(STREAM_TYPE).inc()
    if not result["ok"]:
        log.warning("stream %s segment %d: %s", result["stream_id"], result["chunk_index"], result["error"])
        return
    # One ffmpeg makes every rung of a segment: its wall time is one observation per segment, with no rung.
    metrics.vod_transcode_seconds.observe(result["encode_seconds"])
    for rendition in result["renditions"]:
        metrics.variants_generated.labels(rendition["rung"]).inc()
    latency = (result["finished_at_ms"] - published_at_ms) / 1000
    metrics.chunk_processing_latency.labels(STREAM_TYPE).observe(max(0.0, latency))


def finish_streams(stream_ids: Sequence[str]) -> dict[str, str]:
    """Each stream's verdict applied: failed, or playlists + ready, or nothing yet. Returns the changes."""
    changes: dict[str, str] = {}
    for sid, doc in load_streams(stream_ids).items():
        if doc["status"] in TERMINAL:
            continue
        rungs = list(doc.get("rungs_planned") or [])
        results = segment_results(doc)
        verdict = stream_verdict(int(doc["total_chunks"]), rungs, results)
        if verdict.state == "failed":
            if advance([doc], "failed", {"failure_reason": verdict.reason}):
                metrics.vod_streams.labels("failed").inc()
                log.error("stream %s failed: %s", sid, verdict.reason)
                changes[sid] = "failed"
        elif verdict.state == "ready" and publish_stream(doc, rungs, results):
            changes[sid] = "ready"
    return changes


def publish_stream(doc: dict[str, Any], rungs: Sequence[str], results: Mapping[int, Mapping[str, Any]]) -> bool:
    """Media playlists first, the master last (it is what players open), then `ready`."""
    sid = doc["stream_id"]
    source = doc.get("source") or {}
    playlists = build_playlists(sid, rungs, {i: results[i] for i in range(int(doc["total_chunks"]))},
                                doc.get("renditions") or {}, fps=float(source.get("fps") or 0),
                                audio=bool(source.get("audio_codec")))
    for key, text in playlists:
        storage.put_playlist(settings.bucket_manifests, key, text, cache_control=storage.IMMUTABLE)
        metrics.playlist_writes.labels("vod_master" if key == storage.vod_master_key(sid) else "vod_media").inc()
    ready_at = catalog.now()
    latency = latency_ms(doc.get("uploaded_at"), ready_at)
    moved = advance([doc], "ready", {
        "ready_at": ready_at, "manifest_path": f"{settings.bucket_manifests}/{storage.vod_master_key(sid)}",
        "variants_generated": list(rungs), "processing_latency_ms": latency,
        "variant_paths": [f"{settings.bucket_manifests}/{storage.vod_media_playlist_key(sid, r)}" for r in rungs],
    })
    if moved:
        metrics.vod_streams.labels("ready").inc()
        if latency is not None:
            metrics.vod_processing_latency.observe(latency / 1000)
        log.info("stream %s ready: %d segments x %s, upload->ready %.1f s", sid, len(results), list(rungs),
                 (latency or 0) / 1000)
    return bool(moved)


def dead_letter_refused(refused: Sequence[tuple[Received, str]]) -> None:
    for item, reason in refused:
        # The original bytes are not kept after validation; the re-encoded event carries the same fields.
        send_dead_letter(events.encode(item.event), reason, topic=settings.vod_topic,
                         partition=item.partition, offset=item.offset)
    if refused:
        flush_dead_letters()


def process_events(sc: SparkContext, received: Sequence[Received], batch_id: int) -> BatchPlan:
    """Everything after the Kafka rows are collected (steps 2-7)."""
    streams = load_streams(r.event.stream_id for r in received)
    plan = plan_batch(received, streams)
    dead_letter_refused(plan.refused)
    if plan.skipped:
        log.info("batch %d: %d event(s) need no work (replayed, or their stream is finished)",
                 batch_id, plan.skipped)
    if plan.work:
        # In stream order, so each stream's segments are neighbours in the task list (see transcoding_marker).
        work = sorted(plan.work, key=lambda e: (e.stream_id, e.chunk_index))
        advance([streams[sid] for sid in sorted({e.stream_id for e in work})], "processing")
        transcode(sc, work, streams, batch_id)
    finish_streams(plan.touched)
    return plan


def transcode(sc: SparkContext, work: Sequence[events.VodChunkEvent], streams: Mapping[str, dict[str, Any]],
              batch_id: int) -> None:
    """Run the segment tasks and record them. A segment that failed for a reason outside it (S3 or the
    network: `transient`) is tried again a few times; if it still fails the batch fails, so Spark runs it
    again from the checkpoint after a restart, and the segments recorded here are not transcoded twice."""
    by_key = {(e.stream_id, e.chunk_index): e for e in work}
    pending = list(work)
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        results = run_tasks(sc, pending, batch_id, transcoding_marker(streams, pending))
        # Every task returned, so every stream of this attempt has started, even if the watcher missed it.
        transcoding_marker(streams, pending)(len(pending))
        record_results(results, by_key, streams, batch_id)
        again = {(r["stream_id"], r["chunk_index"]): r for r in results if r["error_kind"] == "transient"}
        if not again:
            return
        first = next(iter(again.values()))["error"]
        if attempt == TRANSIENT_ATTEMPTS:
            raise RuntimeError(f"batch {batch_id}: {len(again)} segment(s) still failing after {attempt} "
                               f"attempts, first: {first}")
        log.warning("batch %d: %d segment(s) hit an infrastructure error (%s); trying again", batch_id,
                    len(again), first)
        time.sleep(TRANSIENT_BACKOFF_S * attempt)
        pending = [e for e in pending if (e.stream_id, e.chunk_index) in again]


def process_vod_batch(batch_df: DataFrame, batch_id: int) -> None:
    """foreachBatch: a replay of the same batch_id finds its segments done and its streams finished."""
    started = time.perf_counter()
    received = split_batch(batch_df)
    if received:
        plan = process_events(batch_df.sparkSession.sparkContext, received, batch_id)
        log.info("batch %d: %d event(s), %d segment(s) transcoded, %d refused, %.1f s", batch_id,
                 len(received), len(plan.work), len(plan.refused), time.perf_counter() - started)
    metrics.batch_duration.labels(QUERY).observe(time.perf_counter() - started)


# =====================================================================================================
# The query
# =====================================================================================================

# The executors' Kafka consumers read an exact offset range; with the default fetch.max.wait.ms (500) the
# broker holds their last fetch for up to 500 ms, added to every upload's time to `processing`.
READER_OPTIONS = {"kafka.fetch.max.wait.ms": "10"}
# At most this many segment events per batch (Kafka's maxOffsetsPerTrigger). Without it the first batch after a
# backlog (a stopped job, a queue of uploads) holds every queued segment: no stream reaches `ready` until all of
# them are transcoded, maybe many minutes later. A stream's segments may then span batches: its stream
# document's `segment_results` gathers them, and it is published once the last one is in.
MAX_SEGMENTS_PER_BATCH = 24


def _worker_pid(_: int) -> int:
    return os.getpid()


def warm_up(sc: SparkContext) -> None:
    """Start Spark's Python daemon (preloaded, see `vod_task.preload`) before the first upload rather than inside
    its transcode time: the first Python task of an application waits for it (README, VOD figures)."""
    slots = max(1, sc.defaultParallelism)
    began = time.monotonic()
    workers = set(sc.parallelize(range(slots), slots).map(_worker_pid).collect())
    log.info("Python daemon and %d worker(s) ready in %.1f s", len(workers), time.monotonic() - began)


def trigger_options() -> dict[str, str]:
    """SPARK_VOD_TRIGGER_S: how often Kafka is polled when idle (a running batch delays the next one)."""
    return {"processingTime": f"{round(settings.spark_vod_trigger_s * 1000)} milliseconds"}


def start(spark: SparkSession) -> StreamingQuery:
    from lab.streaming import session

    storage.s3(), catalog.client()  # connect before the first batch, not inside its latency
    warm_up(spark.sparkContext)
    checkpoint = settings.lab_state_dir / "checkpoints" / QUERY
    return (session.kafka_stream(spark, settings.vod_topic, max_offsets_per_trigger=MAX_SEGMENTS_PER_BATCH,
                                 options=READER_OPTIONS)
            .writeStream.queryName(QUERY)
            .option("checkpointLocation", str(checkpoint))
            .trigger(**trigger_options())
            .foreachBatch(process_vod_batch)
            .start())
