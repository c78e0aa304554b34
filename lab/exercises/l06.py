"""Lesson 06 (trace): a chunk found in Kafka from its catalog document; the slowest hop named."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, checker, hint, is_int, kind, passed, untouched


def read_at(topic: str, partition: int, offset: int) -> Any:
    """The one record at (partition, offset), read by a consumer assigned there (no group rebalance)."""
    from confluent_kafka import Consumer, TopicPartition

    from lab.config import settings
    from lab.waiting import wait_for

    consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": "lab-exercises",
                         "enable.auto.commit": False, "log_level": 0})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=30)
        if not low <= offset < high:
            return None
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
    if not (isinstance(position, (tuple, list)) and len(position) == 2):
        return hint(f"MY_POSITION is {kind(position)}: make it a pair, (partition, offset)")
    odd = next((p for p in position if not is_int(p)), None)
    if odd is not None or any(is_int(p) and p < 0 for p in position):
        return hint(f"MY_POSITION holds {odd!r} ({kind(odd)}): partition and offset are ints from the document's "
                    "kafka_partition and kafka_offset" if odd is not None else "partition and offset are >= 0")
    partition, offset = (int(p) for p in position)
    if partition >= settings.live_topic_partitions:
        return hint(f"{settings.live_topic} has partitions 0-{settings.live_topic_partitions - 1}, so {partition} "
                    "is no partition: is the pair the wrong way round? (partition, offset)")
    msg = read_at(settings.live_topic, partition, offset)
    if msg is None:
        return hint(f"partition {partition} has no record at offset {offset} (not written yet, or past its end): "
                    "read the document's kafka_offset")
    try:
        event = events.decode(msg.value())
    except events.EventError:
        return hint(f"the record at partition {partition}, offset {offset} is not a chunk event (a bad one, sent "
                    "to the dead letter): look at the document's kafka_partition and kafka_offset")
    if msg.key().decode() != stream_id or getattr(event, "chunk_index", None) != chunk_index:
        return hint(f"the record there is {event.event_type} {getattr(event, 'chunk_index', '')} of "
                    f"{msg.key().decode()}: look at the document's kafka_partition and kafka_offset")
    return passed(f"partition {partition}, offset {offset} holds chunk {chunk_index} of {stream_id}: the catalog "
                  "document leads back to the exact record Spark read")


@checker
def slowest_hop(answer: Any, durations: dict[str, float]) -> Verdict:
    """`durations`: hop label -> milliseconds, as trace_frame shows them (the hops do not overlap)."""
    if untouched(answer):
        return hint("set SLOWEST to the label of the hop that took longest, e.g. '1 encoder: segment → S3'")
    slowest = max(durations, key=durations.get)
    if not isinstance(answer, str):
        return hint(f"SLOWEST is {kind(answer)}: it is a hop's label (a str), copied from the table's hop column")
    if answer not in durations:
        near = [h for h in durations if h.split(" ", 1)[0] == answer.strip().split(" ", 1)[0]]
        return hint("SLOWEST must be one of the hop labels of the timeline, copied exactly"
                    + (f": did you mean {near[0]!r}?" if near else ""))
    if answer != slowest:
        return hint(f"{answer!r} took {durations[answer]:.0f} ms; one hop took longer. Read the table's duration "
                    "column")
    return passed(f"{slowest!r}: {durations[slowest]:.0f} ms of the total")
