"""VOD routes: upload (API key), metadata, and the signed playback URL of the master playlist."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, UploadFile
from fastapi.concurrency import run_in_threadpool

from lab import catalog, ingest, playback, storage
from lab.api.deps import ApiKey, ProducerDep
from lab.api.schemas import PlaybackUrl, UploadAccepted
from lab.config import settings
from lab.events import VOD_ID

router = APIRouter(prefix="/vod", tags=["vod"])
VodId = Annotated[str, Path(pattern=VOD_ID, description="vod-<12 hex>")]


@router.post("/upload", response_model=UploadAccepted, status_code=202, dependencies=[ApiKey])
async def upload(producer: ProducerDep, file: Annotated[UploadFile, File(description="a video file")],
                 title: Annotated[str, Form(min_length=1, max_length=200)]) -> UploadAccepted:
    """Store the file, cut it into keyframe-aligned raw segments, publish one event per segment.
    Answers at once; Spark does the transcoding."""
    try:
        done = await run_in_threadpool(ingest.ingest, file.file, file.filename or "upload", title, producer)
    except ingest.IngestError as exc:
        raise HTTPException(exc.status, f"{exc.field}: {exc.reason}") from None
    return UploadAccepted(stream_id=done.stream_id, status="uploaded", title=done.title, segments=done.segments,
                          duration_s=done.duration_s, rungs=done.rungs)


def vod_stream(stream_id: str) -> dict:
    doc = catalog.stream_doc(catalog.VOD, stream_id)
    if doc is None:
        raise HTTPException(404, f"stream_id: no VOD stream {stream_id}")
    return doc


@router.get("/{stream_id}/metadata")
def metadata(stream_id: VodId) -> dict:
    """The stream's catalog document, with each status transition's time, plus a per-segment summary."""
    doc = vod_stream(stream_id)
    doc["segments"] = [{k: c.get(k) for k in ("chunk_index", "status", "duration_ms", "raw_sha256", "variants")}
                       for c in catalog.chunk_docs(catalog.VOD, stream_id)]
    return doc


@router.get("/{stream_id}/manifest", response_model=PlaybackUrl)
def manifest(stream_id: VodId) -> PlaybackUrl:
    doc = vod_stream(stream_id)
    if doc["status"] != "ready":
        raise HTTPException(409, f"status: stream is {doc['status']}, the manifest exists once it is ready"
                            + (f" ({doc.get('failure_reason')})" if doc["status"] == "failed" else ""))
    url, expires = playback.signed_playlist_url(stream_id, storage.VOD_MASTER)
    return PlaybackUrl(stream_id=stream_id, status=doc["status"], manifest_url=url, expires_at=expires,
                       cdn_url=storage.cdn_url(settings.bucket_manifests, storage.vod_master_key(stream_id)))
