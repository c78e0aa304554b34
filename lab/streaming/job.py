"""`lab spark-job --query vod|live|all`: start the Spark Structured Streaming queries and serve their metrics.

Embedded mode runs VOD and live as two Spark applications, so a long transcode never delays a live
playlist; on a cluster (and in the container stack), `--query all` runs both in one application, with the
FAIR scheduler pools of fairscheduler.xml giving the live query's tasks the free cores first.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import signal
import threading
import time

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


def _offsets(value: object) -> dict[str, dict[str, int]]:
    return json.loads(value) if isinstance(value, str) else (value or {})


def offsets_skipped(source: dict) -> int:
    """Offsets a batch's range covered that delivered no record: records that expired before the query read
    them (failOnDataLoss=false reads on), or transaction markers (no producer of this lab is transactional)."""
    start, end = _offsets(source.get("startOffset")), _offsets(source.get("endOffset"))
    covered = sum(max(0, int(e) - int(start.get(topic, {}).get(part, e)))
                  for topic, parts in end.items() for part, e in parts.items())
    return max(0, covered - int(source.get("numInputRows", 0)))


class LagListener(StreamingQueryListener):
    """After every batch, per query: the Kafka consumer lag (`kafka_consumer_lag{query}`, with the time of
    its last measurement beside it), and the offsets the batch skipped (`kafka_offsets_skipped_total`)."""

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        progress = json.loads(event.progress.json)
        query = progress.get("name") or "unnamed"
        for source in progress.get("sources", []):
            end = source.get("endOffset")
            if not source.get("description", "").startswith("KafkaV2") or not end:
                continue
            self._count_skipped(query, source)
            try:
                behind = offsets_behind(_offsets(end))
            except Exception as exc:  # the broker away: no value rather than a stale one that looks current
                log.warning("query %s: consumer lag not measured (%s)", query, exc)
                with contextlib.suppress(KeyError):
                    metrics.consumer_lag.remove(query)
                continue
            metrics.consumer_lag.labels(query).set(float(behind))
            metrics.consumer_lag_measured.labels(query).set(time.time())

    @staticmethod
    def _count_skipped(query: str, source: dict) -> None:
        skipped = offsets_skipped(source)
        if skipped:
            metrics.offsets_skipped.labels(query).inc(skipped)
            log.error("query %s: %d offset(s) in batch %s..%s had no record (expired before they were read?)",
                      query, skipped, source.get("startOffset"), source.get("endOffset"))

    def onQueryIdle(self, event) -> None:
        pass

    def onQueryTerminated(self, event) -> None:
        pass


# The module whose `__main__` is the Python daemon of the VOD application: it preloads what the transcode
# tasks import. Only the VOD application sets it; the live application keeps pyspark's own daemon.
VOD_PYTHON_DAEMON = "lab.streaming.vod_task"


def start_queries(spark: SparkSession, which: str) -> list:
    from lab.streaming import live, vod

    starters = {"vod": [("vod", vod.start)], "live": [("live", live.start)],
                "all": [("live", live.start), ("vod", vod.start)]}[which]
    queries = []
    for pool, start in starters:
        # a query's batches run their jobs in the pool set on the thread that starts it (FAIR mode only)
        spark.sparkContext.setLocalProperty("spark.scheduler.pool", pool if which == "all" else None)
        queries.append(start(spark))
    spark.sparkContext.setLocalProperty("spark.scheduler.pool", None)
    return queries


def main(which: str) -> None:
    ports = {"vod": (settings.spark_vod_metrics_port, settings.spark_vod_ui_port),
             "live": (settings.spark_live_metrics_port, settings.spark_live_ui_port),
             "all": (settings.spark_vod_metrics_port, settings.spark_vod_ui_port)}
    metrics_port, ui_port = ports[which]
    if which == "vod" and settings.spark_vod_nice:
        # Before the JVM starts: it, its Python workers and their ffmpeg children inherit the niceness, so on
        # a shared machine the live application's batches get the cores first. One application running
        # both (`all`) cannot do this per query: the FAIR pools order its tasks instead.
        os.nice(settings.spark_vod_nice)
    spark = session.build(f"lab-{which}", ui_port=ui_port, fair_pools=which == "all",
                          python_daemon=VOD_PYTHON_DAEMON if which in ("vod", "all") else None)
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
