"""VOD routes: upload (API key), metadata, and the signed playback URL of the master playlist."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Path, UploadFile
from fastapi.concurrency import run_in_threadpool

from lab import catalog, ingest, playback, storage
from lab.api.deps import ApiKey, ProducerDep
from lab.api.schemas import TITLE_PATTERN, PlaybackUrl, UploadAccepted
from lab.config import settings
from lab.events import VOD_ID

router = APIRouter(prefix="/vod", tags=["vod"])
VodId = Annotated[str, Path(pattern=VOD_ID, description="vod-<12 hex>")]
MULTIPART_OVERHEAD = 1024 * 1024  # the title field, part headers and boundaries around the file
MAX_FILENAME = 255
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def check_filename(name: str | None) -> str:
    """The client's file name names only the temporary file's suffix; NUL, CR/LF and friends are refused."""
    if not name:
        return "upload"
    if len(name) > MAX_FILENAME:
        raise HTTPException(422, f"file: the file name is longer than {MAX_FILENAME} characters")
    if CONTROL_CHARS.search(name):
        raise HTTPException(422, "file: the file name contains control characters (NUL, CR, LF, ...)")
    return name


# max_body_size: the edge (lab.api.edge) refuses a larger Content-Length before reading the body.
@router.post("/upload", response_model=UploadAccepted, status_code=202, dependencies=[ApiKey],
             max_body_size=settings.vod_max_upload_bytes + MULTIPART_OVERHEAD)
async def upload(producer: ProducerDep, file: Annotated[UploadFile, File(description="a video file")],
                 title: Annotated[str, Form(min_length=1, max_length=200, pattern=TITLE_PATTERN)]) -> UploadAccepted:
    """Store the file, cut it into keyframe-aligned raw segments, publish one event per segment.
    Answers at once; Spark does the transcoding. Sources outside VOD_MIN/MAX_WIDTH/HEIGHT/DURATION_S: 422."""
    filename = check_filename(file.filename)
    try:
        done = await run_in_threadpool(ingest.ingest, file.file, filename, title, producer)
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
