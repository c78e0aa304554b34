"""The chunk events that ride Kafka, and their validation: the only place these JSON shapes live.

An event describes a segment (ids, checksum, sizes, times); the segment's bytes are in S3. Anything that
does not parse into one of these models goes to the dead-letter topic with the reason.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

VOD_ID = r"^vod-[0-9a-f]{12}$"
LIVE_ID = r"^live-[0-9a-f]{10}$"
SHA256 = r"^[0-9a-f]{64}$"
RUNG = r"^\d{3,4}p$"

MAX_SEGMENT_BYTES = 512 * 1024 * 1024
MAX_CHUNK_INDEX = 10_000_000
EARLIEST_MS = 1_577_836_800_000  # 2020-01-01: anything older is a clock or a producer bug
CLOCK_SKEW_MS = 24 * 3600 * 1000


def new_vod_id() -> str:
    return f"vod-{secrets.token_hex(6)}"


def new_live_id() -> str:
    return f"live-{secrets.token_hex(5)}"


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class EventError(ValueError):
    """An event that cannot be processed; `reason` names the field and the problem."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


PublishedAt = Annotated[int, Field(ge=EARLIEST_MS, description="epoch ms when the producer published it")]


class _Event(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)
    schema_version: Literal[1] = 1
    published_at_ms: PublishedAt


class VodChunkEvent(_Event):
    """One raw VOD segment in `vod-raw`, ready to be transcoded to every rung of the ladder."""

    event_type: Literal["vod_chunk"] = "vod_chunk"
    stream_id: str = Field(pattern=VOD_ID)
    chunk_index: int = Field(ge=0, le=MAX_CHUNK_INDEX)
    total_chunks: int = Field(ge=1, le=MAX_CHUNK_INDEX)
    raw_key: str = Field(min_length=1, max_length=512)
    checksum_sha256: str = Field(pattern=SHA256)
    size_bytes: int = Field(gt=0, le=MAX_SEGMENT_BYTES)
    start_ms: int = Field(ge=0)
    duration_ms: int = Field(gt=0, le=600_000)
    rungs: list[Annotated[str, Field(pattern=RUNG)]] = Field(min_length=1, max_length=8)
    source_height: int = Field(gt=0, le=8640)
    audio_track_id: str = Field(min_length=1, max_length=128)
    video_track_id: str = Field(min_length=1, max_length=128)


class LiveChunkEvent(_Event):
    """One live segment the encoder already put in `live-streams`."""

    event_type: Literal["live_chunk"] = "live_chunk"
    stream_id: str = Field(pattern=LIVE_ID)
    chunk_index: int = Field(ge=0, le=MAX_CHUNK_INDEX)
    sequence_number: int = Field(ge=0, le=MAX_CHUNK_INDEX)
    object_key: str = Field(min_length=1, max_length=512)
    checksum_sha256: str = Field(pattern=SHA256)
    size_bytes: int = Field(gt=0, le=MAX_SEGMENT_BYTES)
    duration_ms: int = Field(gt=0, le=60_000)
    keyframe_aligned: bool
    audio_track_id: str = Field(min_length=1, max_length=128)
    video_track_id: str = Field(min_length=1, max_length=128)
    # The capture clock of the segment's first frame: its EXT-X-PROGRAM-DATE-TIME, what glass to glass is
    # measured from. Optional so an older event still plays (its segment then carries no PDT).
    captured_at_ms: int | None = Field(None, ge=EARLIEST_MS, description="epoch ms of the first frame's capture")


class LiveEndEvent(_Event):
    """The end marker: published on the stream's own partition, so it arrives after its last chunk."""

    event_type: Literal["live_end"] = "live_end"
    stream_id: str = Field(pattern=LIVE_ID)


Event = Annotated[VodChunkEvent | LiveChunkEvent | LiveEndEvent, Field(discriminator="event_type")]
_EVENT = TypeAdapter(Event)
EVENT_TYPES = ("vod_chunk", "live_chunk", "live_end")


def encode(event: _Event) -> bytes:
    return event.model_dump_json().encode()


def decode(raw: bytes | str | None) -> VodChunkEvent | LiveChunkEvent | LiveEndEvent:
    """Parse and validate one Kafka value; raise EventError naming the field on any problem."""
    if raw is None:
        raise EventError("value: empty message")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EventError(f"value: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EventError(f"value: expected a JSON object, got {type(data).__name__}")
    try:
        event = _EVENT.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first["loc"]]
        if loc and loc[0] in EVENT_TYPES:  # the union tag pydantic puts in front of the field
            loc = loc[1:]
        field = ".".join(loc) or ("event_type" if first["type"].startswith("union_tag") else "value")
        raise EventError(f"{field}: {first['msg']}") from None
    if event.published_at_ms > now_ms() + CLOCK_SKEW_MS:
        raise EventError("published_at_ms: more than a day in the future")
    return event


def dead_letter(raw: bytes | None, reason: str, *, topic: str, partition: int, offset: int) -> bytes:
    """The dead-letter record: the original value (as text), where it came from, and why it was refused."""
    text = raw.decode("utf-8", errors="replace") if raw is not None else None
    return json.dumps({"reason": reason, "source_topic": topic, "source_partition": partition,
                       "source_offset": offset, "original_value": text, "dead_lettered_at_ms": now_ms()}).encode()
