"""Waiting for services to come up on progress, not on a clock (`lab up`, a lesson's restart).

Each service has its own budget (LAB_STARTUP_TIMEOUT_S), counted from its own start. Past the budget, a
service whose process is alive and visibly working is still waited for: its log grew, or its process group
used CPU (a JVM warming up, Spark's Python daemon importing pandas at load 25). It is given up on only once it
has shown no progress for LAB_STARTUP_STALL_S, or at LAB_STARTUP_MAX_S whatever it does. A refusal names the
stage the service was in and how long every service of the start took.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from lab.config import settings
from lab.stack import supervisor
from lab.stack.supervisor import Service, StackError

POLL_S = 0.3
SAMPLE_S = 2.0     # how often the log size and CPU time are read (CPU: a walk over every process)
MIN_CPU_S = 0.5    # CPU seconds since the last sign of progress that count as working (idle JVMs use less)


@dataclass
class Starting:
    """One service being waited for: when it began, and the last time it showed progress."""
    svc: Service
    began: float
    last_progress: float
    log_size: int = -1
    cpu_s: float = -1.0
    next_sample: float = 0.0
    signs: list[str] = field(default_factory=list)  # what moved at the last progress ("log", "cpu")

    @classmethod
    def now(cls, svc: Service, began: float | None = None) -> Starting:
        began = time.monotonic() if began is None else began
        return cls(svc, began, began)

    def sample(self, now: float) -> None:
        if now < self.next_sample:
            return
        self.next_sample = now + SAMPLE_S
        path = supervisor.log_file(self.svc.name)
        size = path.stat().st_size if path.exists() else 0
        pid = supervisor.running_pid(self.svc.name)
        cpu = supervisor.group_cpu_seconds(pid) if pid else 0.0
        signs = (["log"] if size > self.log_size >= 0 else []) + (["cpu"] if cpu - self.cpu_s >= MIN_CPU_S else [])
        if self.log_size < 0 or signs:  # the first sample is the baseline
            self.log_size, self.cpu_s = size, cpu
            if signs:
                self.last_progress, self.signs = now, signs

    def stage(self) -> str:
        """Where it is: the port not open yet, or open with the probe failing; and its last log line."""
        port = (f"port {self.svc.port} open, health probe not passing yet" if supervisor.port_in_use(self.svc.port)
                else f"port {self.svc.port} not open yet")
        last = supervisor.tail(supervisor.log_file(self.svc.name), 1).strip()
        return port + (f"; last log line: {last[:200]}" if last else "; nothing logged yet")

    def verdict(self, now: float, budget_s: float, stall_s: float, max_s: float) -> str | None:
        """None while it may go on; else why it is given up on."""
        took, quiet = now - self.began, now - self.last_progress
        if took < budget_s:
            return None
        if took >= max_s:
            return f"not healthy after {took:.0f}s, the cap (LAB_STARTUP_MAX_S={max_s:.0f}), though still working"
        if quiet >= stall_s:
            return (f"not healthy after {took:.0f}s (its budget {budget_s:.0f}s, LAB_STARTUP_TIMEOUT_S), and no "
                    f"progress for {quiet:.0f}s: log and CPU time unchanged")
        return None


def wait_healthy(services: list[Service], on_healthy: Callable[[Service, float], None] = lambda svc, took: None,
                 began: dict[str, float] | None = None, budget_s: float | None = None,
                 stall_s: float | None = None, max_s: float | None = None) -> dict[str, float]:
    """Wait for all of them at once; `on_healthy(svc, seconds)` as each passes its probe (provisioning).
    Returns the seconds each took. Raises StackError naming the service, its stage and every time."""
    budget_s = settings.lab_startup_timeout_s if budget_s is None else budget_s
    stall_s = settings.lab_startup_stall_s if stall_s is None else stall_s
    max_s = max(settings.lab_startup_max_s if max_s is None else max_s, budget_s)
    began = began or {}
    pending = {svc.name: Starting.now(svc, began.get(svc.name)) for svc in services}
    took: dict[str, float] = {}
    while pending:
        now = time.monotonic()
        for name, start in list(pending.items()):
            log = supervisor.log_file(name)
            if supervisor.running_pid(name) is None:
                raise StackError(f"{name}: exited during start-up after {now - start.began:.0f}s; see {log}:\n"
                                 f"{supervisor.tail(log)}{_times(took, pending, now)}")
            if supervisor.safe_healthy(start.svc):
                took[name] = time.monotonic() - start.began
                del pending[name]
                on_healthy(start.svc, took[name])
                continue
            start.sample(now)
            if why := start.verdict(now, budget_s, stall_s, max_s):
                raise StackError(f"{name}: {why}; stage: {start.stage()}; see {log} (`lab logs {name}`), then "
                                 f"`lab down && lab up`{_times(took, pending, now)}")
        time.sleep(POLL_S)
    return took


def _times(took: dict[str, float], pending: dict[str, Starting], now: float) -> str:
    done = [f"{name} {seconds:.0f}s" for name, seconds in took.items()]
    waiting = [f"{name} {now - start.began:.0f}s (not healthy)" for name, start in pending.items()]
    return "\n  start-up times: " + ", ".join(done + waiting) if done or waiting else ""
