"""The embedded stack: every service as a local process, no Docker (`lab up`, `lab down`, `lab status`).

The public face for lessons and widgets: status(), kill_service, stop_service, start_service,
wait_service_healthy, service_healthy, service_log. Nothing outside lab.stack needs supervisor, services or tools.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass

from lab.config import settings
from lab.stack import ports, progress, supervisor, tools, watch
from lab.stack.ports import SUPERVISOR
from lab.stack.services import all_services, watcher_service
from lab.stack.supervisor import Service, StackError


@dataclass
class ServiceStatus:
    name: str
    pid: int | None
    port: int
    healthy: bool
    purpose: str
    rss_bytes: int = 0
    restarts: int = 0          # restarts by the watcher since the state dir was made
    note: str = ""             # why it is down, when the watcher gave up on it


def selected(names: list[str] | None = None) -> list[Service]:
    services = all_services()
    wanted = names or settings.services
    unknown = [n for n in wanted if n not in services]
    if unknown:
        raise StackError(f"unknown service(s) {unknown}; known: {', '.join(services)}")
    return [services[n] for n in wanted]


def check_ports(chosen: list[Service]) -> None:
    """Every port the chosen services and the watcher open, before anything starts: free, or held by this
    stack's own running service."""
    names = [s.name for s in chosen] + [SUPERVISOR]
    problems = ports.conflicts(names, running=lambda name: supervisor.running_pid(name) is not None)
    if problems:
        raise StackError("nothing started:\n  " + "\n  ".join(problems))


def up(names: list[str] | None = None, report=tools.step) -> None:
    """Start infra, wait until healthy, provision it, then the lab's processes, then the watcher. Idempotent.
    All or nothing: on a failure it stops what this call started, then names the service, why, and its log."""
    chosen = selected(names)
    check_ports(chosen)
    started: list[str] = []
    try:
        for group in ([s for s in chosen if s.infra], [s for s in chosen if not s.infra], [watcher_service()]):
            _start_group(group, started, report)
    except Exception as exc:
        for name in reversed(started):
            supervisor.stop(name)
        undone = f"\n  stopped what this `lab up` started: {', '.join(started)}" if started else ""
        if isinstance(exc, StackError):
            raise StackError(f"{exc}{undone}") from None
        raise StackError(f"{exc.__class__.__name__}: {exc}{undone}") from exc


def _start_group(group: list[Service], started: list[str], report) -> None:
    """Start the group, then wait for all of it at once, each service on its own budget and progress
    (lab/stack/progress.py); each is provisioned as it becomes healthy."""
    began = {}
    for svc in group:
        watch.gave_up_file(svc.name).unlink(missing_ok=True)  # `lab up NAME` retries after a crash loop
        if supervisor.running_pid(svc.name) is None:
            report(f"starting {svc.name} on port {svc.port}")
            supervisor.start(svc)
            started.append(svc.name)
        else:
            supervisor.start(svc)  # marks it wanted again
        began[svc.name] = time.monotonic()

    def provision(svc: Service, took: float) -> None:
        try:
            created = svc.provision()  # the topics or buckets it created, if any
        except Exception as exc:
            raise StackError(f"{svc.name}: healthy, but provisioning failed: {exc}; see "
                             f"{supervisor.log_file(svc.name)}") from exc
        report(f"{svc.name} healthy in {took:.0f}s" + (f" (created {', '.join(created)})" if created else ""))

    progress.wait_healthy(group, provision, began)


def down(report=tools.step) -> list[str]:
    """Stop the watcher first (so nothing is restarted), then every service, apps before infra."""
    stopped = []
    for svc in [watcher_service(), *reversed(list(all_services().values()))]:
        if supervisor.stop(svc.name):
            report(f"stopped {svc.name}")
            stopped.append(svc.name)
    return stopped


