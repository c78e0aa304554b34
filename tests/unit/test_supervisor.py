"""Failures of the embedded stack are one clear line: the service, what happened, its log, what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from lab.stack import supervisor, tools
from lab.stack.supervisor import Service, StackError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service(name: str, command: list[str], port: int | None = None, healthy=lambda: False) -> Service:
    return Service(name, port or free_port(), "test", lambda: command, healthy)


def test_port_already_taken_names_service_and_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(StackError, match=rf"^unit-port: port {port} is already in use"):
            supervisor.start(service("unit-port", ["sleep", "5"], port=port))


def test_service_that_exits_at_start_shows_its_log():
    svc = service("unit-exit", ["sh", "-c", "echo boom-at-start; exit 3"])
    supervisor.start(svc)
    with pytest.raises(StackError) as err:
        supervisor.wait_healthy(svc, timeout_s=10)
    assert str(err.value).startswith("unit-exit: exited during start-up")
    assert "boom-at-start" in str(err.value) and str(supervisor.log_file("unit-exit")) in str(err.value)


def test_service_never_healthy_times_out_with_advice():
    svc = service("unit-slow", ["sleep", "30"])
    supervisor.start(svc)
    try:
        with pytest.raises(StackError, match=r"^unit-slow: not healthy after 1s .*`lab logs unit-slow`"):
            supervisor.wait_healthy(svc, timeout_s=1)
    finally:
        assert supervisor.stop("unit-slow")
    assert supervisor.running_pid("unit-slow") is None


def test_stop_kills_the_whole_process_group():
    svc = service("unit-group", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    pid = supervisor.start(svc)
    assert supervisor.stop("unit-group", grace_s=5)
    assert not supervisor.group_alive(pid)  # zombies awaiting their reaper do not count


def test_missing_tool_is_one_line_naming_what_to_install(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(tools.ToolError, match=r"^java not found on PATH: install Java 17\+"):
        tools.java()
    with pytest.raises(tools.ToolError, match=r"^go not found on PATH"):
        tools.require("go", "install Go")


def test_cli_reports_errors_without_a_trace():
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # no java, no go
    proc = subprocess.run([sys.executable, "-m", "lab", "logs", "no-such-service"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("no log for 'no-such-service'")
