"""The watcher (`lab supervise`, started detached by `lab up`): restarts a service that dies, with backoff.

- It restarts only services that are wanted (started and not stopped: see supervisor.wanted), so `lab down`
  and a lesson's stop are never taken for a crash.
- The n-th restart within the crash-loop window waits 2, 4, 8, ... s (at most 60 s). After
  SUPERVISOR_MAX_RESTARTS restarts within SUPERVISOR_WINDOW_S it gives up on that service, says so in its log
  and in `lab status`, and leaves it down until `lab up` clears the mark.
- It never blocks on a start-up: a restarted service is checked for health on the next rounds, and
  provisioned (topics, buckets, indexes: idempotent) once healthy.
- A service that runs but fails its health probe for HUNG_AFTER_S (checked every LIVENESS_S, on a thread of
  its own) is killed, so the next round restarts it like any crash: a process can be alive and useless (a
  FerretDB whose connection pool is exhausted answers pings and nothing else; see catalog.bulk_write).
- Every UPKEEP_S it runs each running service's upkeep (the catalog: `_id` index on new tables, bounded
  `streams` index).
- Restarts are counted in run/restarts.json (read by `lab status`) and by `lab_service_restarts_total`,
  served on SUPERVISOR_METRICS_PORT and scraped by Prometheus.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from lab.config import settings
from lab.stack import supervisor
from lab.stack.supervisor import Service, StackError

log = logging.getLogger("lab.supervise")

UPKEEP_S = 30.0      # how often a running service's upkeep runs (the catalog's index and retention)
FIRST_DELAY_S = 2.0  # leaves a lesson's kill time to observe the service down before it comes back
MAX_DELAY_S = 60.0
LIVENESS_S = 15.0     # how often a running service's health probe is checked
HUNG_AFTER_S = 120.0  # failing every probe this long: hung, so killed and restarted (longer than a GC pause)
STARTUP_TIMEOUT_S = settings.lab_startup_timeout_s


def restarts_file():
    return supervisor.state_path("run", "restarts.json")


def gave_up_file(name: str):
    return supervisor.state_path("run", f"{name}.gave-up")


def read_restarts() -> dict[str, int]:
    try:
        return json.loads(restarts_file().read_text())
    except (FileNotFoundError, ValueError):
        return {}


def gave_up(name: str) -> str | None:
    """The watcher's message if it gave up on the service (crash loop), else None."""
    path = gave_up_file(name)
    return path.read_text().strip() if path.exists() else None


def backoff_s(recent_restarts: int) -> float:
    return min(FIRST_DELAY_S * 2 ** recent_restarts, MAX_DELAY_S)


@dataclass
class Track:
    """What the watcher knows of one service between rounds."""
    died_at: float | None = None      # monotonic time the death was seen; None while it runs
    starting_since: float | None = None
    unhealthy_since: float | None = None  # first of an unbroken run of failed liveness probes
    recent: list[float] = field(default_factory=list)  # monotonic times of restarts within the window


