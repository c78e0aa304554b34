"""Lesson 01 (Kafka): a key for a given partition, judged by where Kafka puts it; an event fixed after reading
its dead letter, judged by the live query recording it."""

from __future__ import annotations

import json
from typing import Any

from lab.exercises import Verdict, checker, hint, kind, passed, untouched

PROBE_TOPIC = "lab-exercises-keys"  # a topic of its own: a probe never lands among the pipeline's events
RECORD_TIMEOUT_S = 180.0


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
        return hint(f"set MY_KEY to a string that lands on partition {target}: write the partitioner's hash "
                    f"(CRC-32 of the key's bytes, modulo {partitions}) and try keys such as f'live-{{i:010d}}'")
    if isinstance(key, bytes):
        return hint("MY_KEY is bytes: give the str (the producer encodes it), e.g. key.decode()")
    if not isinstance(key, str) or not key:
        return hint(f"MY_KEY must be a non-empty str (a stream id is one), not {kind(key)}")
    landed = landed_partition(key, partitions)
    if landed != target:
        return hint(f"Kafka put {key!r} on partition {landed}, not {target}: the partition is a hash of the key, "
                    "so another key gives another partition. Check your hash against this one, then try the next")
    return passed(f"Kafka put {key!r} on partition {target}, as the hash said: every event with this key will "
                  "land there, in order")


def _as_event(value: Any) -> tuple[Any, Verdict | None]:
    from lab import events

    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):
        return None, hint(f"FIXED is {kind(value)}: the exercise is the JSON a producer sends, so give a dict "
                          "(the bad event with the fields its reasons ask for)")
    if not isinstance(value, (dict, str, bytes)):
        return None, hint(f"FIXED is {kind(value)}: make it a dict, starting from {{'event_type': 'live_chunk'}}")
    raw = value if isinstance(value, (bytes, str)) else json.dumps(value, default=str)
    try:
        return events.decode(raw), None
    except events.EventError as exc:
        return None, hint(f"still refused, with the reason {exc.reason!r}: fix that field (the event built "
                          "earlier in the lesson shows a valid one) and run the cell again")


@checker
def fixed_event(value: Any, stream_id: str, taken: tuple[int, ...] = (0, 1)) -> Verdict:
    """The fixed event, published for real: ✓ once the live query has recorded its chunk. It must describe
    a segment already in S3 (upload first, publish second), of the lesson's stream, under a chunk index the
    lesson has not used (`taken`)."""
    from lab import catalog, events, media, storage, topics
    from lab.config import settings
    from lab.waiting import wait_for

    if untouched(value):
        return hint("set FIXED to the event as a dict: start from the bad one and add what the reason asks for")
    event, refused = _as_event(value)
    if refused is not None:
        return refused
    if event.event_type != "live_chunk":
        return hint(f"valid, but a {event.event_type} event: the live query expects a live_chunk")
    if event.stream_id != stream_id:
        return hint(f"the event is for {event.stream_id}; use the lesson's stream, stream_id ({stream_id}): the "
                    "live query records chunks of streams the API started")
    if event.chunk_index in taken:
        return hint(f"chunk {event.chunk_index} of this stream was already published above (copied from "
                    "`event`?): give yours a new chunk_index and sequence_number, and upload its segment first")
    if event.object_key != storage.live_chunk_key(stream_id, event.chunk_index):
        return hint(f"object_key {event.object_key!r}: chunk {event.chunk_index}'s segment belongs at "
                    f"{storage.live_chunk_key(stream_id, event.chunk_index)!r} (storage.live_chunk_key)")
    try:
        data = storage.get_bytes(settings.bucket_live, event.object_key)
    except Exception as exc:
        if "NoSuchKey" not in str(exc) and "404" not in str(exc):
            raise
        return hint(f"nothing is at {settings.bucket_live}/{event.object_key}: upload the segment first "
                    "(storage.put_segment), then publish the event that names it")
    if media.sha256_bytes(data) != event.checksum_sha256 or len(data) != event.size_bytes:
        return hint("checksum_sha256 and size_bytes must describe the bytes you uploaded (segment.sha256, "
                    "len(segment.data)): the live query re-hashes them and would refuse the chunk")
    producer = topics.producer(**{"client.id": "lab-exercises"})
    topics.publish(producer, settings.live_topic, stream_id, events.encode(event))
    if producer.flush(30):
        raise ConnectionError("Kafka did not acknowledge the fixed event within 30 s")
    doc = wait_for(lambda: catalog.find_by_id(catalog.LIVE, catalog.doc_id(stream_id, event.chunk_index)),
                   f"the live query to record chunk {event.chunk_index}", timeout=RECORD_TIMEOUT_S, every=1)
    if not doc.get("checksum_ok"):
        return hint(f"the live query recorded chunk {event.chunk_index} as bad: {doc.get('reason')}")
    return passed(f"published, and the live query recorded chunk {event.chunk_index} of {stream_id} "
                  f"(playlist number {doc.get('playlist_seq')}): the dead letter's reason was the whole bug report")


