"""VOD ingest, behind `POST /vod/upload`: validate, cut into keyframe-aligned raw segments, register, publish.

Order matters for "nothing half-written": the file is probed before anything is stored; if storing,
registering or publishing fails part-way, everything written for the new stream_id is removed again.
Kafka gets one small event per raw segment (with its SHA-256); the bytes stay in `vod-raw`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from confluent_kafka import Producer

from lab import catalog, events, metrics, storage, topics
from lab.config import settings
from lab.media.ffmpeg import FfmpegError, MediaError
from lab.media.ladder import ladder_for
from lab.media.probing import SourceInfo, probe
from lab.media.segmenter import SegmentFile, cut_segments

log = logging.getLogger(__name__)
COPY_CHUNK = 1024 * 1024


class IngestError(ValueError):
    """A refused upload: `status` is the HTTP status, `field` the form field, `reason` what is wrong."""

    def __init__(self, status: int, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.status, self.field, self.reason = status, field, reason


@dataclass(frozen=True)
class Ingested:
    stream_id: str
    title: str
    segments: int
    duration_s: float
    rungs: list[str]


def receive(stream: BinaryIO, dest: Path, limit: int) -> int:
    """Copy an upload to disk in chunks, refusing it as soon as it exceeds `limit` bytes."""
    size = 0
    with open(dest, "wb") as out:
        while chunk := stream.read(COPY_CHUNK):
            size += len(chunk)
            if size > limit:
                raise IngestError(413, "file", f"larger than VOD_MAX_UPLOAD_BYTES ({limit} bytes)")
            out.write(chunk)
    if size == 0:
        raise IngestError(400, "file", "the uploaded file is empty")
    return size


def check_source(path: Path) -> SourceInfo:
    try:
        info = probe(path)
    except MediaError as exc:
        raise IngestError(415, "file", str(exc)) from None
    if info.duration_s > settings.vod_max_duration_s:
        raise IngestError(422, "file", f"{info.duration_s:.0f}s is longer than VOD_MAX_DURATION_S "
                                       f"({settings.vod_max_duration_s:.0f}s)")
    if info.duration_s < settings.vod_min_duration_s:
        raise IngestError(422, "file", f"{info.duration_s:.2f}s is shorter than VOD_MIN_DURATION_S "
                                       f"({settings.vod_min_duration_s:g}s)")
    for size, low, high, name in ((info.width, settings.vod_min_width, settings.vod_max_width, "WIDTH"),
                                  (info.height, settings.vod_min_height, settings.vod_max_height, "HEIGHT")):
        if not low <= size <= high:  # a 1x1 video would otherwise be "transcoded" to a 4x2 360p
            raise IngestError(422, "file", f"{info.width}x{info.height}: {name.lower()} {size} is outside "
                                           f"VOD_MIN_{name}..VOD_MAX_{name} ({low}..{high})")
    return info


def ingest(stream: BinaryIO, filename: str, title: str, prod: Producer) -> Ingested:
    """The whole upload path; blocking (the API runs it in a worker thread)."""
    title = title.strip()
    if not title or len(title) > 200:
        raise IngestError(422, "title", "must be 1 to 200 characters")
    workdir = Path(tempfile.mkdtemp(prefix="lab-ingest-"))
    try:
        source = workdir / ("source" + (Path(filename).suffix.lower()[:8] or ".bin"))
        receive(stream, source, settings.vod_max_upload_bytes)
        info = check_source(source)
        stream_id = events.new_vod_id()
        rungs = [r.name for r in ladder_for(info.height, settings.ladder)]
        try:
            segments = cut_segments(source, workdir / "raw", settings.vod_segment_seconds, info)
        except FfmpegError as exc:  # probed fine, but ffmpeg cannot read it through
            raise IngestError(422, "file", f"cannot be cut into segments: {exc}") from None
        try:
            _store(stream_id, source, segments)
            _register(stream_id, title, info, segments, rungs)
            _publish(stream_id, segments, rungs, info, prod)
        except Exception:
            _discard(stream_id)
            raise
        metrics.producer_messages.labels("vod").inc(len(segments))
        return Ingested(stream_id, title, len(segments), info.duration_s, rungs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _store(stream_id: str, source: Path, segments: list[SegmentFile]) -> None:
    client = storage.s3()
    client.upload_file(str(source), settings.bucket_vod_raw, f"{stream_id}/{source.name}",
                       ExtraArgs={"CacheControl": storage.IMMUTABLE})

    def put(seg: SegmentFile) -> None:
        storage.put_segment(settings.bucket_vod_raw, storage.raw_segment_key(stream_id, seg.index),
                            seg.path.read_bytes(), seg.sha256)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(put, segments))


def _register(stream_id: str, title: str, info: SourceInfo, segments: list[SegmentFile],
              rungs: list[str]) -> None:
    now = catalog.now()
    catalog.upsert(catalog.VOD, stream_id, catalog.STREAM_DOC, {
        "stream_type": "vod", "title": title, "status": "uploaded", "uploaded_at": now, "created_at": now,
        "status_history": [{"status": "uploaded", "at": now}],
        "total_chunks": len(segments), "duration_ms": round(info.duration_s * 1000),
        "source": {"width": info.width, "height": info.height, "fps": info.fps, "video_codec": info.video_codec,
                   "audio_codec": info.audio_codec, "size_bytes": info.size_bytes},
        "rungs_planned": rungs, "keyframe_aligned": True,
        "audio_track_id": f"audio-{stream_id}", "video_track_id": f"video-{stream_id}",
    })
    # `_id` from the natural key: the VOD query then reads and writes each document by `_id` alone
    # (catalog.doc_id says why that matters on FerretDB).
    docs = [{"_id": catalog.doc_id(stream_id, s.index), "stream_id": stream_id, "chunk_index": s.index,
             "status": "uploaded",
             "raw_key": storage.raw_segment_key(stream_id, s.index), "raw_sha256": s.sha256,
             "size_bytes": s.size_bytes, "start_ms": round(s.start_s * 1000), "duration_ms": round(s.duration_s * 1000)}
            for s in segments]
    catalog.collection(catalog.VOD).insert_many(docs)
    metrics.catalog_operations.labels(catalog.VOD, "insert").inc(2)  # two calls: the upsert, one insert_many


def _publish(stream_id: str, segments: list[SegmentFile], rungs: list[str], info: SourceInfo,
             prod: Producer) -> None:
    failures: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            failures.append(str(err))

    for seg in segments:
        event = events.VodChunkEvent(
            published_at_ms=events.now_ms(), stream_id=stream_id, chunk_index=seg.index, total_chunks=len(segments),
            raw_key=storage.raw_segment_key(stream_id, seg.index), checksum_sha256=seg.sha256,
            size_bytes=seg.size_bytes, start_ms=round(seg.start_s * 1000),
            duration_ms=max(1, round(seg.duration_s * 1000)), rungs=rungs, source_height=info.height,
            audio_track_id=f"audio-{stream_id}", video_track_id=f"video-{stream_id}")
        topics.publish(prod, settings.vod_topic, stream_id, events.encode(event), on_delivery)
    remaining = prod.flush(15)
    if failures or remaining:
        metrics.producer_delivery_failures.labels("vod").inc(len(failures) + remaining)
        raise RuntimeError(f"Kafka did not accept the events of {stream_id}: {failures or 'timeout'}")


def _discard(stream_id: str) -> None:
    """Remove everything a failed upload wrote (its objects in vod-raw, its catalog documents), so no
    half-registered stream remains. Each half is tried even if the other fails; a failure is logged, because
    the error that made the upload fail matters more to the caller."""
    try:
        storage.delete_prefix(settings.bucket_vod_raw, f"{stream_id}/")
    except Exception:
        log.exception("could not remove the raw segments of %s after a failed upload", stream_id)
    try:
        catalog.collection(catalog.VOD).delete_many({"stream_id": stream_id})
        metrics.catalog_operations.labels(catalog.VOD, "delete").inc()
    except Exception:
        log.exception("could not remove the catalog documents of %s after a failed upload", stream_id)