class Watcher:
    def __init__(self, services: dict[str, Service], max_restarts: int, window_s: float, registry=None):
        self.services = services
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.tracks = {name: Track() for name in services}
        self.next_upkeep = self.next_liveness = 0.0
        self.upkeeping: threading.Thread | None = None
        self.probing: threading.Thread | None = None
        self.counts = read_restarts()
        registry = registry or CollectorRegistry()
        self.registry = registry
        self.restarts = Counter("lab_service_restarts", "Restarts of a dead service by the watcher",
                                ["service"], registry=registry)
        self.up = Gauge("lab_service_up", "1 if the service's process is alive (0: dead or given up)",
                        ["service"], registry=registry)
        self.crash_loop = Gauge("lab_service_crash_loop", "1 once the watcher gave up on the service",
                                ["service"], registry=registry)
        for name in services:
            self.restarts.labels(name)  # a series from the start, at 0

    def round(self, now: float | None = None) -> None:
        """Look at every service once; restart the dead ones whose backoff has passed."""
        now = time.monotonic() if now is None else now
        supervisor.reap()
        for name, svc in self.services.items():
            self._check(name, svc, self.tracks[name], now)
        if now >= self.next_upkeep and not (self.upkeeping and self.upkeeping.is_alive()):
            self.next_upkeep = now + UPKEEP_S
            # on a thread: a catalog that stops answering must never stop the restarts
            self.upkeeping = threading.Thread(target=self._upkeep, name="upkeep", daemon=True)
            self.upkeeping.start()
        if now >= self.next_liveness and not (self.probing and self.probing.is_alive()):
            self.next_liveness = now + LIVENESS_S
            self.probing = threading.Thread(target=self.check_liveness, name="liveness", daemon=True)
            self.probing.start()

    def check_liveness(self, now: float | None = None) -> None:
        """Probe each running service that is not starting; kill one that has failed every probe for
        HUNG_AFTER_S (the main loop then restarts it, counted, with the crash-loop rules)."""
        for name, svc in self.services.items():
            track = self.tracks[name]
            if supervisor.running_pid(name) is None or track.starting_since is not None:
                track.unhealthy_since = None
                continue
            now = time.monotonic() if now is None else now
            if supervisor.safe_healthy(svc):
                track.unhealthy_since = None
            elif track.unhealthy_since is None:
                track.unhealthy_since = now
            elif now - track.unhealthy_since >= HUNG_AFTER_S:
                log.warning("%s: running but unhealthy for %.0f s: hung; killing it so it restarts (log: %s)",
                            name, now - track.unhealthy_since, supervisor.log_file(name))
                track.unhealthy_since = None
                try:
                    supervisor.kill(name)
                except StackError as exc:
                    log.warning("%s: could not kill the hung service: %s", name, exc)

    def _upkeep(self) -> None:
        for name, svc in self.services.items():
            if supervisor.running_pid(name) is None or self.tracks[name].starting_since is not None:
                continue
            try:
                svc.upkeep()
            except Exception as exc:  # upkeep is best effort; it never stops the watcher
                log.warning("%s: upkeep failed: %s", name, exc)

    def _check(self, name: str, svc: Service, track: Track, now: float) -> None:
        alive = supervisor.running_pid(name) is not None
        self.up.labels(name).set(1 if alive else 0)
        if gave_up(name):
            self.crash_loop.labels(name).set(1)
            return
        self.crash_loop.labels(name).set(0)
        if alive:
            track.died_at = None
            if track.starting_since is not None and supervisor.safe_healthy(svc):
                self._healthy_again(name, svc, track, now)
            elif track.starting_since is not None and now - track.starting_since > STARTUP_TIMEOUT_S:
                log.warning("%s: not healthy %.0f s after its restart; still waiting (see %s)", name,
                            now - track.starting_since, supervisor.log_file(name))
                track.starting_since = now
            return
        if not supervisor.wanted(name):
            track.died_at = track.starting_since = None
            return
        self._dead(name, svc, track, now)

    def _dead(self, name: str, svc: Service, track: Track, now: float) -> None:
        track.recent = [t for t in track.recent if now - t < self.window_s]
        if track.died_at is None:
            track.died_at = now
            if track.starting_since is not None:
                log.warning("%s: died during its restart", name)
            else:
                log.warning("%s: died; restart in %.0f s (log: %s)", name, backoff_s(len(track.recent)),
                            supervisor.log_file(name))
            track.starting_since = None
        if len(track.recent) >= self.max_restarts:
            message = (f"{name} died {len(track.recent)} times within {self.window_s / 60:.0f} min: crash loop, "
                       f"not restarted again; see {supervisor.log_file(name)} (`lab logs {name}`), fix the "
                       f"cause, then `lab up {name}`")
            gave_up_file(name).write_text(message + "\n")
            log.error("%s", message)
            track.recent.clear()
            return
        if now - track.died_at < backoff_s(len(track.recent)):
            return
        try:
            supervisor.start(svc)
        except StackError as exc:
            log.warning("%s: restart failed: %s", name, exc)
        track.recent.append(now)
        track.died_at = None
        track.starting_since = now
        self.counts[name] = self.counts.get(name, 0) + 1
        self.restarts.labels(name).inc()
        restarts_file().write_text(json.dumps(self.counts))
        log.info("%s: restarted (restart %d)", name, self.counts[name])

    def _healthy_again(self, name: str, svc: Service, track: Track, now: float) -> None:
        try:
            svc.provision()
        except Exception as exc:  # provisioning is retried on the next round; never kills the watcher
            log.warning("%s: healthy, but provisioning failed (retrying): %s", name, exc)
            return
        log.info("%s: healthy again %.1f s after its restart", name, now - track.starting_since)
        track.starting_since = None


def run() -> None:
    """The watcher's loop, until SIGTERM or SIGINT (`lab down` stops it first, before any service)."""
    from lab.stack.services import all_services

    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    watcher = Watcher(all_services(), settings.supervisor_max_restarts, settings.supervisor_window_s)
    start_http_server(settings.supervisor_metrics_port, addr=settings.lab_host, registry=watcher.registry)
    log.info("watching %s; metrics on :%d", ", ".join(watcher.services), settings.supervisor_metrics_port)
    while not stopping:
        watcher.round()
        time.sleep(0.5)
    log.info("stopped")
