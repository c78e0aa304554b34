"""The services of the embedded stack: how each starts, when it is healthy, what it provisions.

Infrastructure (Kafka, S3, catalog, Prometheus) starts first; once it is healthy the topics, buckets and
indexes are provisioned, then the lab's own processes (API, Spark queries, producer, JupyterLab) start.
"""

from __future__ import annotations

import hmac
import os
import sys
import uuid
from base64 import urlsafe_b64encode
from pathlib import Path

import httpx

from lab import catalog, storage, topics
from lab.config import ROOT, settings
from lab.stack import ferretdb, tools
from lab.stack.ports import SUPERVISOR
from lab.stack.supervisor import Service, data_dir

H = settings.lab_host
JUPYTER_SETTINGS = ROOT / "lab" / "jupyter_settings"  # also the containers' (docker-compose.yml)


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


def _lab(*args: str) -> list[str]:
    """The lab's own entrypoints, the same commands the container images run."""
    return [sys.executable, "-m", "lab", *args]


# --- Kafka 4 in KRaft mode (broker and controller in one JVM) ---------------------------------------

def _kafka_config() -> Path:
    conf = data_dir("kafka") / "server.properties"
    conf.write_text("\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers={H}:{settings.kafka_controller_port}",
        f"listeners=PLAINTEXT://{H}:{settings.kafka_port},CONTROLLER://{H}:{settings.kafka_controller_port}",
        f"advertised.listeners=PLAINTEXT://{H}:{settings.kafka_port}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        f"log.dirs={data_dir('kafka') / 'logs'}",
        "num.partitions=1",
        "offsets.topic.replication.factor=1",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        f"message.max.bytes={settings.kafka_message_max_bytes}",
        "log.retention.hours=24",
        "",
    ]))
    (data_dir("kafka") / "tools-log4j2.properties").write_text(
        "appender.console.type=Console\nappender.console.name=STDERR\nappender.console.target=SYSTEM_ERR\n"
        "appender.console.layout.type=PatternLayout\nappender.console.layout.pattern=%p %m%n\n"
        "rootLogger.level=ERROR\nrootLogger.appenderRef.stderr.ref=STDERR\n")
    (data_dir("kafka") / "log4j2.properties").write_text("\n".join([
        "appender.console.type=Console",
        "appender.console.name=STDOUT",
        "appender.console.layout.type=PatternLayout",
        "appender.console.layout.pattern=[%d] %p %m (%c)%n",
        "rootLogger.level=INFO",
        "rootLogger.appenderRef.stdout.ref=STDOUT",
        "logger.kafka.name=kafka",
        "logger.kafka.level=WARN",
        "logger.state.name=state.change.logger",
        "logger.state.level=WARN",
        "",
    ]))
    return conf


def _kafka_java(main: str, *args: str, heap: str | None = None, log_config: str = "log4j2.properties") -> list[str]:
    heap = heap or settings.kafka_heap
    return [tools.java(), f"-Xmx{heap}", f"-Xms{heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={data_dir('kafka') / log_config}",
            "-cp", f"{tools.kafka_libs()}/*", main, *args]


def _kafka_prepare() -> None:
    conf = _kafka_config()
    if (data_dir("kafka") / "logs" / "meta.properties").exists():
        return
    cluster_id = urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    tools.run(_kafka_java("kafka.tools.StorageTool", "format", "--cluster-id", cluster_id, "--config", str(conf),
                          "--standalone", heap="128m", log_config="tools-log4j2.properties"),
              "formatting Kafka's KRaft storage")


def _kafka_healthy() -> bool:
    md = topics.admin(quiet=True).list_topics(timeout=2)
    return bool(md.brokers)


def kafka_admin_tool(main: str, *args: str) -> str:
    """Run one of Kafka's own admin tools (MetadataQuorumCommand, FeatureCommand) against the broker."""
    _kafka_config()
    cmd = _kafka_java(main, "--bootstrap-server", settings.kafka_servers, *args, heap="128m",
                      log_config="tools-log4j2.properties")
    return tools.run(cmd, main)


# --- S3: SeaweedFS master + volume + filer + S3 gateway in one process ------------------------------

