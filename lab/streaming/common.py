"""What both queries share: turning a micro-batch into validated events, and the dead-letter topic.

A bad event is published to the dead-letter topic with its reason and counted; it never stops a query
and never vanishes (its offset is only committed by Spark after the dead-letter write succeeded).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from confluent_kafka import Producer

from lab import events, metrics, topics
from lab.config import settings

if TYPE_CHECKING:  # the plain consumer shares this module without loading Spark
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

KAFKA_COLUMNS = ("key", "value", "topic", "partition", "offset", "timestamp")


@dataclass(frozen=True)
class Received:
    """A valid event and where it came from in Kafka (shown by the chunk-trace lesson)."""

    event: events.VodChunkEvent | events.LiveChunkEvent | events.LiveEndEvent
    partition: int
    offset: int
    kafka_timestamp_ms: int


@cache
def dead_letter_producer() -> Producer:
    return topics.producer(**{"client.id": "lab-spark-dead-letter"})


def split_batch(batch_df: DataFrame) -> list[Received]:
    """Collect a batch's Kafka rows on the driver (they are ~500-byte metadata records), validate each;
    the invalid ones go to the dead-letter topic. Returns the valid ones in Kafka order."""
    valid, _ = decode_rows(batch_df.select(*KAFKA_COLUMNS).collect())
    return valid


def decode_rows(rows: Iterable[Any]) -> tuple[list[Received], int]:
    """Kafka rows in Kafka order -> (the valid events, how many went to the dead-letter topic, flushed)."""
    valid: list[Received] = []
    refused = 0
    for row in sorted(rows, key=lambda r: (r.partition, r.offset)):
        item = decode_row(row)
        if item is None:
            refused += 1
        else:
            valid.append(item)
    if refused:
        flush_dead_letters()
    return valid, refused


def decode_row(row: Any) -> Received | None:
    """One Kafka row (a Spark Row, or anything with the same fields) -> its valid event, or None after
    sending it to the dead-letter topic (the caller flushes)."""
    try:
        event = events.decode(row.value)
    except events.EventError as exc:
        send_dead_letter(row.value, exc.reason, topic=row.topic, partition=row.partition, offset=row.offset)
        return None
    return Received(event, row.partition, row.offset, int(row.timestamp.timestamp() * 1000))


def send_dead_letter(raw: bytes | None, reason: str, *, topic: str, partition: int, offset: int) -> None:
    log.warning("dead-lettering %s[%d]@%d: %s", topic, partition, offset, reason)
    value = events.dead_letter(raw, reason, topic=topic, partition=partition, offset=offset)
    topics.publish(dead_letter_producer(), settings.dead_letter_topic, f"{topic}-{partition}", value)
    metrics.dead_letters.labels(topic).inc()


def flush_dead_letters() -> None:
    if dead_letter_producer().flush(30):
        raise RuntimeError("dead-letter topic did not acknowledge; the batch will be retried")
