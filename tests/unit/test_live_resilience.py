"""Every stream ends, and a short S3 outage ends none, without a broker: the publisher's bounded backlog
(`LiveStream`) with a failing S3 upload, and the reaper's silence rule with a fake clock and catalog."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from lab import storage
from lab.live_ingest import reaper as reaper_mod
from lab.live_ingest.reaper import Reaper, silence_bound_s
from lab.producer.stream import LiveStream
from tests.unit.test_live_end import SEGMENT, FakeProducer


class FlakyS3:
    """put_segment that fails while `down`, recording the keys it stored in order."""

    def __init__(self) -> None:
        self.down = False
        self.stored: list[str] = []

    def put(self, bucket: str, key: str, body: bytes, sha256: str) -> None:
        if self.down:
            raise EndpointConnectionError(endpoint_url="http://s3.test")
        self.stored.append(key)


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> FlakyS3:
    fake = FlakyS3()
    monkeypatch.setattr(storage, "put_segment", fake.put)
    return fake


def chunk_numbers(keys: list[str]) -> list[int]:
    return [int(k.rsplit("/", 1)[1].split(".")[0]) for k in keys]


def test_an_s3_outage_keeps_segments_and_sends_them_in_order_once_back(s3: FlakyS3) -> None:
    producer = FakeProducer("ack")
    stream = LiveStream("live-0123456789", producer, backlog=10)
    stream.send(SEGMENT, 2000)
    s3.down = True
    for _ in range(4):
        stream.send(SEGMENT, 2000)  # no exception: the encoder goes on encoding
    assert stream.backlog() == 4 and producer.sent == 1
    s3.down = False
    stream.send(SEGMENT, 2000)  # the next segment drains the backlog first, in order
    assert chunk_numbers(s3.stored) == [0, 1, 2, 3, 4, 5]
    assert producer.sent == 6 and stream.dropped == [] and stream.backlog() == 0
    stream.close()


def test_a_full_backlog_drops_the_oldest_waiting_segment_as_a_gap(s3: FlakyS3) -> None:
    stream = LiveStream("live-0123456789", FakeProducer("ack"), backlog=3)
    s3.down = True
    for _ in range(5):
        stream.send(SEGMENT, 2000)
    assert stream.dropped == [0, 1] and stream.backlog() == 3
    s3.down = False
    assert stream.drain()
    assert chunk_numbers(s3.stored) == [2, 3, 4]
    stream.close()


def test_closing_with_s3_still_down_names_what_was_lost(s3: FlakyS3) -> None:
    stream = LiveStream("live-0123456789", FakeProducer("ack"))
    stream.send(SEGMENT, 2000)
    s3.down = True
    stream.send(SEGMENT, 2000)
    assert stream.close(wait_s=0.1) == [1]


class FakeRegistry:
    def __init__(self) -> None:
        self.entries: dict[str, dict] = {}

    def open_streams(self) -> list[dict]:
        return [dict(e) for e in self.entries.values()]

    def close(self, sid: str) -> None:
        self.entries.pop(sid, None)

    def want_end(self, sid: str, reason: str) -> None:
        self.entries[sid]["end_wanted"] = reason

    def end_published(self, sid: str) -> None:
        self.entries[sid]["end_published_at"] = "now"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch):
    reg, docs, upserts = FakeRegistry(), {}, []
    monkeypatch.setattr(reaper_mod, "registry", reg)
    monkeypatch.setattr(reaper_mod.catalog, "stream_doc", lambda name, sid: docs.get(sid))
    monkeypatch.setattr(reaper_mod.catalog, "upsert", lambda name, sid, idx, fields: upserts.append((sid, fields)))
    return reg, docs, upserts


def test_a_silent_stream_is_ended_after_the_bound_with_a_reason(world) -> None:
    reg, docs, upserts = world
    reg.entries["live-aaaaaaaaaa"] = {"_id": "live-aaaaaaaaaa", "seen_at": 1}
    docs["live-aaaaaaaaaa"] = {"status": "live", "latest_chunk": 3}
    producer, clock = FakeProducer("ack"), Clock()
    reaper = Reaper(producer, clock)
    assert reaper.sweep() == []
    clock.t += silence_bound_s() - 1
    assert reaper.sweep() == [], "ended before the silence bound"
    clock.t += 2
    assert reaper.sweep() == ["live-aaaaaaaaaa"]
    assert producer.sent == 1 and upserts[0][1]["end_reason"].startswith("silence: no sign of the publisher")
    assert reaper.sweep() == [], "the end marker was published twice"
    docs["live-aaaaaaaaaa"]["status"] = "vod"
    reaper.sweep()
    assert reg.entries == {}, "an ended stream stayed open"


def test_a_heartbeat_or_a_new_chunk_restarts_the_silence_clock(world) -> None:
    reg, docs, _ = world
    reg.entries["live-bbbbbbbbbb"] = {"_id": "live-bbbbbbbbbb", "seen_at": 1}
    docs["live-bbbbbbbbbb"] = {"status": "live", "latest_chunk": 3}
    clock = Clock()
    reaper = Reaper(FakeProducer("ack"), clock)
    reaper.sweep()
    for step in range(5):
        clock.t += silence_bound_s() * 0.8
        if step % 2:
            reg.entries["live-bbbbbbbbbb"]["seen_at"] = step + 2  # S3 away: only the heartbeat moves
        else:
            docs["live-bbbbbbbbbb"]["latest_chunk"] += 1
        assert reaper.sweep() == []


def test_an_end_kafka_refused_is_retried_until_acknowledged(world) -> None:
    reg, docs, _ = world
    reg.entries["live-cccccccccc"] = {"_id": "live-cccccccccc", "end_wanted": "publisher: POST /streams/end"}
    docs["live-cccccccccc"] = {"status": "live"}
    down = FakeProducer("timeout")
    assert Reaper(down, Clock()).sweep() == []
    assert Reaper(FakeProducer("ack"), Clock()).sweep() == ["live-cccccccccc"]
