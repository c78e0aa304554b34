"""Kafka: topics with their partitions and offsets, consumer groups with their lag, and a message browser.

The browser reads the last N messages of a topic with a throwaway consumer: a random group id, partitions
assigned by hand at (end - N), nothing committed, so it leaves no group behind and moves no one's offsets.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets
import pandas as pd
from confluent_kafka import Consumer, KafkaError, TopicPartition

from lab import topics
from lab.config import settings
from lab.widgets._base import LabWidget, esc, fmt_bytes, fmt_time, html_table, muted_html, nullable_ints

TIMEOUT_S = 10.0


def _consumer(group: str | None = None, **overrides: Any) -> Consumer:
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_servers,
        "group.id": group or f"lab-browser-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "log_level": 0,  # connection noise would land in the notebook; errors surface as exceptions
    }
    conf.update(overrides)
    return Consumer(conf)


def pipeline_topics() -> list[str]:
    return list(topics.topic_partitions())


def topic_frame(names: list[str] | None = None) -> pd.DataFrame:
    """topic, partition, leader, earliest offset, end offset, messages kept (end - earliest)."""
    consumer = _consumer()
    try:
        metadata = consumer.list_topics(timeout=TIMEOUT_S)
        wanted = names or sorted(t for t in metadata.topics if not t.startswith("__"))
        rows = []
        for name in wanted:
            topic = metadata.topics.get(name)
            if topic is None or topic.error is not None:
                continue
            for pid, part in sorted(topic.partitions.items()):
                low, high = consumer.get_watermark_offsets(TopicPartition(name, pid), timeout=TIMEOUT_S)
                rows.append({"topic": name, "partition": pid, "leader": part.leader, "earliest": low,
                             "end": high, "messages": high - low})
        return pd.DataFrame(rows, columns=["topic", "partition", "leader", "earliest", "end", "messages"])
    finally:
        consumer.close()


def group_lag_frame(group: str, topic: str) -> pd.DataFrame:
    """A consumer group's committed offset and lag (end offset - committed) per partition of `topic`."""
    consumer = _consumer(group)
    try:
        parts = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic].partitions
        committed = consumer.committed([TopicPartition(topic, p) for p in sorted(parts)], timeout=TIMEOUT_S)
        rows = []
        for tp in committed:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=TIMEOUT_S)
            offset = tp.offset if tp.offset >= 0 else None  # -1001: nothing committed yet
            rows.append({"group": group, "topic": topic, "partition": tp.partition, "committed": offset,
                         "end": high, "lag": None if offset is None else high - offset})
        return nullable_ints(pd.DataFrame(rows, columns=["group", "topic", "partition", "committed", "end", "lag"]),
                             ["committed", "lag"])
    finally:
        consumer.close()


def consumer_groups() -> list[str]:
    """Consumer groups the broker knows. Spark's Kafka source assigns partitions itself and keeps its
    offsets in its checkpoint, so the pipeline's queries do not appear here (their lag: notebook 07)."""
    admin = topics.admin(quiet=True)  # kept referenced until the answer arrives: a collected client cancels it
    result = admin.list_consumer_groups(request_timeout=TIMEOUT_S).result()
    return sorted(g.group_id for g in result.valid)


