"""Lesson 01 (Kafka): a key for a given partition; an event fixed after reading its dead letter."""

from __future__ import annotations

import json
import zlib
from typing import Any

from lab.exercises import Verdict, checker, hint, passed, untouched

PROBE_TOPIC = "lab-exercises-keys"  # a topic of its own: a probe never lands among the pipeline's events


def predicted_partition(key: str, partitions: int) -> int:
    """librdkafka's default partitioner (`consistent_random`): CRC-32 of the key, modulo the partition count.
    (Kafka's Java client uses murmur2 instead: the two put the same key on different partitions.)"""
    return zlib.crc32(key.encode()) % partitions


def landed_partition(key: str, partitions: int) -> int:
    """Where Kafka really puts `key`: one small record produced to the probe topic, with as many partitions
    as `partitions`, and the partition its delivery report names."""
    from confluent_kafka.admin import NewTopic

    from lab import topics

    admin = topics.admin(quiet=True)
    if PROBE_TOPIC not in admin.list_topics(timeout=30).topics:
        for future in admin.create_topics([NewTopic(PROBE_TOPIC, partitions, 1)], request_timeout=30).values():
            try:
                future.result()
            except Exception as exc:  # created meanwhile by another checker: fine
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    reports: list[tuple[Any, int]] = []
    producer = topics.producer(**{"client.id": "lab-exercises"})
    producer.produce(PROBE_TOPIC, key=key.encode(), value=b"probe",
                     on_delivery=lambda err, msg: reports.append((err, msg.partition())))
    if producer.flush(30) or not reports or reports[0][0] is not None:
        raise RuntimeError(f"Kafka did not acknowledge the probe: {reports}")
    return reports[0][1]


@checker
def key_for_partition(key: Any, target: int, partitions: int) -> Verdict:
    if untouched(key):
        return hint(f"set MY_KEY to a string that lands on partition {target}. Try some, e.g. in a loop over "
                    f"f'live-{{i:010d}}' with predicted_partition(key, {partitions}), then run this cell")
    if not isinstance(key, str) or not key:
        return hint(f"MY_KEY must be a non-empty string (a stream id is one), not {type(key).__name__}")
    landed = landed_partition(key, partitions)
    if landed != target:
        return hint(f"Kafka put {key!r} on partition {landed}, not {target}: the partition is a hash of the key, "
                    "so another key gives another partition. Try the next one")
    return passed(f"Kafka put {key!r} on partition {target}, as the hash said: every event with this key will "
                  "land there, in order")


@checker
def fixed_event(value: Any) -> Verdict:
    from lab import events

    if untouched(value):
        return hint("set FIXED to the event as a dict: start from the bad one and add what the reason asks for")
    raw = value if isinstance(value, (bytes, str)) else json.dumps(value)
    try:
        event = events.decode(raw)
    except events.EventError as exc:
        return hint(f"still refused, with the reason {exc.reason!r}: fix that field (lesson 01's `event` shows "
                    "a valid one) and run the cell again")
    if event.event_type != "live_chunk":
        return hint(f"valid, but a {event.event_type} event: the live query expects a live_chunk")
    return passed(f"the live query would accept it: chunk {event.chunk_index} of {event.stream_id}")
