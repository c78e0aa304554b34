"""The plain engine: the live logic in a confluent-kafka consumer loop, no Spark. The floor of what this I/O
costs here, which `lab bench live` prints beside the Spark engines.

It runs `live_task.process_received`, the function a Spark task of the executor engine runs: validate, detect
gaps, verify SHA-256, PUT the playlist, insert the catalog documents, PUT the state object. Each poll is one
"batch". Offsets are committed after a batch is processed (at-least-once, as confluent-kafka's consumer
example does); the state objects make a re-delivered event a no-op, so the effect is exactly once.

    python -m lab.streaming.plain --prefix bench-plain --from-end

`--prefix` writes into a namespace of its own (playlists, state objects, collections), so it can process the
same events as the running spark-live without touching what that writes.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import Consumer, TopicPartition

from lab import metrics
from lab.config import settings
from lab.streaming.common import decode_rows
from lab.streaming.live_io import Stages, stage_report
from lab.streaming.live_task import Outputs, Summary, process_received

log = logging.getLogger(__name__)

MAX_POLL = 1000  # events per batch at most


@dataclass(frozen=True)
class Record:
    """A Kafka message with the fields `decode_row` reads from a Spark row."""

    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: datetime


def consumer(group: str, *, from_end: bool) -> Consumer:
    """A consumer of the live topic; `from_end`: positioned at each partition's end now (nothing older)."""
    c = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "fetch.wait.max.ms": 10, "log_level": 0})
    if not from_end:
        c.subscribe([settings.live_topic])
        return c
    partitions = c.list_topics(settings.live_topic, timeout=10).topics[settings.live_topic].partitions
    ends = [TopicPartition(settings.live_topic, p, c.get_watermark_offsets(
        TopicPartition(settings.live_topic, p), timeout=10)[1]) for p in partitions]
    c.assign(ends)
    return c


def records(messages: list) -> list[Record]:
    return [Record(m.value(), m.topic(), m.partition(), m.offset(),
                   datetime.fromtimestamp(m.timestamp()[1] / 1000, UTC)) for m in messages if not m.error()]


def run(outputs: Outputs, c: Consumer, stop: threading.Event) -> Summary:
    """Poll, process, commit, until `stop`; returns the sum of the batches' summaries."""
    total, batch_id = Summary(), 0
    while not stop.is_set():
        messages = c.consume(MAX_POLL, timeout=0.1)
        if not messages:
            continue
        started = time.time()
        stages = Stages()
        received, refused = decode_rows(records(messages))
        stages.mark("collect")
        summary = process_received(received, batch_id, outputs) if received else Summary()
        summary.dead_letters += refused
        summary.waits_s = [max(0.0, started - i.event.published_at_ms / 1000) for i in received]
        summary.stages = {**stages.seconds, **summary.stages}
        summary.export(remote=False)
        for stage, seconds in summary.stages.items():
            metrics.live_batch_stage.labels(stage).observe(seconds)
        metrics.batch_duration.labels("live-plain").observe(time.time() - started)
        total.add(summary)
        c.commit(asynchronous=True)
        batch_id += 1
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="", help="write into this namespace ('' = the lab's own)")
    parser.add_argument("--group", default=None, help="consumer group (default: a new one)")
    parser.add_argument("--from-end", action="store_true", help="start at the topic's end, not the group's")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    outputs = Outputs(args.prefix)
    c = consumer(args.group or f"lab-live-plain-{uuid.uuid4().hex[:8]}", from_end=args.from_end)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    try:
        total = run(outputs, c, stop)
    finally:
        c.close()
    log.warning("plain engine: %d chunks processed", total.chunks)
    sys.stdout.write(stage_report() + "\n")  # the bench reads this line: where the time went
    sys.stdout.flush()


if __name__ == "__main__":
    main()
