"""The VOD query: `vod-chunks` -> raw segments transcoded to every rung on Spark executors -> ABR HLS.

Follow one batch (`process_vod_batch`):
  1. collect and validate the Kafka rows; invalid ones go to the dead-letter topic       common.split_batch
  2. load the stream document of each stream in the batch (by `_id`); events of an unknown
     stream, or that contradict their stream's document, are dead-lettered             plan_batch (pure)
  3. leave out what needs no work (a replay): streams already ready or failed, and
     segments already done (the stream document's `segment_results`)                   plan_batch
  4. status `processing`, then `transcoding` (forward only, each with its time)          advance
  5. the segments spread over every executor core, one task per segment:
     download the raw segment, verify its SHA-256, ONE ffmpeg encodes every rung,
     upload each rendition with its own SHA-256                                         transcode_task
  6. results back on the driver: the segment documents and the stream document's
     `segment_results`, in one bulk write; metrics                                      record_results
  7. per stream: `failed` with the reason if any segment failed (never `ready` with
     holes); once every segment is done, the media playlists, then the master, then
     `ready`                                                                            finish_streams

Why one task per segment: the events of one upload all carry the same key (stream_id), so they sit in ONE
Kafka partition and Spark would read them in one task. `parallelize(..., numSlices=len(segments))` turns
them into as many tasks as segments, and the scheduler hands each free core the next one.

Spark's Python daemon runs this module (`spark.python.daemon.module`, see `preload` at the end), so the
workers it forks for segment tasks start with everything a task imports already loaded.

Replays: `foreachBatch` sees the same rows again after a restart from an older checkpoint. A segment
already `done` is not transcoded again and a stream already `ready` is not touched at all, so a replay
changes nothing in the catalog or the buckets. A crash between two steps replays into the same writes:
objects and documents are keyed by (stream_id, rung, chunk_index), playlists are rebuilt from the stream
document (the same bytes), and a status only ever moves forward.
"""

from __future__ import annotations

import logging
import os
import resource
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from lab import catalog, events, hls, metrics, storage
from lab.config import settings
from lab.media.checksum import sha256_bytes
from lab.media.ffmpeg import FfmpegError, MediaError
from lab.media.ladder import LADDER, ladder_for
from lab.media.transcode import transcode_segment
from lab.streaming.common import Received, flush_dead_letters, send_dead_letter, split_batch

if TYPE_CHECKING:
    from pyspark import SparkContext
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY = "vod"
STREAM_TYPE = "vod"
TRANSIENT_ATTEMPTS = 3
TRANSIENT_BACKOFF_S = 2.0

# =====================================================================================================
# Pure logic: statuses, what a batch must do, segment documents, playlists. No I/O here.
# =====================================================================================================

FORWARD = ("uploaded", "processing", "transcoding", "ready")
TERMINAL = ("ready", "failed")


def can_move(current: str, target: str) -> bool:
    """Statuses only move forward: uploaded -> processing -> transcoding -> ready, or to failed from any
    unfinished one. A finished stream (ready, failed) never moves again, so a replay cannot undo it."""
    if current in TERMINAL or target not in (*FORWARD, "failed"):
        return False
    if target == "failed":
        return True
    return current in FORWARD and FORWARD.index(target) > FORWARD.index(current)


@dataclass
class BatchPlan:
    """What one batch must do. `work` holds the segments to transcode; `touched` every unfinished stream
    with events in the batch (it may be ready to finish even with no work left, after a crash)."""

    work: list[events.VodChunkEvent] = field(default_factory=list)
    refused: list[tuple[Received, str]] = field(default_factory=list)
    touched: list[str] = field(default_factory=list)
    skipped: int = 0  # events needing no work: a replay, or a stream already finished


def event_problem(event: events.VodChunkEvent, stream: Mapping[str, Any]) -> str | None:
    """Why a valid-looking event cannot belong to its stream, or None. The raw key must be the stream's own:
    an event never makes an executor read another stream's object."""
    total = stream.get("total_chunks")
    if event.total_chunks != total:
        return f"total_chunks: {event.total_chunks} does not match the stream's {total}"
    if event.chunk_index >= event.total_chunks:
        return f"chunk_index: {event.chunk_index} is not below total_chunks {event.total_chunks}"
    expected = storage.raw_segment_key(event.stream_id, event.chunk_index)
    if event.raw_key != expected:
        return f"raw_key: expected {expected}"
    unknown = [r for r in event.rungs if r not in LADDER]
    if unknown:
        return f"rungs: unknown rendition(s) {unknown}"
    return None