def status() -> list[ServiceStatus]:
    """One row per service, then the watcher's. The public face widgets read."""
    rows = []
    restarts = watch.read_restarts()
    for svc in [*all_services().values(), watcher_service()]:
        pid = supervisor.running_pid(svc.name)
        rss = supervisor.group_rss_bytes(pid) if pid else 0
        healthy = bool(pid) and supervisor.safe_healthy(svc)
        rows.append(ServiceStatus(svc.name, pid, svc.port, healthy, svc.purpose, rss,
                                  restarts.get(svc.name, 0), watch.gave_up(svc.name) or ""))
    return rows


def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by each running service (its whole process group): `lab bench live` takes
    the difference over a run to show where the cores went."""
    pids = {svc.name: supervisor.running_pid(svc.name) for svc in all_services().values()}
    return {name: supervisor.group_cpu_seconds(pid) for name, pid in pids.items() if pid}


def reset(report=tools.step) -> None:
    """Stop everything and wipe this stack's data, logs and pids (fetched tools are kept)."""
    down(report)
    shutil.rmtree(settings.lab_state_dir, ignore_errors=True)
    report(f"wiped {settings.lab_state_dir}")


# --- control of one service by name: what lessons and widgets call (never supervisor or services) -------

def _service(name: str) -> Service:
    if settings.lab_mode != "embedded":
        raise StackError(f"{name}: the embedded stack's process control does not apply in the container stack; "
                         f"use `docker compose kill/stop/start {name}`")
    return selected([name])[0]


def kill_service(name: str) -> int:
    """SIGKILL the service's whole process group, as a crash would; returns its old pid once every process of
    it is gone. The watcher restarts it (after 2 s): `wait_service_healthy(name)` waits for that."""
    _service(name)
    return supervisor.kill(name)


def stop_service(name: str) -> None:
    """Stop it cleanly (SIGTERM), as `lab down` does; it stays down (the watcher leaves it)."""
    _service(name)
    supervisor.stop(name)


def start_service(name: str) -> float:
    """Start it (if it is not already running or being restarted) and wait until healthy; returns seconds."""
    svc = _service(name)
    began = time.monotonic()
    supervisor.start(svc)
    wait_service_healthy(name)
    return time.monotonic() - began


def wait_service_healthy(name: str, timeout_s: float | None = None) -> float:
    """Wait until the service answers its health probe (restarted by the watcher, or started); returns seconds.
    Waits on progress like `lab up` (lab/stack/progress.py), `timeout_s` being the budget (default: the start-up
    budget plus the watcher's longest backoff). Raises StackError naming the stage and the log."""
    svc = _service(name)
    began = time.monotonic()
    budget = timeout_s or settings.lab_startup_timeout_s + watch.MAX_DELAY_S
    while True:
        while supervisor.running_pid(name) is None:  # the watcher restarts it after its backoff
            if gave_up := watch.gave_up(name):
                raise StackError(gave_up)
            if time.monotonic() - began > budget:
                raise StackError(f"{name}: not started again after {budget:.0f}s; see {supervisor.log_file(name)} "
                                 f"(`lab logs {name}`)")
            time.sleep(0.2)
        try:
            progress.wait_healthy([svc], budget_s=budget - (time.monotonic() - began))
            return time.monotonic() - began
        except StackError:
            if gave_up := watch.gave_up(name):  # it crash-looped while being waited for
                raise StackError(gave_up) from None
            if supervisor.running_pid(name) is None and supervisor.wanted(name):
                continue  # died while starting: the watcher starts it again
            raise


def service_healthy(name: str) -> bool:
    """The service's own health probe, in either mode (a probe that fails in any way is False)."""
    return supervisor.safe_healthy(selected([name])[0])


def service_log(name: str):
    return supervisor.log_file(name)


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
        ("Catalog (FerretDB)", f"mongodb://{host}:{settings.mongo_port}/{settings.mongo_db}", "-",
         "MongoDB wire protocol: pymongo, mongosh"),
        ("Kafka", f"{host}:{settings.kafka_port}", "-", "bootstrap server for confluent-kafka"),
    ]
