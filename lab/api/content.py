"""`GET /content/{id}`: the content catalog view of a stream (the reference's section 17)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from lab import catalog, storage
from lab.config import settings
from lab.events import LIVE_ID, VOD_ID

router = APIRouter(tags=["content"])
STREAM_ID = f"{VOD_ID}|{LIVE_ID}"


@router.get("/content/{stream_id}")
def content(stream_id: Annotated[str, Path(pattern=STREAM_ID, description="vod-<12 hex> or live-<10 hex>")]) -> dict:
    if stream_id.startswith("vod-") and (doc := catalog.stream_doc(catalog.VOD, stream_id)):
        return {
            "stream_id": stream_id, "title": doc.get("title"), "status": doc["status"], "stream_type": "vod",
            "duration_ms": doc.get("duration_ms"), "variants": doc.get("variants_generated", []),
            "manifest_url": storage.cdn_url(settings.bucket_manifests, storage.vod_master_key(stream_id)),
            "processing_latency_ms": doc.get("processing_latency_ms"),
            "created_at": doc.get("created_at"), "ready_at": doc.get("ready_at"),
        }
    if stream_id.startswith("live-") and (doc := catalog.stream_doc(catalog.LIVE, stream_id)):
        return {
            "stream_id": stream_id, "title": doc.get("title"), "status": doc["status"], "stream_type": "live",
            "manifest_url": storage.cdn_url(settings.bucket_manifests, storage.live_playlist_key(stream_id)),
            "recording_url": (storage.cdn_url(settings.bucket_manifests, storage.recording_playlist_key(stream_id))
                              if doc.get("recording_path") else None),
            "dvr_window_start": doc.get("dvr_window_start"), "latest_chunk": doc.get("latest_chunk"),
            "started_at": doc.get("started_at"), "ended_at": doc.get("ended_at"),
        }
    raise HTTPException(404, f"stream_id: no content {stream_id}")
