"""Lesson 06 (trace): a chunk found in Kafka from its catalog document; the slowest hop named."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, checker, hint, passed, untouched


def read_at(topic: str, partition: int, offset: int) -> Any:
    """The one record at (partition, offset), read by a consumer assigned there (no group rebalance)."""
    from confluent_kafka import Consumer, TopicPartition

    from lab.config import settings
    from lab.waiting import wait_for

    consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": "lab-exercises",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        msg = wait_for(lambda: consumer.poll(1.0), f"the record at partition {partition}, offset {offset}",
                       timeout=30)
    finally:
        consumer.close()
    if msg.error():
        raise RuntimeError(str(msg.error()))
    return msg


@checker
def found_in_kafka(position: Any, stream_id: str, chunk_index: int) -> Verdict:
    from lab import events
    from lab.config import settings

    if untouched(position):
        return hint(f"set MY_POSITION to (partition, offset) of chunk {chunk_index}'s event, read from its catalog "
                    "document (catalog.find_by_id), not from this lesson's variables")
    if not (isinstance(position, (tuple, list)) and len(position) == 2 and all(isinstance(p, int) for p in position)):
        return hint("MY_POSITION is a pair of ints: (partition, offset)")
    partition, offset = position
    msg = read_at(settings.live_topic, partition, offset)
    event = events.decode(msg.value())
    if msg.key().decode() != stream_id or getattr(event, "chunk_index", None) != chunk_index:
        return hint(f"the record there is {event.event_type} {getattr(event, 'chunk_index', '')} of "
                    f"{msg.key().decode()}: look at the document's kafka_partition and kafka_offset")
    return passed(f"partition {partition}, offset {offset} holds chunk {chunk_index} of {stream_id}: the catalog "
                  "document leads back to the exact record Spark read")


@checker
def slowest_hop(answer: Any, durations: dict[str, float]) -> Verdict:
    """`durations`: hop label -> milliseconds, as trace_frame shows them."""
    if untouched(answer):
        return hint("set SLOWEST to the label of the hop that took longest, e.g. '1 encoder: segment → S3'")
    slowest = max(durations, key=durations.get)
    if answer not in durations:
        return hint("SLOWEST must be one of the hop labels of the timeline, copied exactly")
    if answer != slowest:
        return hint(f"{answer!r} took {durations[answer]:.0f} ms; one hop took longer. Read the table's duration "
                    "column")
    return passed(f"{slowest!r}: {durations[slowest]:.0f} ms of the total")