def _s3_config() -> Path:
    import json

    conf = data_dir("s3") / "s3.json"
    conf.write_text(json.dumps({"identities": [{
        "name": "lab",
        "credentials": [{"accessKey": settings.s3_access_key, "secretKey": settings.s3_secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}, indent=2))
    return conf


def _s3_security() -> Path:
    """security.toml (read from -config_dir): only the S3 gateway, with SigV4, leads to objects.

    Without it SeaweedFS's own HTTP interfaces serve every object to anyone who reaches them: the filer
    (GET /buckets/<bucket>/<key>, directory listings) and the volume server (GET /<fid>). With a JWT key
    for each (weed scaffold -config=security): the volume server accepts reads and writes only with a
    token the master or filer mints for one file id, the filer only with a token signed with its key,
    and the S3 gateway, in the same process, signs its own requests. The keys are derived from
    S3_SECRET_KEY, so they are as secret as S3's own credential and change with it. The volume and filer
    UIs go too (`access.ui`, `filer.expose_directory_metadata`). What stays open on lab_host: the master's
    HTTP (volume locations, and tokens for a file id one must already know) and the gRPC ports (no mTLS
    here): the README's Security section lists them."""
    def key(purpose: str) -> str:
        return hmac.new(settings.s3_secret_key.encode(), f"seaweedfs {purpose}".encode(), "sha256").hexdigest()

    conf = data_dir("s3") / "security.toml"
    text = "\n".join([
        "[jwt.signing]", f'key = "{key("jwt.signing")}"', "expires_after_seconds = 10",
        "[jwt.signing.read]", f'key = "{key("jwt.signing.read")}"', "expires_after_seconds = 60",
        "[jwt.filer_signing]", f'key = "{key("jwt.filer_signing")}"', "expires_after_seconds = 10",
        "[jwt.filer_signing.read]", f'key = "{key("jwt.filer_signing.read")}"', "expires_after_seconds = 60",
        "[access]", "ui = false",
        "[filer.expose_directory_metadata]", "enabled = false", ""])
    fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # keys: readable by this user only
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return conf


def _s3_command() -> list[str]:
    # -logtostderr (a global flag, before the command): glog's files would otherwise pile up in /tmp;
    # stderr goes to the service's log under the state dir like every other service's.
    # -config_dir (global too): where weed reads security.toml, instead of ./ or ~/.seaweedfs/.
    return [str(tools.go_binary("weed")), "-logtostderr", f"-config_dir={_s3_security().parent}",
            "server", f"-dir={data_dir('s3')}",
            f"-ip={H}", f"-ip.bind={H}",
            f"-master.port={settings.seaweed_master_port}", f"-volume.port={settings.seaweed_volume_port}",
            "-master.volumeSizeLimitMB=256", "-master.telemetry=false", "-volume.max=0",
            "-filer", f"-filer.port={settings.seaweed_filer_port}",
            "-s3", f"-s3.port={settings.s3_port}", f"-s3.config={_s3_config()}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-metricsPort={settings.seaweed_metrics_port}",
            *seaweed_grpc_flags()]


def seaweed_grpc_flags() -> list[str]:
    """Every gRPC port explicit: weed would derive HTTP port + 10000 (see lab/stack/ports.py)."""
    return [f"-master.port.grpc={settings.seaweed_master_grpc_port}",
            f"-volume.port.grpc={settings.seaweed_volume_grpc_port}",
            f"-filer.port.grpc={settings.seaweed_filer_grpc_port}", f"-s3.port.grpc={settings.s3_grpc_port}"]


# --- catalog: FerretDB over SQLite ------------------------------------------------------------------

def _catalog_command() -> list[str]:
    return [str(tools.go_binary("ferretdb")), "--handler=sqlite", f"--sqlite-url=file:{data_dir('catalog')}/",
            f"--listen-addr={H}:{settings.mongo_port}", f"--debug-addr={H}:{settings.ferretdb_debug_port}",
            f"--state-dir={data_dir('catalog')}", "--telemetry=disable", "--log-level=warn"]


def _catalog_healthy() -> bool:
    catalog.probe()  # a read, not a ping: see catalog.probe
    return True


def _catalog_provision() -> list[str]:
    """Collections and indexes, then the SQLite index FerretDB's `_id` lookups need (lab/stack/ferretdb.py)."""
    created = catalog.ensure_indexes()
    ferretdb.index_every_database()
    return created


def _catalog_upkeep() -> None:
    """While it runs: collections made since (a bench's, an exercise's) get the `_id` index too, and the
    `streams` index stays bounded."""
    ferretdb.index_every_database()
    catalog.prune_streams_index()


# --- Prometheus -------------------------------------------------------------------------------------

def scrape_targets() -> dict[str, str]:
    """job name -> host:port of every /metrics endpoint of the lab."""
    return {
        "api": f"{H}:{settings.api_port}",
        "producer": f"{H}:{settings.producer_metrics_port}",
        "spark-vod": f"{H}:{settings.spark_vod_metrics_port}",
        "spark-live": f"{H}:{settings.spark_live_metrics_port}",
        "seaweedfs": f"{H}:{settings.seaweed_metrics_port}",
        "prometheus": f"{H}:{settings.prometheus_port}",
        "supervisor": f"{H}:{settings.supervisor_metrics_port}",
        "live-ingest": f"{H}:{settings.live_ingest_port}",
    }


def _prometheus_config() -> Path:
    conf = data_dir("prometheus") / "prometheus.yml"
    jobs = "\n".join(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']"
                     for job, target in scrape_targets().items())
    interval = f"{settings.prometheus_scrape_interval_s}s"
    conf.write_text(f"global:\n  scrape_interval: {interval}\n  evaluation_interval: {interval}\n"
                    f"scrape_configs:\n{jobs}\n")
    return conf


def _prometheus_command() -> list[str]:
    return [str(tools.go_binary("prometheus")), f"--config.file={_prometheus_config()}",
            f"--storage.tsdb.path={data_dir('prometheus') / 'tsdb'}", "--storage.tsdb.retention.time=2d",
            f"--web.listen-address={H}:{settings.prometheus_port}", "--web.enable-lifecycle"]


# --- the lab's own processes ------------------------------------------------------------------------
# What JupyterLab serves: the lessons only. The solutions, the instructor guide and the lessons' reference
# outputs are in instructor/, outside it (tests/integration/test_served.py lists what is served).
JUPYTER_ROOT = ROOT / "notebooks"


def _jupyter_command() -> list[str]:
    # The token comes from JUPYTER_TOKEN (the service's env), so it is not on a command line `ps` shows.
    # As root (a container, a CI box) Jupyter refuses to start without --allow-root. The settings dir holds
    # overrides.json: no "get notified about Jupyter news?" toast over every lesson, no update checks.
    return [sys.executable, "-m", "jupyterlab", "--no-browser", f"--ip={H}", f"--port={settings.jupyter_port}",
            f"--ServerApp.root_dir={JUPYTER_ROOT}", "--ServerApp.open_browser=False",
            f"--LabApp.app_settings_dir={JUPYTER_SETTINGS}",
            *(["--allow-root"] if os.geteuid() == 0 else [])]


def watcher_service() -> Service:
    """The watcher that restarts dead services (lab/stack/watch.py); `lab up` starts it, `lab down` stops it
    first. Not one of LAB_SERVICES: it watches them."""
    return Service(SUPERVISOR, settings.supervisor_metrics_port, "restarts dead services with backoff",
                   lambda: _lab("supervise"),
                   lambda: _http_ok(f"http://{H}:{settings.supervisor_metrics_port}/metrics"), infra=False)


def all_services() -> dict[str, Service]:
    services = [
        Service("kafka", settings.kafka_port, "Kafka 4 broker + KRaft controller",
                lambda: _kafka_java("kafka.Kafka", str(_kafka_config())), _kafka_healthy,
                prepare=_kafka_prepare, provision=topics.ensure_topics),
        Service("s3", settings.s3_port, "SeaweedFS S3 gateway (buckets vod-raw, vod-variants, live-streams, manifests)",
                _s3_command, lambda: storage.s3().list_buckets() is not None, provision=storage.ensure_buckets),
        Service("catalog", settings.mongo_port, "FerretDB (MongoDB wire protocol) over SQLite",
                _catalog_command, _catalog_healthy, provision=_catalog_provision, upkeep=_catalog_upkeep),
        Service("prometheus", settings.prometheus_port, "Prometheus scraping every /metrics endpoint",
                _prometheus_command, lambda: _http_ok(f"{settings.prometheus_base}/-/ready")),
        Service("api", settings.api_port, "FastAPI control plane", lambda: _lab("api"),
                lambda: _http_ok(f"{settings.api_base}/health"), infra=False),
        Service("spark-vod", settings.spark_vod_metrics_port, "Spark VOD query (transcodes on executors)",
                lambda: _lab("spark-job", "--query", "vod"),
                lambda: _http_ok(f"http://{H}:{settings.spark_vod_metrics_port}/metrics"), infra=False),
        Service("spark-live", settings.spark_live_metrics_port, "Spark live query (rolling DVR playlist)",
                lambda: _lab("spark-job", "--query", "live"),
                lambda: _http_ok(f"http://{H}:{settings.spark_live_metrics_port}/metrics"), infra=False),
        Service("producer", settings.producer_metrics_port, "VOD uploader + live encoder",
                lambda: _lab("producer"),
                lambda: _http_ok(f"http://{H}:{settings.producer_metrics_port}/metrics"), infra=False),
        Service("live-ingest", settings.live_ingest_port, "go live: RTMP/SRT listeners (OBS), the browser camera's "
                "HTTP ingest", lambda: _lab("live-ingest"),
                lambda: _http_ok(f"http://{H}:{settings.live_ingest_port}/health"), infra=False),
        Service("jupyter", settings.jupyter_port, "JupyterLab with the lessons", _jupyter_command,
                lambda: _http_ok(f"http://{H}:{settings.jupyter_port}/api/status?token={settings.jupyter_token}"),
                env={"JUPYTER_TOKEN": settings.jupyter_token}, infra=False),
    ]
    return {svc.name: svc for svc in services}
