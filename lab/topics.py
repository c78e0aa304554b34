"""Kafka: the topics of the pipeline, and producers/consumers configured the same way everywhere.

Kafka carries chunk *metadata* only (≤ KAFKA_MESSAGE_MAX_BYTES, about 500 bytes each): the bytes of a
segment go to S3, never through the broker.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from lab.config import settings

log = logging.getLogger(__name__)


def topic_partitions() -> dict[str, int]:
    return {
        settings.vod_topic: settings.vod_topic_partitions,
        settings.live_topic: settings.live_topic_partitions,
        settings.dead_letter_topic: 1,
    }


def admin(quiet: bool = False) -> AdminClient:
    """`quiet` silences librdkafka's connection errors, for health probes that expect them."""
    conf: dict[str, object] = {"bootstrap.servers": settings.kafka_servers}
    if quiet:
        conf["log_level"] = 0
    return AdminClient(conf)


def create_scratch_topic(prefix: str, partitions: int, random_bytes: int = 3, timeout_s: float = 30.0) -> str:
    """A new topic `{prefix}{random}` of one replica, for a lesson or a learner's sandbox; returns its name."""
    name = f"{prefix}{secrets.token_hex(random_bytes)}"
    client = admin(quiet=True)  # kept until the futures finish: a destroyed client fails them
    for future in client.create_topics([NewTopic(name, partitions, 1)], request_timeout=timeout_s).values():
        future.result()
    return name


def ensure_topics(timeout_s: float = 30.0) -> list[str]:
    """Create the pipeline's topics if missing (idempotent: an existing topic is left as it is); returns
    the names it created."""
    client = admin()
    existing = client.list_topics(timeout=timeout_s).topics
    wanted = [
        NewTopic(name, num_partitions=parts, replication_factor=settings.kafka_replication_factor,
                 config={"max.message.bytes": str(settings.kafka_message_max_bytes)})
        for name, parts in topic_partitions().items() if name not in existing
    ]
    for future in (client.create_topics(wanted, request_timeout=timeout_s) if wanted else {}).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return [t.topic for t in wanted]


def producer(**overrides: object) -> Producer:
    """Idempotent, acks=all: a retry after a broker hiccup never duplicates or reorders a chunk event."""
    conf = {
        "bootstrap.servers": settings.kafka_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 0,  # latency matters more than batching for one event per segment
        "message.max.bytes": settings.kafka_message_max_bytes,
        "client.id": "lab-producer",
        # librdkafka's own lines (broker restarts, retries) through logging, not straight to stderr: into
        # the process's log, and into the notebook log file in a lesson, never into a cell
        "logger": logging.getLogger("lab.librdkafka"),
    }
    conf.update(overrides)
    return Producer(conf)


DeliveryCallback = Callable[[KafkaError | None, Message], None]


def log_delivery(err: KafkaError | None, msg: Message) -> None:
    """Default delivery report: the final failure of a produce is logged, never silent."""
    if err is not None:
        log.error("delivery to %s failed: %s", msg.topic(), err)


def publish(prod: Producer, topic: str, key: str, value: bytes, on_delivery: DeliveryCallback = log_delivery) -> None:
    """Produce one event keyed by stream_id (so a stream's events stay ordered in one partition)."""
    while True:
        try:
            prod.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
            break
        except BufferError:  # local queue full: serve callbacks, then try again
            prod.poll(0.5)
    prod.poll(0)
