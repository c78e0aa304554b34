"""Start, watch and stop the embedded services as local processes, with pid and log files under the state dir.

Each service runs in its own process group (its JVM, Python workers and ffmpeg children with it), so
`lab down` stops the whole group and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lab.config import settings


class StackError(RuntimeError):
    """One clear line: which service, what happened, where its log is, what to do."""


@dataclass
class Service:
    name: str
    port: int
    purpose: str
    command: Callable[[], list[str]]
    healthy: Callable[[], bool]
    prepare: Callable[[], None] = lambda: None      # write config, format storage: before start
    provision: Callable[[], object] = lambda: None  # topics, buckets, indexes once healthy (returns what it made)
    env: dict[str, str] = field(default_factory=dict)
    infra: bool = True                              # infra starts first; apps start once it is provisioned


def state_path(*parts: str) -> Path:
    return settings.lab_state_dir.joinpath(*parts)


def log_file(name: str) -> Path:
    return state_path("logs", f"{name}.log")


def data_dir(name: str) -> Path:
    path = state_path("data", name)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pid_file(name: str) -> Path:
    return state_path("run", f"{name}.pid")


def running_pid(name: str) -> int | None:
    """The pid of a live process we started, or None (a stale pid file is removed)."""
    path = _pid_file(name)
    if not path.exists():
        return None
    pid = json.loads(path.read_text())["pid"]
    try:
        with open(f"/proc/{pid}/stat") as fh:
            alive = fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        try:
            os.kill(pid, 0)  # systems without /proc
            alive = True
        except ProcessLookupError:
            alive = False
    if not alive:
        path.unlink(missing_ok=True)
        return None
    return pid


def port_in_use(port: int, host: str | None = None) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host or settings.lab_host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 5) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


PORT_RELEASE_S = 5.0


def start(svc: Service) -> int:
    pid = running_pid(svc.name)
    if pid:
        return pid
    # A service that just died may leave a child (Spark's JVM) holding its port for a moment: wait a little.
    deadline = time.monotonic() + PORT_RELEASE_S
    while port_in_use(svc.port) and time.monotonic() < deadline:
        time.sleep(0.2)
    if port_in_use(svc.port):
        raise StackError(f"{svc.name}: port {svc.port} is already in use; stop what holds it "
                         f"(`lsof -i :{svc.port}`) or choose another port in .env")
    svc.prepare()
    log = log_file(svc.name)
    log.parent.mkdir(parents=True, exist_ok=True)
    _pid_file(svc.name).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {svc.name}\n".encode())
        proc = subprocess.Popen(svc.command(), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env={**os.environ, **svc.env})
    _pid_file(svc.name).write_text(json.dumps({"pid": proc.pid, "port": svc.port, "started": time.time()}))
    return proc.pid


def safe_healthy(svc: Service) -> bool:
    try:
        return bool(svc.healthy())
    except Exception:  # a health probe failing in any way just means "not healthy yet"
        return False


def wait_healthy(svc: Service, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_pid(svc.name) is None:
            raise StackError(f"{svc.name}: exited during start-up; see {log_file(svc.name)}:\n"
                             f"{tail(log_file(svc.name))}")
        if safe_healthy(svc):
            return
        time.sleep(0.3)
    raise StackError(f"{svc.name}: not healthy after {timeout_s:.0f}s on port {svc.port}; see "
                     f"{log_file(svc.name)} (`lab logs {svc.name}`), then `lab down && lab up`")


def stop(name: str, grace_s: float = 15.0) -> bool:
    """Stop a service's whole process group: SIGTERM, then SIGKILL after the grace period."""
    pid = running_pid(name)
    if pid is None:
        return False
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and group_alive(pid):
            time.sleep(0.2)
        if not group_alive(pid):
            break
    _pid_file(name).unlink(missing_ok=True)
    return True


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of a service's whole process group (JVM, Python workers, ffmpeg children)."""
    total = 0
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int((proc / "stat").read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return total


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    # a group whose only members are zombies is gone for our purposes
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(stat[2]) == pgid and stat[0] != "Z":
            return True
    return not Path("/proc").is_dir()
