"""The port plan: every TCP port the embedded stack listens on, in one place, each set explicitly.

Derived ports are the trap: SeaweedFS listens on HTTP port + 10000 for the gRPC of its master, volume, filer
and S3 servers unless told otherwise (`weed/command/server.go`), so the lab's S3 on 8333 once took 18333, the
test stack's S3 port. Every such port is now a setting, passed with -master.port.grpc, -volume.port.grpc,
-filer.port.grpc and -s3.port.grpc, and listed here.

Ports the OS assigns (Spark's driver and block manager, py4j, Jupyter's kernels) come from the ephemeral range
(Linux 32768-60999, macOS 49152-65535), above every planned port, so they never take one.
"""

from __future__ import annotations

import socket
from collections import Counter
from collections.abc import Callable, Iterable

from lab.config import Settings, settings

SUPERVISOR = "supervisor"  # the watcher `lab up` starts (lab supervise); not one of LAB_SERVICES

# Port settings the embedded stack never opens (the container stack's Grafana).
CONTAINER_ONLY = {"grafana_port"}

# Ports held only while a stream awaits its publisher: the ingest arms an ffmpeg listener per protocol then
# (lab/live_ingest/service.py). SRT is UDP besides, so no TCP check ever finds it listening.
ON_DEMAND = {"live-ingest.rtmp", "live-ingest.srt"}


def plan(cfg: Settings = settings) -> dict[str, tuple[str, int]]:
    """port name -> (service that opens it, port)."""
    return {
        "kafka": ("kafka", cfg.kafka_port),
        "kafka.controller": ("kafka", cfg.kafka_controller_port),
        "s3": ("s3", cfg.s3_port),
        "s3.grpc": ("s3", cfg.s3_grpc_port),
        "seaweed.master": ("s3", cfg.seaweed_master_port),
        "seaweed.master.grpc": ("s3", cfg.seaweed_master_grpc_port),
        "seaweed.volume": ("s3", cfg.seaweed_volume_port),
        "seaweed.volume.grpc": ("s3", cfg.seaweed_volume_grpc_port),
        "seaweed.filer": ("s3", cfg.seaweed_filer_port),
        "seaweed.filer.grpc": ("s3", cfg.seaweed_filer_grpc_port),
        "seaweed.metrics": ("s3", cfg.seaweed_metrics_port),
        "catalog": ("catalog", cfg.mongo_port),
        "catalog.debug": ("catalog", cfg.ferretdb_debug_port),
        "prometheus": ("prometheus", cfg.prometheus_port),
        "api": ("api", cfg.api_port),
        "spark-vod.metrics": ("spark-vod", cfg.spark_vod_metrics_port),
        "spark-vod.ui": ("spark-vod", cfg.spark_vod_ui_port),
        "spark-live.metrics": ("spark-live", cfg.spark_live_metrics_port),
        "spark-live.ui": ("spark-live", cfg.spark_live_ui_port),
        "producer.metrics": ("producer", cfg.producer_metrics_port),
        "jupyter": ("jupyter", cfg.jupyter_port),
        "supervisor.metrics": (SUPERVISOR, cfg.supervisor_metrics_port),
        "live-ingest.http": ("live-ingest", cfg.live_ingest_port),
        "live-ingest.rtmp": ("live-ingest", cfg.rtmp_port),
        "live-ingest.srt": ("live-ingest", cfg.srt_port),  # UDP: a TCP probe never finds it taken
    }


def duplicates(cfg: Settings = settings) -> list[str]:
    """Ports the plan gives twice: a configuration error, named."""
    counts = Counter(port for _, port in plan(cfg).values())
    return [f"port {port} is set for {', '.join(n for n, (_, p) in plan(cfg).items() if p == port)}"
            for port, n in counts.items() if n > 1]


def port_in_use(port: int, host: str | None = None) -> bool:
    """True if something listens on the port or holds it. Bind with SO_REUSEADDR (a port in TIME_WAIT is
    free), then connect: on macOS such a bind succeeds beside a listener on 0.0.0.0, a connect does not."""
    host = host or settings.lab_host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def conflicts(services: Iterable[str], running: Callable[[str], bool],
              in_use: Callable[[int], bool] = port_in_use, cfg: Settings = settings) -> list[str]:
    """One line per port of `services` that is taken by something else than this stack's own running service."""
    wanted = set(services)
    lines = duplicates(cfg)
    for name, (service, port) in plan(cfg).items():
        if service in wanted and not running(service) and in_use(port):
            lines.append(f"{service}: port {port} ({name}) is already in use; stop what holds it "
                         f"(`lsof -i :{port}`) or choose another port in .env")
    return lines