def segment_results(stream: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """The stream document's `segment_results` ({"3": {...}}: MongoDB keys are strings) by chunk index."""
    return {int(k): v for k, v in (stream.get("segment_results") or {}).items()}


def done_indexes(stream: Mapping[str, Any]) -> set[int]:
    return {i for i, r in segment_results(stream).items() if r.get("status") == "done"}


def plan_batch(received: Iterable[Received], streams: Mapping[str, Mapping[str, Any]]) -> BatchPlan:
    """Sort a batch's events into work, refusals (with the reason) and events that need nothing.
    `streams`: stream documents by stream_id (their `segment_results` say what is already done)."""
    plan = BatchPlan()
    done = {sid: done_indexes(doc) for sid, doc in streams.items()}
    seen: set[tuple[str, int]] = set()
    for item in received:
        event = item.event
        if not isinstance(event, events.VodChunkEvent):
            plan.refused.append((item, f"event_type: {event.event_type} does not belong on {settings.vod_topic}"))
            continue
        sid = event.stream_id
        stream = streams.get(sid)
        if stream is None:
            plan.refused.append((item, f"stream_id: unknown stream (no catalog document for {sid})"))
            continue
        problem = event_problem(event, stream)
        if problem:
            plan.refused.append((item, problem))
            continue
        if stream.get("status") in TERMINAL:
            plan.skipped += 1
            continue
        if sid not in plan.touched:
            plan.touched.append(sid)
        key = (sid, event.chunk_index)
        if key in seen or event.chunk_index in done.get(sid, set()):
            plan.skipped += 1
            continue
        seen.add(key)
        plan.work.append(event)
    return plan


TIMINGS = ("download_seconds", "encode_seconds", "encode_cpu_seconds", "upload_seconds", "task_seconds")


def chunk_fields(result: Mapping[str, Any], batch_id: int) -> dict[str, Any]:
    """The `$set` of a segment's document from its executor result (done with its variants, or failed)."""
    common = {"batch_id": batch_id, "executor": result.get("executor"), "encode_seconds": result.get("encode_seconds"),
              "task_timings": {k: result.get(k) for k in TIMINGS}}
    if result["ok"]:
        variants = {r["rung"]: {k: r[k] for k in ("key", "sha256", "size_bytes", "duration_ms", "width",
                                                  "height", "profile", "level")}
                    for r in result["renditions"]}
        return {**common, "status": "done", "variants": variants, "failure_reason": None}
    return {**common, "status": "failed", "failure_reason": result["error"], "error_kind": result["error_kind"]}


def segment_summary(result: Mapping[str, Any], duration_ms: int) -> dict[str, Any]:
    """What the stream document keeps of a segment: all the playlists need (EXTINF, sizes for BANDWIDTH),
    or why it failed. The stream document is the query's state: one read by `_id` answers "is it all done?"."""
    if result["ok"]:
        return {"status": "done", "duration_ms": duration_ms,
                "sizes": {r["rung"]: r["size_bytes"] for r in result["renditions"]}}
    return {"status": "failed", "reason": result["error"]}


def rendition_facts(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per rung, what the master playlist says about it (the same for every segment of a rung)."""
    return {r["rung"]: {k: r[k] for k in ("width", "height", "profile", "level")}
            for result in results if result["ok"] for r in result["renditions"]}


@dataclass(frozen=True)
class Verdict:
    state: Literal["pending", "ready", "failed"]
    reason: str | None = None


def stream_verdict(total_chunks: int, rungs: Sequence[str], results: Mapping[int, Mapping[str, Any]]) -> Verdict:
    """Failed if any segment failed; ready only when every one of `total_chunks` segments is done with
    every rung; otherwise pending (more segments are in Kafka or in a later batch)."""
    failed = sorted(i for i, r in results.items() if r.get("status") == "failed")
    if failed:
        return Verdict("failed", f"segment {failed[0]}: {results[failed[0]].get('reason') or 'failed'}")
    done = {i for i, r in results.items() if r.get("status") == "done"}
    if not set(range(total_chunks)) <= done:
        return Verdict("pending")
    for index in range(total_chunks):
        missing = [r for r in rungs if r not in (results[index].get("sizes") or {})]
        if missing:
            return Verdict("failed", f"segment {index}: no rendition {missing}")
    return Verdict("ready")


def variant_uri(stream_id: str, rung: str, index: int) -> str:
    """A segment's URI relative to `manifests/{id}/`: the bucket layout, never a host (see playback.py)."""
    return f"../../{settings.bucket_vod_variants}/{storage.variant_segment_key(stream_id, rung, index)}"


def build_playlists(stream_id: str, rungs: Sequence[str], results: Mapping[int, Mapping[str, Any]],
                    renditions: Mapping[str, Mapping[str, Any]], *, fps: float,
                    audio: bool) -> list[tuple[str, str]]:
    """(key in the manifests bucket, text): one VOD media playlist per rung, then the master playlist
    (BANDWIDTH/AVERAGE-BANDWIDTH from the real segment sizes). Every rung lists the same EXTINF durations,
    the raw segment's, so players switching rungs see one timeline. `results`: segment summaries by index."""
    indexes = sorted(results)
    durations = [results[i]["duration_ms"] / 1000 for i in indexes]
    out: list[tuple[str, str]] = []
    variants: list[hls.Variant] = []
    for rung in rungs:
        uris = [variant_uri(stream_id, rung, i) for i in indexes]
        out.append((storage.vod_media_playlist_key(stream_id, rung),
                    hls.media_playlist(list(zip(uris, durations, strict=True)))))
        peak, average = hls.bandwidth_from_segments([results[i]["sizes"][rung] for i in indexes], durations)
        facts = renditions[rung]
        variants.append(hls.Variant(
            uri=Path(storage.vod_media_playlist_key(stream_id, rung)).name, bandwidth=peak,
            average_bandwidth=average, width=facts["width"], height=facts["height"],
            codecs=hls.codecs_for(facts["profile"], facts["level"], audio=audio), frame_rate=round(fps, 3)))
    out.append((storage.vod_master_key(stream_id), hls.master_playlist(variants)))
    return out


def latency_ms(start: datetime | None, end: datetime) -> float | None:
    return None if start is None else round((end - start).total_seconds() * 1000, 1)


# =====================================================================================================
# On the executor: one raw segment -> every rung, in S3. Returns a small dict (it crosses processes).
# =====================================================================================================

class ChecksumMismatch(ValueError):
    pass


def transcode_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """One segment, on an executor. Never raises for a bad segment: the result says what went wrong
    (`error_kind`: checksum | media | missing, which fail the stream, or transient: S3 or the network), so one
    bad segment fails its stream, not the query. `task`: a VodChunkEvent as a dict, plus `threads`."""
    started = time.monotonic()
    result: dict[str, Any] = {"stream_id": task["stream_id"], "chunk_index": task["chunk_index"], "ok": False,
                              "error": None, "error_kind": None, "renditions": [], "started_at_ms": events.now_ms(),
                              "executor": f"{socket.gethostname()}:{os.getpid()}"}
    workdir = Path(tempfile.mkdtemp(prefix=f"lab-vod-{task['stream_id']}-{task['chunk_index']}-"))
    try:
        result.update(_transcode_and_upload(task, workdir))
        result["ok"] = True
    except ChecksumMismatch as exc:
        result.update(error=str(exc), error_kind="checksum")
    except (FfmpegError, MediaError) as exc:
        result.update(error=f"transcode failed: {exc}", error_kind="media")
    except Exception as exc:  # S3 or the network, after boto3's own retries: worth another try later
        if _is_missing(exc):
            result.update(error=f"raw segment {task['raw_key']} is missing", error_kind="missing")
        else:
            result.update(error=f"{type(exc).__name__}: {exc}", error_kind="transient")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result["task_seconds"] = round(time.monotonic() - started, 3)
    result["finished_at_ms"] = events.now_ms()
    return result


def children_cpu_seconds() -> float:
    """CPU (user + system) of this process's finished children: ffmpeg's work, whatever else the machine
    runs (wall time on a shared machine says more about the neighbours)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404")


def _transcode_and_upload(task: Mapping[str, Any], workdir: Path) -> dict[str, Any]:
    sid, index = task["stream_id"], task["chunk_index"]
    began = time.monotonic()
    data = storage.get_bytes(settings.bucket_vod_raw, task["raw_key"])
    digest = sha256_bytes(data)
    if digest != task["checksum_sha256"]:
        raise ChecksumMismatch(f"checksum mismatch on {task['raw_key']}: sha256 {digest[:16]}… in the bucket, "
                               f"{task['checksum_sha256'][:16]}… when it was cut")
    raw = workdir / "raw.ts"
    raw.write_bytes(data)
    downloaded = time.monotonic()
    rungs = ladder_for(task["source_height"], list(task["rungs"]))
    cpu = children_cpu_seconds()
    files = transcode_segment(raw, workdir / "out", rungs, index, task["start_ms"] / 1000,
                                    threads=task.get("threads", 0))
    cpu = children_cpu_seconds() - cpu
    encoded = time.monotonic()
    renditions = []
    for f in files:
        key = storage.variant_segment_key(sid, f.rung, index)
        storage.put_segment(settings.bucket_vod_variants, key, f.path.read_bytes(), f.sha256)
        renditions.append({"rung": f.rung, "key": key, "sha256": f.sha256, "size_bytes": f.size_bytes,
                           "duration_ms": round(f.duration_s * 1000, 1), "width": f.width, "height": f.height,
                           "profile": f.profile, "level": f.level})
    return {"renditions": renditions, "download_seconds": round(downloaded - began, 3),
            "encode_seconds": round(encoded - downloaded, 3), "encode_cpu_seconds": round(cpu, 3),
            "upload_seconds": round(time.monotonic() - encoded, 3)}


# =====================================================================================================
# On the driver: catalog, statuses, metrics, playlists
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
    metrics.catalog_operations.labels(catalog.VOD, "find").inc(len(docs))
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
    segment, so more threads would only make the processes fight over the same cores. Measured on 2 cores
    (30 s 720p clip, 4 s segments, 2 at a time): 1 thread 11.0 s, 2 threads 11.6 s, ffmpeg's auto 11.5 s."""
    return max(1, int(sc.getConf().get("spark.task.cpus", "1")))


def run_tasks(sc: SparkContext, work: Sequence[events.VodChunkEvent], batch_id: int) -> list[dict[str, Any]]:
    """One Spark task per segment: numSlices=len(work), so a stream's segments spread over every core."""
    threads = ffmpeg_threads(sc)
    tasks = [{**e.model_dump(), "threads": threads} for e in work]
    sc.setJobDescription(f"vod batch {batch_id}: transcode {len(tasks)} segment(s)")
    submitted_ms = events.now_ms()
    try:
        results = sc.parallelize(tasks, numSlices=len(tasks)).map(transcode_task).collect()
    finally:
        sc.setJobDescription(None)
    wall = (events.now_ms() - submitted_ms) / 1000
    busy = sum(r.get("task_seconds", 0.0) for r in results)
    first_start = (min(r["started_at_ms"] for r in results) - submitted_ms) / 1000
    log.info("batch %d: %d segment task(s) in %.2f s wall, %.2f s inside tasks (first task began after %.2f s)",
             batch_id, len(results), wall, busy, first_start)
    return results


def record_results(results: Sequence[Mapping[str, Any]], work: Mapping[tuple[str, int], events.VodChunkEvent],
                   streams: Mapping[str, Mapping[str, Any]], batch_id: int) -> None:
    """ONE ordered bulk write: every segment document, then each stream document's `segment_results`
    (the query's state goes last: a crash in between replays into the same writes). Then the metrics,
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
        catalog.collection(catalog.VOD).bulk_write(ops, ordered=True)
        metrics.catalog_operations.labels(catalog.VOD, "bulk_write").inc()
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
    for rendition in result["renditions"]:
        # One ffmpeg makes every rung of a segment, so each rung was ready after the process's wall time.
        metrics.vod_transcode_seconds.labels(rendition["rung"]).observe(result["encode_seconds"])
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
        working = [streams[sid] for sid in sorted({e.stream_id for e in plan.work})]
        advance(working, "processing")
        advance(working, "transcoding")
        transcode(sc, plan.work, streams, batch_id)
    finish_streams(plan.touched)
    return plan


def transcode(sc: SparkContext, work: Sequence[events.VodChunkEvent], streams: Mapping[str, Mapping[str, Any]],
              batch_id: int) -> None:
    """Run the segment tasks and record them. A segment that failed for a reason outside it (S3 or the
    network: `transient`) is tried again a few times; if it still fails the batch fails, so Spark runs it
    again from the checkpoint after a restart, and the segments recorded here are not transcoded twice."""
    by_key = {(e.stream_id, e.chunk_index): e for e in work}
    pending = list(work)
    for attempt in range(1, TRANSIENT_ATTEMPTS + 1):
        results = run_tasks(sc, pending, batch_id)
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


def _worker_pid(_: int) -> int:
    return os.getpid()


def warm_up(sc: SparkContext) -> None:
    """Start Spark's Python daemon (preloaded, see `preload`) before the first upload rather than inside
    its transcode time: the first Python task of an application waits for it (~3 s on a loaded laptop)."""
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
    return (session.kafka_stream(spark, settings.vod_topic, options=READER_OPTIONS)
            .writeStream.queryName(QUERY)
            .option("checkpointLocation", str(checkpoint))
            .trigger(**trigger_options())
            .foreachBatch(process_vod_batch)
            .start())


# =====================================================================================================
# Spark's Python daemon, preloaded (session.py sets spark.python.daemon.module to this module)
# =====================================================================================================

def preload() -> None:
    """What every segment task needs, loaded once in the daemon that forks the Python workers: a worker
    forked from it starts with boto3, PyAV and the settings already imported and an S3 client built. Spark
    stops a Python worker after a minute idle, so without this each upload after a pause waited for fresh
    workers to import all of it: 1-6 s before the first task began on a loaded 2-core laptop, 0.2 s after."""
    storage.s3()  # only builds the client: no connection is opened before the fork


if __name__ == "__main__":
    # Spark starts the daemon as `python -m <module>` and reads its port from stdout: nothing here prints.
    from pyspark import daemon

    preload()
    daemon.manager()
