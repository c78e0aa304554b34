"""Response and request models of the control plane."""

from __future__ import annotations

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


TITLE_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # no control characters (NUL, CR, LF, ...) in a title shown to people


class StreamStart(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200, pattern=TITLE_PATTERN)


class StreamStarted(BaseModel):
    stream_id: str
    status: str
    title: str
    manifest_path: str


class StreamEnd(BaseModel):
    stream_id: str = Field(pattern=LIVE_ID)


class StreamEnding(BaseModel):
    stream_id: str
    status: str = Field(description="still `live`: Spark sets `vod` once the end marker is processed")
    end_marker: str
