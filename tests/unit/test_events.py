"""Event validation names the field at fault; valid events round-trip through JSON."""

from __future__ import annotations

import json

import pytest

from lab import events

SHA = "a" * 64


def live_chunk(**overrides) -> dict:
    base = {"event_type": "live_chunk", "schema_version": 1, "published_at_ms": events.now_ms(),
            "stream_id": "live-0123456789", "chunk_index": 4, "sequence_number": 4,
            "object_key": "live-0123456789/chunks/4.ts", "checksum_sha256": SHA, "size_bytes": 1000,
            "duration_ms": 2000, "keyframe_aligned": True, "audio_track_id": "a", "video_track_id": "v"}
    return {**base, **overrides}


def test_valid_live_chunk_round_trips():
    event = events.decode(json.dumps(live_chunk()).encode())
    assert isinstance(event, events.LiveChunkEvent)
    assert events.decode(events.encode(event)) == event


@pytest.mark.parametrize(("raw", "field"), [
    (b"{not json", "value"),
    (b"[1, 2]", "value"),
    (None, "value"),
    (json.dumps({k: v for k, v in live_chunk().items() if k != "checksum_sha256"}).encode(), "checksum_sha256"),
    (json.dumps(live_chunk(chunk_index="4")).encode(), "chunk_index"),
    (json.dumps(live_chunk(chunk_index=4.5)).encode(), "chunk_index"),
    (json.dumps(live_chunk(size_bytes=-1)).encode(), "size_bytes"),
    (json.dumps(live_chunk(duration_ms=10**9)).encode(), "duration_ms"),
    (json.dumps(live_chunk(stream_id="../../etc")).encode(), "stream_id"),
    (json.dumps(live_chunk(published_at_ms=events.now_ms() + 10**10)).encode(), "published_at_ms"),
    (json.dumps(live_chunk(published_at_ms=5)).encode(), "published_at_ms"),
    (json.dumps(live_chunk(event_type="nope")).encode(), "event_type"),
])
def test_invalid_events_name_the_field(raw, field):
    with pytest.raises(events.EventError) as err:
        events.decode(raw)
    assert err.value.reason.split(":")[0] == field


def test_dead_letter_record_keeps_the_original_and_the_reason():
    record = json.loads(events.dead_letter(b"\xff garbage", "value: not JSON", topic="live-chunks",
                                           partition=2, offset=7))
    assert record["reason"] == "value: not JSON"
    assert (record["source_topic"], record["source_partition"], record["source_offset"]) == ("live-chunks", 2, 7)
    assert "garbage" in record["original_value"]


def test_ids_match_their_patterns():
    import re

    assert re.match(events.VOD_ID, events.new_vod_id())
    assert re.match(events.LIVE_ID, events.new_live_id())
