"""The embedded stack: every service as a local process, no Docker (`lab up`, `lab down`, `lab status`)."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from lab.config import settings
from lab.stack import supervisor, tools
from lab.stack.services import all_services
from lab.stack.supervisor import Service, StackError


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    healthy: bool
    purpose: str
    rss_bytes: int = 0


def selected(names: list[str] | None = None) -> list[Service]:
    services = all_services()
    wanted = names or settings.services
    unknown = [n for n in wanted if n not in services]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {', '.join(services)}")
    return [services[n] for n in wanted]


def up(names: list[str] | None = None, report=tools.step) -> None:
    """Start infra, wait until healthy, provision it, then start the lab's processes. Idempotent."""
    chosen = selected(names)
    for group in ([s for s in chosen if s.infra], [s for s in chosen if not s.infra]):
        started = time.monotonic()
        for svc in group:
            if supervisor.running_pid(svc.name) is None:
                report(f"starting {svc.name} on port {svc.port}")
            supervisor.start(svc)
        for svc in group:
            supervisor.wait_healthy(svc, settings.lab_startup_timeout_s - (time.monotonic() - started))
            created = svc.provision()  # the topics or buckets it created, if any
            report(f"{svc.name} healthy" + (f" (created {', '.join(created)})" if created else ""))


def down(report=tools.step) -> list[str]:
    """Stop every service we started, apps before infra, leaving no process behind."""
    stopped = []
    for svc in reversed(list(all_services().values())):
        if supervisor.stop(svc.name):
            report(f"stopped {svc.name}")
            stopped.append(svc.name)
    return stopped


def status() -> list[ServiceStatus]:
    rows = []
    for svc in all_services().values():
        pid = supervisor.running_pid(svc.name)
        rss = supervisor.group_rss_bytes(pid) if pid else 0
        healthy = bool(pid) and supervisor.safe_healthy(svc)
        rows.append(ServiceStatus(svc.name, pid, svc.port, healthy, svc.purpose, rss))
    return rows


def reset(report=tools.step) -> None:
    """Stop everything and wipe this stack's data, logs and pids (fetched tools are kept)."""
    down(report)
    shutil.rmtree(settings.lab_state_dir, ignore_errors=True)
    report(f"wiped {settings.lab_state_dir}")


def ui_map() -> list[tuple[str, str, str, str]]:
    """(service, URL, credentials, purpose) in the manner of the reference's UI access map."""
    host = settings.lab_public_host
    return [
        ("JupyterLab (lessons)", f"http://{host}:{settings.jupyter_port}/lab?token={settings.jupyter_token}",
         f"token {settings.jupyter_token}", "the notebooks: start here"),
        ("FastAPI Swagger", f"http://{host}:{settings.api_port}/docs", f"X-API-Key: {settings.lab_api_key}",
         "control plane: upload, start/end streams, playback URLs"),
        ("HLS player", f"http://{host}:{settings.api_port}/player", "-", "hls.js player served by the API"),
        ("Prometheus API", f"http://{host}:{settings.prometheus_port}/api/v1/query?query=up", "-",
         "PromQL over every /metrics endpoint (charts: notebook 07)"),
        ("Spark UI (VOD)", f"http://{host}:{settings.spark_vod_ui_port}", "-", "VOD query: batches, tasks"),
        ("Spark UI (live)", f"http://{host}:{settings.spark_live_ui_port}", "-", "live query: batch latency"),
        ("S3 (SeaweedFS)", f"http://{host}:{settings.s3_port}",
         f"{settings.s3_access_key} / {settings.s3_secret_key}", "buckets: boto3, or notebook 09's browser"),
        ("SeaweedFS filer", f"http://{host}:{settings.seaweed_filer_port}/buckets/", "-",
         "browse the buckets' files in a web page"),
        ("Catalog (FerretDB)", f"mongodb://{host}:{settings.mongo_port}/{settings.mongo_db}", "-",
         "MongoDB wire protocol: pymongo, mongosh"),
        ("Kafka", f"{host}:{settings.kafka_port}", "-", "bootstrap server for confluent-kafka"),
    ]
