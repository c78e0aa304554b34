"""The live end-marker rule, without a broker: `LiveStream.end` asks the API for the end marker only once
Kafka has acknowledged every chunk event of the stream. A fake Producer stands in for confluent-kafka
(delivery reports are served by flush, as librdkafka does); S3 is replaced by a no-op upload."""

from __future__ import annotations

import httpx
import pytest

from lab import storage
from lab.producer import stream as stream_mod
from lab.producer.stream import LiveStream, UndeliveredChunks

SEGMENT = b"\x47" * 188 * 4


class FakeProducer:
    """Queues produced messages; `flush` reports each one as delivered, refused, or leaves it queued."""

    def __init__(self, outcome: str = "ack", refuse: set[int] | None = None):
        self.outcome, self.refuse = outcome, refuse or set()
        self.queue: list = []
        self.sent = 0

    def produce(self, topic, key=None, value=None, on_delivery=None) -> None:
        self.queue.append((self.sent, on_delivery))
        self.sent += 1

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = -1) -> int:
        if self.outcome == "timeout":
            return len(self.queue)  # nothing acknowledged in time: callbacks not served
        for n, callback in self.queue:
            callback("broker refused: test" if n in self.refuse else None, None)
        self.queue.clear()
        return 0


class FakeApi:
    """Records the requests the stream makes to the control plane."""

    def __init__(self) -> None:
        self.calls: list[str] = []

        def handle(request: httpx.Request) -> httpx.Response:
            self.calls.append(request.url.path)
            return httpx.Response(200, json={"status": "ok"})

        self.client = httpx.Client(base_url="http://api.test", transport=httpx.MockTransport(handle))


@pytest.fixture(autouse=True)
def no_s3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage, "put_segment", lambda *args, **kwargs: None)


def sent(producer: FakeProducer, chunks: int = 3) -> LiveStream:
    stream = LiveStream("live-0123456789", producer)
    for _ in range(chunks):
        stream.send(SEGMENT, 2000)
    return stream


def test_the_end_marker_follows_the_acknowledgement_of_every_chunk() -> None:
    api = FakeApi()
    stream = sent(FakeProducer("ack"))
    stream.end(api.client)
    assert api.calls == ["/streams/end"]
    assert stream.undelivered() == (0, [])


def test_no_end_marker_when_kafka_does_not_acknowledge_in_time() -> None:
    api = FakeApi()
    stream = sent(FakeProducer("timeout"))
    with pytest.raises(UndeliveredChunks, match="3 unacknowledged"):
        stream.end(api.client, timeout=0.1)
    assert api.calls == [], "an end marker was requested before Kafka acknowledged the chunks"


def test_no_end_marker_when_kafka_refuses_a_chunk() -> None:
    api = FakeApi()
    stream = sent(FakeProducer("ack", refuse={1}))
    with pytest.raises(UndeliveredChunks, match="1 chunk event.s. refused by Kafka .broker refused: test."):
        stream.end(api.client)
    assert api.calls == []


def test_the_flush_timeout_is_passed_through(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    producer = FakeProducer("ack")
    real_flush = producer.flush
    monkeypatch.setattr(producer, "flush", lambda timeout=-1: (seen.append(timeout), real_flush(timeout))[1])
    sent(producer, 1).end(FakeApi().client)
    assert seen == [stream_mod.FLUSH_TIMEOUT_S]
