"""`lab spark-job --query vod|live|all`: start the Spark Structured Streaming queries and serve their metrics.

Embedded mode runs VOD and live as two Spark applications, so a long transcode never delays a live
playlist; on a cluster, `--query all` runs both in one application.
"""

from __future__ import annotations

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


class LagListener(StreamingQueryListener):
    """Exports each query's Kafka lag (offsets behind latest, from the source's progress metrics)."""

    def onQueryStarted(self, event) -> None:
        pass

    def onQueryProgress(self, event) -> None:
        progress = json.loads(event.progress.json)
        for source in progress.get("sources", []):
            behind = (source.get("metrics") or {}).get("maxOffsetsBehindLatest")
            if behind is not None:
                metrics.consumer_lag.labels(progress.get("name") or "unnamed").set(float(behind))

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
