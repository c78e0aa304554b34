"""`lab spark-job --query vod|live|all`: start the Spark Structured Streaming queries and serve their metrics.

Embedded mode runs VOD and live as two Spark applications, so a long transcode never delays a live
playlist; on a cluster, `--query all` runs both in one application.
"""

from __future__ import annotations

import functools
import json
import logging
import signal
import threading

from pyspark.sql import SparkSession
from pyspark.sql.streaming import StreamingQueryListener

from lab import metrics
from lab.config import settings
from lab.streaming import session

log = logging.getLogger(__name__)


def offsets_behind(end_offsets: dict[str, dict[str, int]]) -> int:
    """Records on the broker that a query has not processed: each partition's latest offset minus the end
    offset of the query's last batch. (Spark's own `maxOffsetsBehindLatest` compares the batch's end with
    the latest offset *when the batch was planned*; without maxOffsetsPerTrigger a batch always reads to
    that latest, so it is always 0, however far behind the query runs.)"""
    from confluent_kafka import TopicPartition

    consumer = _watermark_consumer()
    return sum(max(0, consumer.get_watermark_offsets(TopicPartition(topic, int(part)), timeout=5)[1] - int(end))
               for topic, parts in end_offsets.items() for part, end in parts.items())


@functools.cache
def _watermark_consumer():
    """A consumer that never subscribes: it only asks the broker for high watermarks."""
    from confluent_kafka import Consumer

    return Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": "lab-lag-probe",
                     "enable.auto.commit": False, "log_level": 0})


class LagListener(StreamingQueryListener):
    """Exports each query's Kafka consumer lag after every batch (`kafka_consumer_lag{query}`)."""

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        progress = json.loads(event.progress.json)
        query = progress.get("name") or "unnamed"
        for source in progress.get("sources", []):
            end = source.get("endOffset")
            if not source.get("description", "").startswith("KafkaV2") or not end:
                continue
            try:
                behind = offsets_behind(json.loads(end) if isinstance(end, str) else end)
            except Exception as exc:  # the broker briefly away: keep the last value, say why once per batch
                log.warning("query %s: consumer lag not measured (%s)", query, exc)
                continue
            metrics.consumer_lag.labels(query).set(float(behind))

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


def start_queries(spark: SparkSession, which: str) -> list:
    from lab.streaming import live, vod

    starters = {"vod": [vod.start], "live": [live.start], "all": [vod.start, live.start]}[which]
    return [start(spark) for start in starters]


def main(which: str) -> None:
    ports = {"vod": (settings.spark_vod_metrics_port, settings.spark_vod_ui_port),
             "live": (settings.spark_live_metrics_port, settings.spark_live_ui_port),
             "all": (settings.spark_vod_metrics_port, settings.spark_vod_ui_port)}
    metrics_port, ui_port = ports[which]
    spark = session.build(f"lab-{which}", ui_port=ui_port)
    spark.streams.addListener(LagListener())
    queries = start_queries(spark, which)
    metrics.serve(metrics_port, settings.lab_host)  # after start: the health check means "queries running"
    log.info("queries running: %s", ", ".join(q.name for q in queries))

    stopping = threading.Event()

    def stop(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not stopping.is_set():
            for q in queries:
                if not q.isActive:
                    raise SystemExit(f"query {q.name} stopped: {q.exception()}")
            stopping.wait(1.0)
    finally:
        for q in queries:
            q.stop()
        spark.stop()
