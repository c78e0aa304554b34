"""Start, watch and stop the embedded services as local processes, with pid and log files under the state dir.

Each service runs in its own process group (its JVM, Python workers and ffmpeg children with it), so
`lab down` stops the whole group and leaves nothing behind. Process inspection goes through psutil, so a pid,
a zombie and a group's memory read the same on Linux and macOS (no /proc parsing).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from lab.config import settings
from lab.stack.ports import port_in_use

__all__ = ["Service", "StackError", "port_in_use", "running_pid", "start", "stop", "wait_healthy"]


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
    upkeep: Callable[[], object] = lambda: None     # the watcher calls it every UPKEEP_S while the service runs


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


def _want_file(name: str) -> Path:
    """Present while the service is meant to run: `start` writes it, `stop` removes it before any signal.
    The watcher restarts only services that are wanted and dead, so a stop is never taken for a crash."""
    return state_path("run", f"{name}.want")


def wanted(name: str) -> bool:
    return _want_file(name).exists()


@contextmanager
def locked(name: str) -> Iterator[None]:
    """One start or stop of a service at a time, across processes (`lab up`, the watcher, a lesson)."""
    path = state_path("run", f"{name}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def process_alive(pid: int, created: float | None = None) -> bool:
    """Alive and not a zombie. With `created`, a new process that merely reuses the pid does not count."""
    try:
        proc = psutil.Process(pid)
        if created is not None and abs(proc.create_time() - created) > 1.0:
            return False
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def running_pid(name: str) -> int | None:
    """The pid of a live process we started, or None (a stale pid file is removed)."""
    path = _pid_file(name)
    try:
        record = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not process_alive(record["pid"], record.get("created")):
        path.unlink(missing_ok=True)
        return None
    return record["pid"]


def tail(path: Path, lines: int = 5) -> str:
    if not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


PORT_RELEASE_S = 5.0
_children: dict[str, subprocess.Popen] = {}  # processes this process started: polled by reap()


def reap() -> None:
    """Collect the exit status of children that died, so none lingers as a zombie (the watcher calls this)."""
    for name, proc in list(_children.items()):
        if proc.poll() is not None:
            del _children[name]


def start(svc: Service) -> int:
    """Start the service unless it runs; returns its pid. Marks it wanted (the watcher keeps it up)."""
    with locked(svc.name):
        pid = running_pid(svc.name)
        if pid:
            _want_file(svc.name).touch()
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
        _children[svc.name] = proc
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:
            created = None  # died at once: running_pid reports it gone either way
        _pid_file(svc.name).write_text(json.dumps({"pid": proc.pid, "port": svc.port, "started": time.time(),
                                                   "created": created}))
        _want_file(svc.name).touch()
        return proc.pid


def safe_healthy(svc: Service) -> bool:
    try:
        return bool(svc.healthy())
    except Exception:  # a health probe failing in any way just means "not healthy yet"
        return False


def wait_healthy(svc: Service, timeout_s: float, stall_s: float | None = None) -> float:
    """Wait for one service on its progress (lab/stack/progress.py): `timeout_s` is its budget."""
    from lab.stack import progress

    return progress.wait_healthy([svc], budget_s=timeout_s, stall_s=stall_s)[svc.name]


def stop(name: str, grace_s: float = 15.0) -> bool:
    """Stop a service's whole process group: SIGTERM, then SIGKILL after the grace period. It is no longer
    wanted, so the watcher leaves it down."""
    with locked(name):
        _want_file(name).unlink(missing_ok=True)
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
        reap()
        _pid_file(name).unlink(missing_ok=True)
        return True


def kill(name: str, timeout_s: float = 30.0) -> int:
    """SIGKILL a service's whole group, as a crash would, and return once every process of it is gone. It
    stays wanted: the watcher restarts it. Returns the old pid."""
    pid = running_pid(name)
    if pid is None:
        raise StackError(f"{name}: not running (see `lab status`)")
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout_s
    while group_alive(pid):
        reap()
        if time.monotonic() > deadline:
            raise StackError(f"{name}: processes of group {pid} still alive {timeout_s:.0f}s after SIGKILL")
        time.sleep(0.1)
    return pid


def group_members(pgid: int) -> list[psutil.Process]:
    """Live (non-zombie) processes of a process group."""
    members = []
    for proc in psutil.process_iter(["status"]):
        try:
            if os.getpgid(proc.pid) == pgid and proc.info["status"] != psutil.STATUS_ZOMBIE:
                members.append(proc)
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return members


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0.0
    for proc in group_members(pgid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            continue
    return total


def group_alive(pgid: int) -> bool:
    """A group whose only members are zombies (killed, not yet reaped) is gone for our purposes."""
    return bool(group_members(pgid))


def group_rss_bytes(pgid: int) -> int:
    """Resident memory of a service's whole process group (JVM, Python workers, ffmpeg children)."""
    total = 0
    for proc in group_members(pgid):
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total
