"""The VOD query's decisions, pure: statuses, what a batch must do, segment documents, playlists. No I/O here
(vod.py does the reading and writing), so tests/unit/test_vod_logic.py checks every rule without a service.

Read in the order a batch uses it: `can_move` (statuses only move forward), `plan_batch` (which events are
work, which are refused and why, which need nothing), `chunk_fields` / `segment_summary` (what the catalog keeps
of a segment task's result), `stream_verdict` (ready, failed or pending), `build_playlists` (the m3u8 text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from lab import events, hls, storage
from lab.config import settings
from lab.media.ladder import LADDER
from lab.streaming.common import Received

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
