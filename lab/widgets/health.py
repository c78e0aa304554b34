"""Stack health: every service of the lab as a live table, and the UI map (where to click).

The services and their names follow the mode. Embedded mode reads `lab.stack.status()` (pid, port, health
probe, memory of each local process). In the container stack the processes are not the kernel's: each
compose service is probed at its internal address (`kafka:29092`, `http://api:8000`, `spark-job:8766`, ...),
and there is one `spark-job` (both queries in one application) where embedded mode has spark-vod and
spark-live, and `mongodb` where it has the FerretDB `catalog`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import pandas as pd

from lab.config import settings
from lab.widgets._base import HTMLDisplay, LabWidget, dot, esc, fmt_bytes, html_table

# embedded service -> the compose service that does its work in the container stack
COMPOSE_NAMES = {"catalog": "mongodb", "spark-vod": "spark-job", "spark-live": "spark-job"}


def mode_name(name: str) -> str:
    """The name of a service in this mode (`spark-live` is `spark-job` in the container stack)."""
    return COMPOSE_NAMES.get(name, name) if settings.lab_mode == "containers" else name


def wanted_services() -> list[str]:
    """The services this stack runs (LAB_SERVICES), by their names in this mode, in order, once each."""
    return list(dict.fromkeys(mode_name(n) for n in settings.services))


@dataclass(frozen=True)
class Probe:
    """A container service's health check, asked from inside the stack."""

    name: str
    address: str
    purpose: str
    check: Callable[[], object]

    def healthy(self) -> bool:
        try:
            return bool(self.check())
        except Exception:  # a probe failing in any way just means "not answering"
            return False

    @property
    def port(self) -> int | None:
        return urlsplit(self.address if "//" in self.address else f"//{self.address}").port


def _http_ok(url: str) -> bool:
    return httpx.get(url, timeout=2.0).status_code == 200


def _kafka_ok() -> bool:
    from lab import topics

    return bool(topics.admin(quiet=True).list_topics(timeout=2).brokers)


def _mongo_ok() -> bool:
    from pymongo import MongoClient

    with MongoClient(settings.mongo_url, serverSelectionTimeoutMS=2000) as client:
        return client.admin.command("ping").get("ok") == 1


def container_probes() -> dict[str, Probe]:
    """Every compose service the lessons depend on, probed at its internal address."""
    def lab_process(name: str, port: int, path: str = "/metrics") -> str:
        return f"http://{settings.service_host(name)}:{port}{path}"

    probes = [
        Probe("kafka", settings.kafka_servers, "Kafka 4 broker + KRaft controller", _kafka_ok),
        Probe("s3", settings.s3_url, "SeaweedFS S3 gateway (the four private buckets)",
              lambda: _http_ok(f"{settings.s3_url}/healthz")),
        Probe("mongodb", settings.mongo_url, "MongoDB 7 catalog", _mongo_ok),
        Probe("prometheus", settings.prometheus_base, "Prometheus scraping every /metrics endpoint",
              lambda: _http_ok(f"{settings.prometheus_base}/-/ready")),
        Probe("api", settings.api_base, "FastAPI control plane", lambda: _http_ok(f"{settings.api_base}/health")),
        Probe("spark-job", lab_process("spark-job", settings.spark_vod_metrics_port),
              "Spark driver: the VOD and live queries in one application",
              lambda: _http_ok(lab_process("spark-job", settings.spark_vod_metrics_port))),
        Probe("producer", lab_process("producer", settings.producer_metrics_port), "VOD uploader + live encoder",
              lambda: _http_ok(lab_process("producer", settings.producer_metrics_port))),
        Probe("jupyter", lab_process("jupyter", settings.jupyter_port, "/api"), "JupyterLab with the lessons",
              lambda: _http_ok(lab_process("jupyter", settings.jupyter_port, "/api"))),
    ]
    return {p.name: p for p in probes}


def healthy(name: str) -> bool:
    """One service's health probe, by its name in either mode (`spark-live` probes `spark-job` in containers)."""
    if settings.lab_mode == "containers":
        return container_probes()[mode_name(name)].healthy()
    from lab import stack

    return stack.service_healthy(name)


def health_frame() -> pd.DataFrame:
    """One row per service: name, healthy, state, pid, port, memory, purpose."""
    rows = []
    wanted = wanted_services()
    if settings.lab_mode == "embedded":
        from lab import stack

        for s in stack.status():
            state = "healthy" if s.healthy else ("UNHEALTHY" if s.pid else "stopped")
            rows.append({"service": s.name, "healthy": s.healthy, "state": state, "pid": s.pid, "port": s.port,
                         "memory": s.rss_bytes if s.pid else None, "purpose": s.purpose,
                         "wanted": s.name in wanted})
    else:
        for probe in container_probes().values():
            ok = probe.healthy()
            rows.append({"service": probe.name, "healthy": ok, "state": "healthy" if ok else "not answering",
                         "pid": None, "port": probe.port, "memory": None, "purpose": probe.purpose,
                         "wanted": probe.name in wanted})
    return pd.DataFrame(rows)


def ui_map_frame() -> pd.DataFrame:
    from lab import stack

    return pd.DataFrame(stack.ui_map(), columns=["service", "url", "credentials", "purpose"])


def ui_map_html() -> str:
    rows = [(esc(name), f'<a href="{esc(url)}" target="_blank">{esc(url)}</a>' if url.startswith("http") else
             f"<code>{esc(url)}</code>", esc(cred), esc(purpose))  # only web pages are links
            for name, url, cred, purpose in ui_map_frame().itertuples(index=False)]
    return html_table(["service", "URL", "credentials", "what for"], rows, raw=(0, 1, 2, 3))


def ui_map() -> HTMLDisplay:
    """The UI map as a table of links (a static display: it does not change while the stack runs)."""
    return HTMLDisplay(ui_map_html(), "UI map (table of links)")


class StackHealth(LabWidget):
    """Health of every service, refreshed every `interval` seconds while "live" is on."""

    title = "Stack health"

    def __init__(self, *, interval: float = 5.0, auto: bool = True, show_ui_map: bool = True):
        self.show_ui_map = show_ui_map
        self.frame = pd.DataFrame()
        super().__init__(interval=interval, auto=auto)

    def render(self) -> str:
        frame = health_frame()
        self.frame = frame
        rows = []
        for r in frame.itertuples(index=False):
            running = not pd.isna(r.pid)  # pid is NaN, which is truthy, for a service that is not running
            ok = True if r.healthy else (False if r.wanted or running else None)
            state = r.state if r.wanted or running else "not in LAB_SERVICES"
            rows.append((r.service, dot(ok, state), r.port, int(r.pid) if running else "",
                         fmt_bytes(None if pd.isna(r.memory) else r.memory), r.purpose))
        wanted = frame[frame["wanted"]]
        healthy = int(wanted["healthy"].sum())
        summary = (f"<p>{healthy} of the {len(wanted)} services this stack runs (LAB_SERVICES) are healthy; "
                   f"state dir <code>{esc(settings.lab_state_dir)}</code></p>")
        table = html_table(["service", "state", "port", "pid", "memory", "what it does"], rows, raw=(1,),
                           numeric=(2, 3, 4))
        extra = f"<p><b>UI map</b></p>{ui_map_html()}" if self.show_ui_map else ""
        return summary + table + extra