GROW_KEYS = [f"live-{i:010d}" for i in range(12)]


def _partitions_of(topic: str, keys: list[str]) -> dict[str, int]:
    """Where Kafka puts each key now: one record per key, by a new producer (fresh partition metadata)."""
    from lab import topics

    landed: dict[str, int] = {}
    producer = topics.producer(**{"client.id": "lab-exercises-grow"})
    for key in keys:
        producer.produce(topic, key=key.encode(), value=b"probe",
                         on_delivery=lambda err, msg: err is None and landed.__setitem__(msg.key().decode(),
                                                                                          msg.partition()))
    if producer.flush(30) or len(landed) != len(keys):
        raise ConnectionError(f"Kafka acknowledged {len(landed)} of {len(keys)} probe records")
    return landed


@checker
def grown(grow: Any, moved: Any, before: int = 3, after: int = 6) -> Verdict:
    """Build it: `grow(admin, topic, partitions)` adds partitions to a topic of the learner's own (the sandbox),
    and `moved` predicts which of GROW_KEYS then land elsewhere. Judged by Kafka: the topic's partition count
    after the learner's code ran, and where the same keys land before and after."""
    import pandas as pd

    from lab import topics
    from lab.exercises import call, sandbox

    if untouched(grow) or untouched(moved):
        return hint("write grow(admin, topic, partitions) with admin.create_partitions and NewPartitions, set "
                    "MOVED to the keys you expect to move, then run this cell")
    if not callable(grow):
        return hint(f"grow is {kind(grow)}: define it as a function, def grow(admin, topic, partitions)")
    if not isinstance(moved, (set, list, tuple, frozenset)) or not all(
            isinstance(k, str) for k in moved):
        return hint(f"MOVED is {kind(moved)}: make it a set of the keys (from KEYS) that you expect to land on "
                    "another partition, using your hash from Your turn 1")
    topic = sandbox.topic("grow", before)
    admin = topics.admin(quiet=True)
    try:
        first = _partitions_of(topic, GROW_KEYS)
        _, broke = call(grow, admin, topic, after, name="grow", case=f"your topic {topic}")
        if broke is not None:
            return broke
        now = len(admin.list_topics(topic, timeout=30).topics[topic].partitions)
        if now != after:
            return hint(f"after your grow, {topic} has {now} partitions, not {after}: create_partitions takes the "
                        "new total (NewPartitions(topic, total)) and returns futures; wait on each .result()")
        second = _partitions_of(topic, GROW_KEYS)
    finally:
        for future in admin.delete_topics([topic], request_timeout=30).values():
            future.result()
    actual = {k for k in GROW_KEYS if first[k] != second[k]}
    table = pd.DataFrame([{"key": k, f"partition of {before}": first[k], f"partition of {after}": second[k],
                           "moved": k in actual, "you said": k in set(moved)} for k in GROW_KEYS])
    if set(moved) != actual:
        return hint(f"your grow worked ({topic} went from {before} to {after} partitions), but {len(actual)} keys "
                    f"moved and you named {len(set(moved))}, {len(set(moved) ^ actual)} of them wrongly: a key "
                    "moves when hash % old != hash % new", table)
    return passed(f"your grow took {topic} from {before} to {after} partitions, and the {len(actual)} keys you named "
                  "moved: a stream whose key moves has its new events on another partition than its old ones, "
                  "so its order holds only within each", table)
