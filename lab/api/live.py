"""Live routes: start and end a stream (API key), its playback URL and metadata.

Chunks never pass through here: the encoder (or the ingest service, lab/live_ingest) publishes them straight
to Kafka. `end` only publishes an end marker on the stream's own partition; the Spark job writes the final
playlist when the marker arrives, after every chunk before it (no race with in-flight chunks).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from fastapi.concurrency import run_in_threadpool

from lab import catalog, events, hls, playback, storage, topics
from lab.api.deps import ApiKey, ProducerDep
from lab.api.schemas import PlaybackUrl, StreamEnd, StreamEnding, StreamStart, StreamStarted
from lab.config import settings
from lab.live_ingest import registry
from lab.live_ingest import urls as ingest_urls

# JSON bodies of a few fields: the edge (lab.api.edge) refuses more than API_MAX_JSON_BYTES before reading.
router = APIRouter(prefix="/streams", tags=["live"], max_body_size=settings.api_max_json_bytes)
LiveId = Annotated[str, Path(pattern=events.LIVE_ID, description="live-<10 hex>")]


@router.post("/start", response_model=StreamStarted, status_code=201, dependencies=[ApiKey])
def start(body: StreamStart | None = None) -> StreamStarted:
    """A catalog entry, an empty playlist and an open-stream entry with a fresh publish key, before the first
    chunk. Every stream started here ends: by its publisher's end, or by the reaper (lab/live_ingest/reaper)."""
    body = body or StreamStart()
    stream_id = events.new_live_id()
    title = body.title or f"LIVE: {settings.match_home_team} vs {settings.match_away_team}"
    now = catalog.now()
    catalog.upsert(catalog.LIVE, stream_id, catalog.STREAM_DOC, {
        "stream_type": "live", "title": title, "status": "live", "started_at": now, "ingest": body.ingest,
        "status_history": [{"status": "live", "at": now}], "dvr_window_size": settings.dvr_window_size,
        "manifest_path": f"{settings.bucket_manifests}/{storage.live_playlist_key(stream_id)}",
        "audio_track_id": f"audio-{stream_id}", "video_track_id": f"video-{stream_id}"})
    key = registry.new_key()
    registry.open_stream(stream_id, key, body.ingest)
    empty = hls.live_playlist([], media_sequence=0, target_duration=settings.live_segment_seconds, ended=False)
    storage.put_playlist(settings.bucket_manifests, storage.live_playlist_key(stream_id), empty,
                         cache_control=storage.LIVE_PLAYLIST)
    return StreamStarted(stream_id=stream_id, status="live", title=title,
                         manifest_path=f"{settings.bucket_manifests}/{storage.live_playlist_key(stream_id)}",
                         ingest=body.ingest, ingest_key=key, ingest_url=ingest_urls.publish_url(body.ingest, stream_id))


@router.post("/end", response_model=StreamEnding, status_code=202, dependencies=[ApiKey])
async def end(body: StreamEnd, producer: ProducerDep) -> StreamEnding:
    """The end marker on the stream's own partition. The end is recorded first: if Kafka refuses the marker
    (503), the reaper publishes it as soon as Kafka is back, so an end once asked for always happens."""
    doc = live_stream(body.stream_id)
    if doc["status"] != "live":
        raise HTTPException(409, f"stream_id: {body.stream_id} already ended (status {doc['status']})")
    reason = "publisher: POST /streams/end"
    await run_in_threadpool(_record_end, body.stream_id, reason)
    marker = events.LiveEndEvent(stream_id=body.stream_id, published_at_ms=events.now_ms())
    topics.publish(producer, settings.live_topic, body.stream_id, events.encode(marker))
    if await run_in_threadpool(producer.flush, 10):
        raise HTTPException(503, "kafka: the end marker was not acknowledged yet; the pipeline retries it "
                                 "until Kafka takes it (asking again is harmless)")
    await run_in_threadpool(registry.end_published, body.stream_id)
    return StreamEnding(stream_id=body.stream_id, status="live",
                        end_marker=f"{settings.live_topic} key={body.stream_id}")


def _record_end(stream_id: str, reason: str) -> None:
    catalog.upsert(catalog.LIVE, stream_id, catalog.STREAM_DOC, {"end_reason": reason,
                                                                 "end_requested_at": catalog.now()})
    registry.want_end(stream_id, reason)


def live_stream(stream_id: str) -> dict:
    doc = catalog.stream_doc(catalog.LIVE, stream_id)
    if doc is None:
        raise HTTPException(404, f"stream_id: no live stream {stream_id}")
    return doc


@router.get("/{stream_id}/live", response_model=PlaybackUrl)
def live_url(stream_id: LiveId) -> PlaybackUrl:
    """The live playlist (its rolling window; ENDLIST once ended, RFC 8216 6.2.1) and, once the stream
    ended, `recording_url`: the whole recording, a VOD playlist at its own URL."""
    doc = live_stream(stream_id)
    url, expires = playback.signed_playlist_url(stream_id, storage.LIVE_PLAYLIST_NAME)
    recording = None
    if doc.get("recording_path"):
        recording, _ = playback.signed_playlist_url(stream_id, storage.RECORDING_NAME)
    return PlaybackUrl(stream_id=stream_id, status=doc["status"], manifest_url=url, expires_at=expires,
                       cdn_url=storage.cdn_url(settings.bucket_manifests, storage.live_playlist_key(stream_id)),
                       recording_url=recording)


@router.get("/{stream_id}/metadata")
def metadata(stream_id: LiveId) -> dict:
    doc = live_stream(stream_id)
    chunks = catalog.chunk_docs(catalog.LIVE, stream_id)
    doc["chunks_received"] = len(chunks)
    doc["latest_chunk"] = chunks[-1] if chunks else None
    return doc