def decode_value(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return raw.decode("utf-8", errors="replace")


def last_messages(topic: str, n: int = 10, *, key: str | None = None) -> list[dict[str, Any]]:
    """The last `n` messages of `topic` across its partitions, oldest first (optionally only one key)."""
    consumer = _consumer()
    try:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics[topic]
        if metadata.error is not None:
            raise LookupError(f"topic {topic!r}: {metadata.error.str()}")
        assignment, remaining = [], set()
        for pid in sorted(metadata.partitions):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, pid), timeout=TIMEOUT_S)
            if high > low:
                # with a key filter, read further back: the key's messages are a subset of one partition
                start = max(low, high - (n * 20 if key else n))
                assignment.append(TopicPartition(topic, pid, start))
                remaining.add(pid)
        if not assignment:
            return []
        consumer.assign(assignment)
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + TIMEOUT_S
        while remaining and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    remaining.discard(msg.partition())
                    continue
                raise RuntimeError(msg.error().str())
            msg_key = msg.key().decode(errors="replace") if msg.key() is not None else None
            if key is not None and msg_key != key:
                continue
            _, ts = msg.timestamp()
            found.append({"topic": topic, "partition": msg.partition(), "offset": msg.offset(), "key": msg_key,
                          "timestamp": datetime.fromtimestamp(ts / 1000, UTC) if ts > 0 else None,
                          "size": len(msg.value() or b""), "value": decode_value(msg.value())})
        found.sort(key=lambda m: (m["timestamp"] or datetime.min.replace(tzinfo=UTC), m["partition"], m["offset"]))
        return found[-n:]
    finally:
        consumer.close()


def messages_frame(messages: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per message with the event's main fields pulled out of the JSON."""
    rows = []
    for m in messages:
        value = m["value"] if isinstance(m["value"], dict) else {}
        rows.append({"partition": m["partition"], "offset": m["offset"], "key": m["key"],
                     "event_type": value.get("event_type") or ("dead letter" if "reason" in value else None),
                     "chunk_index": value.get("chunk_index"), "bytes": m["size"]})
    return pd.DataFrame(rows, columns=["partition", "offset", "key", "event_type", "chunk_index", "bytes"])


def messages_html(messages: list[dict[str, Any]]) -> str:
    if not messages:
        return muted_html("no messages")
    rows = []
    for m in messages:
        value = m["value"]
        pretty = json.dumps(value, indent=2, default=str) if isinstance(value, (dict, list)) else str(value)
        kind = value.get("event_type") or ("dead letter: " + str(value.get("reason", ""))[:60]) \
            if isinstance(value, dict) else "not JSON"
        rows.append((m["partition"], m["offset"], esc(m["key"]), esc(fmt_time(m["timestamp"])),
                     fmt_bytes(m["size"]),
                     f"<details><summary>{esc(kind)}</summary><pre>{esc(pretty)}</pre></details>"))
    return html_table(["partition", "offset", "key", "time (UTC)", "size", "value (click to open)"], rows,
                      raw=(2, 3, 5), numeric=(0, 1, 4))


class TopicBrowser(LabWidget):
    """Topics with partitions and offsets on top; below, the last N messages of the chosen topic."""

    title = "Kafka topics"

    def __init__(self, topic: str | None = None, n: int = 5, *, interval: float = 5.0, auto: bool = False,
                 key: str | None = None):
        names = pipeline_topics()
        self.topic_select = widgets.Dropdown(options=names, value=topic or names[0], description="topic",
                                             layout=widgets.Layout(width="260px"))
        self.n_slider = widgets.IntSlider(value=n, min=1, max=50, description="last N",
                                          layout=widgets.Layout(width="260px"))
        self.key = key
        self.messages: list[dict[str, Any]] = []
        self.topics = pd.DataFrame()
        super().__init__(controls=[self.topic_select, self.n_slider], interval=interval, auto=auto)
        self.on_change(self.topic_select)
        self.on_change(self.n_slider)

    def render(self) -> str:
        frame = topic_frame(pipeline_topics())
        self.topics = frame
        rows = [(r.topic, r.partition, r.leader, r.earliest, r.end, r.messages) for r in frame.itertuples()]
        table = html_table(["topic", "partition", "leader", "earliest offset", "end offset", "messages"], rows,
                           numeric=(1, 2, 3, 4, 5))
        self.messages = last_messages(self.topic_select.value, self.n_slider.value, key=self.key)
        which = f" with key {esc(self.key)}" if self.key else ""
        return (table + f"<p><b>last {self.n_slider.value} message(s) of {esc(self.topic_select.value)}"
                f"{which}</b></p>" + messages_html(self.messages))
