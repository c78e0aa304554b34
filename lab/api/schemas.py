"""Response and request models of the control plane."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from lab.events import LIVE_ID


class UploadAccepted(BaseModel):
    stream_id: str
    status: str
    title: str
    segments: int
    duration_s: float
    rungs: list[str]


class PlaybackUrl(BaseModel):
    stream_id: str
    status: str
    manifest_url: str = Field(description="signed playlist URL a player (ffmpeg, hls.js) plays directly")
    expires_at: int = Field(description="epoch seconds after which manifest_url stops working")
    cdn_url: str = Field(description="where a CDN in front of the buckets would serve it")
    recording_url: str | None = Field(None, description="a live stream that ended: its recording, a VOD "
                                      "playlist of its own (signed like manifest_url); None while live")


TITLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters (NUL, CR, LF, ...) in a title shown to people


class StreamStart(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200, pattern=TITLE_PATTERN)
    ingest: Literal["encoder", "rtmp", "srt", "browser"] = Field(
        "encoder", description="who publishes: the lab's encoder (or a replay), OBS over RTMP or SRT, or the "
                               "browser camera widget; the ingest service arms a listener for the last three")


class StreamStarted(BaseModel):
    stream_id: str
    status: str
    title: str
    manifest_path: str
    ingest: str
    ingest_key: str = Field(description="this stream's publish key: the RTMP stream key, the SRT passphrase, "
                                        "the browser ingest's X-Stream-Key; valid until the stream ends")
    ingest_url: str | None = Field(None, description="where the publisher connects (none for the encoder)")


class StreamEnd(BaseModel):
    stream_id: str = Field(pattern=LIVE_ID)


class StreamEnding(BaseModel):
    stream_id: str
    status: str = Field(description="still `live`: Spark sets `vod` once the end marker is processed")
    end_marker: str
