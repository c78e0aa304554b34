"""Failures of the embedded stack are one clear line: the service, what happened, its log, what to do."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

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
        slow = r"^unit-slow: not healthy after 1s .*no progress.*stage: port \d+ not open yet; last log line: ==="
        with pytest.raises(StackError, match=slow + r" .* starting unit-slow.*`lab logs unit-slow`"):
            supervisor.wait_healthy(svc, timeout_s=1, stall_s=0.5)
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
    with pytest.raises(tools.ToolError, match=r"^docker not found on PATH: install the Docker CLI"):
        tools.require("docker", "install the Docker CLI")


def test_cli_reports_errors_without_a_trace():
    env = {**os.environ, "PATH": os.path.dirname(sys.executable)}  # no java, no go
    proc = subprocess.run([sys.executable, "-m", "lab", "logs", "no-such-service"], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("no log for 'no-such-service'")


# --- state under a temporary directory (never the lab's own .lab/state) -----------------------------------

@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setattr(supervisor, "state_path", lambda *parts: tmp_path.joinpath(*parts))
    yield tmp_path
    for pid_file in (tmp_path / "run").glob("*.pid"):
        supervisor.stop(pid_file.stem, grace_s=1)


# --- the port plan -----------------------------------------------------------------------------------------

def _settings(*env_files: str):
    from lab.config import ROOT, Settings

    return Settings(_env_file=tuple(ROOT / f for f in env_files))


def test_lab_and_test_stack_ports_are_disjoint_including_derived_grpc_ports():
    from lab.stack import ports

    lab = {port for _, port in ports.plan(_settings(".env")).values()}
    test = {port for _, port in ports.plan(_settings(".env", "tests/stack.env")).values()}
    assert not lab & test, f"ports shared by .env and tests/stack.env: {sorted(lab & test)}"
    for cfg in (_settings(".env"), _settings(".env", "tests/stack.env")):
        assert not ports.duplicates(cfg)


def test_every_port_setting_is_in_the_plan():
    from lab.config import Settings
    from lab.stack import ports

    cfg = _settings(".env")
    fields = {name for name in Settings.model_fields if name.endswith("_port")} - ports.CONTAINER_ONLY
    planned = {port for _, port in ports.plan(cfg).values()}
    assert {f for f in fields if getattr(cfg, f) not in planned} == set()


def test_seaweed_gets_every_grpc_port_explicitly():
    from lab.config import settings
    from lab.stack.services import seaweed_grpc_flags

    flags = seaweed_grpc_flags()
    for flag, port in (("-master.port.grpc", settings.seaweed_master_grpc_port),
                       ("-volume.port.grpc", settings.seaweed_volume_grpc_port),
                       ("-filer.port.grpc", settings.seaweed_filer_grpc_port),
                       ("-s3.port.grpc", settings.s3_grpc_port)):
        assert f"{flag}={port}" in flags


def test_port_conflicts_skip_ports_held_by_this_stack():
    from lab.config import settings
    from lab.stack import ports

    taken = {settings.kafka_port, settings.s3_grpc_port}
    lines = ports.conflicts(["kafka", "s3"], running=lambda name: name == "kafka", in_use=taken.__contains__)
    assert lines == [f"s3: port {settings.s3_grpc_port} (s3.grpc) is already in use; stop what holds it "
                     f"(`lsof -i :{settings.s3_grpc_port}`) or choose another port in .env"]


def test_port_in_use_sees_a_listener():
    from lab.stack.ports import port_in_use

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        assert port_in_use(holder.getsockname()[1], "127.0.0.1")
    assert not port_in_use(free_port(), "127.0.0.1")


# --- process inspection through psutil (zombie-aware, pid reuse, group memory) ---------------------------

def test_a_zombie_is_not_alive_and_a_reused_pid_is_not_ours():
    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)
    created = __import__("psutil").Process(proc.pid).create_time()
    assert supervisor.process_alive(proc.pid, created)
    assert not supervisor.process_alive(proc.pid, created - 100)  # another process with the same pid
    proc.kill()
    deadline = time.monotonic() + 10
    while __import__("psutil").Process(proc.pid).status() != "zombie" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not supervisor.process_alive(proc.pid)  # a zombie, not reaped yet
    assert not supervisor.group_alive(proc.pid)
    proc.wait()
    assert not supervisor.process_alive(proc.pid)


def test_group_memory_counts_every_member(state):
    svc = service("unit-rss", ["sh", "-c", "sleep 60 & sleep 60 & wait"])
    pid = supervisor.start(svc)
    deadline = time.monotonic() + 10
    while len(supervisor.group_members(pid)) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    members = supervisor.group_members(pid)
    assert len(members) == 3
    assert supervisor.group_rss_bytes(pid) == sum(p.memory_info().rss for p in members) > 0
    assert supervisor.stop("unit-rss", grace_s=5)
    assert supervisor.group_rss_bytes(pid) == 0


def test_group_cpu_seconds_counts_every_process_of_the_group(state):
    busy = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\ntime.sleep(60)"
    pid = supervisor.start(service("unit-cpu", ["sh", "-c", f"python3 -c '{busy}' & python3 -c '{busy}' & wait"]))
    deadline = time.monotonic() + 20
    while supervisor.group_cpu_seconds(pid) < 0.6 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert 0.6 <= supervisor.group_cpu_seconds(pid) < 5  # both children's 0.3 s, from one call
    supervisor.stop("unit-cpu", grace_s=5)
    assert supervisor.group_cpu_seconds(pid) == 0


def test_kill_returns_once_the_group_is_gone_and_the_service_stays_wanted(state):
    pid = supervisor.start(service("unit-kill", ["sh", "-c", "sleep 60 & wait"]))
    assert supervisor.kill("unit-kill") == pid
    assert not supervisor.group_alive(pid) and supervisor.running_pid("unit-kill") is None
    assert supervisor.wanted("unit-kill")  # a crash: the watcher restarts it
    supervisor.stop("unit-kill")
    assert not supervisor.wanted("unit-kill")  # a stop: the watcher leaves it


# --- the watcher ---------------------------------------------------------------------------------------

def _watcher(services, max_restarts=3, window_s=600):
    from prometheus_client import CollectorRegistry

    from lab.stack import watch

    return watch.Watcher({s.name: s for s in services}, max_restarts, window_s, registry=CollectorRegistry())


def test_watcher_restarts_a_killed_service_after_its_backoff_and_counts_it(state):
    from lab.stack import watch

    svc = service("unit-crash", ["sleep", "60"], healthy=lambda: True)
    old = supervisor.start(svc)
    w = _watcher([svc])
    w.round(now=0)
    supervisor.kill("unit-crash")
    w.round(now=100)  # death seen: the restart waits for its backoff
    assert supervisor.running_pid("unit-crash") is None
    w.round(now=100 + watch.backoff_s(0))
    new = supervisor.running_pid("unit-crash")
    assert new and new != old
    w.round(now=103)  # healthy again
    assert w.tracks["unit-crash"].starting_since is None
    assert watch.read_restarts() == {"unit-crash": 1}
    assert w.registry.get_sample_value("lab_service_restarts_total", {"service": "unit-crash"}) == 1


def test_watcher_never_restarts_a_stopped_service(state):
    svc = service("unit-stopped", ["sleep", "60"], healthy=lambda: True)
    supervisor.start(svc)
    w = _watcher([svc])
    supervisor.stop("unit-stopped")
    for now in range(0, 300, 10):
        w.round(now=now)
    assert supervisor.running_pid("unit-stopped") is None
    assert w.registry.get_sample_value("lab_service_restarts_total", {"service": "unit-stopped"}) == 0


def test_watcher_gives_up_on_a_crash_loop_with_a_clear_message(state):
    from lab.stack import watch

    svc = service("unit-loop", ["sh", "-c", "exit 1"])
    supervisor.start(svc)
    w = _watcher([svc], max_restarts=3)
    now = 0.0
    for _ in range(40):
        time.sleep(0.05)  # the child exits
        w.round(now=now)
        now += 61  # past any backoff
    message = watch.gave_up("unit-loop")
    assert message and message.startswith("unit-loop died 3 times within 10 min: crash loop, not restarted again")
    assert "`lab up unit-loop`" in message and str(supervisor.log_file("unit-loop")) in message
    assert watch.read_restarts() == {"unit-loop": 3}
    assert w.registry.get_sample_value("lab_service_crash_loop", {"service": "unit-loop"}) == 1


def test_watcher_kills_a_hung_service_and_restarts_it_like_a_crash(state):
    from lab.stack import watch

    answers = {"ok": True}
    svc = service("unit-hung", ["sleep", "60"], healthy=lambda: answers["ok"])
    old = supervisor.start(svc)
    w = _watcher([svc])
    answers["ok"] = False  # alive, but its probe fails (a FerretDB with an exhausted pool)
    w.check_liveness(now=0)
    w.check_liveness(now=watch.HUNG_AFTER_S / 2)
    assert supervisor.running_pid("unit-hung") == old  # a slow spell is not a hang
    answers["ok"] = True
    w.check_liveness(now=watch.HUNG_AFTER_S - 1)  # one good probe resets the clock
    answers["ok"] = False
    w.check_liveness(now=watch.HUNG_AFTER_S)
    w.check_liveness(now=2 * watch.HUNG_AFTER_S - 1)
    assert supervisor.running_pid("unit-hung") == old
    w.check_liveness(now=2 * watch.HUNG_AFTER_S)
    assert supervisor.running_pid("unit-hung") is None and supervisor.wanted("unit-hung")
    answers["ok"] = True
    w.round(now=1000)
    w.round(now=1000 + watch.backoff_s(0))
    assert supervisor.running_pid("unit-hung") not in (None, old)
    assert watch.read_restarts() == {"unit-hung": 1}
    supervisor.stop("unit-hung")


def test_backoff_doubles_and_is_bounded():
    from lab.stack import watch

    assert [watch.backoff_s(n) for n in range(7)] == [2, 4, 8, 16, 32, 60, 60]


# --- lab up: all or nothing ---------------------------------------------------------------------------------

def test_failed_up_stops_what_it_started_and_names_the_service_and_its_log(state, monkeypatch):
    import lab.stack as stack

    good = service("unit-good", ["sleep", "60"], healthy=lambda: True)
    bad = service("unit-bad", ["sh", "-c", "echo cannot-start; exit 2"])
    bad.infra = False
    monkeypatch.setattr(stack, "all_services", lambda: {"unit-good": good, "unit-bad": bad})
    monkeypatch.setattr(stack, "watcher_service", lambda: service("unit-watcher", ["sleep", "60"]))
    monkeypatch.setattr(stack, "check_ports", lambda chosen: None)
    with pytest.raises(StackError) as err:
        stack.up(["unit-good", "unit-bad"], report=lambda _: None)
    text = str(err.value)
    assert text.startswith("unit-bad: exited during start-up") and "cannot-start" in text
    assert str(supervisor.log_file("unit-bad")) in text
    assert text.endswith("stopped what this `lab up` started: unit-good, unit-bad")
    assert supervisor.running_pid("unit-good") is None and not supervisor.wanted("unit-good")


def test_up_refuses_before_starting_anything_when_a_port_is_taken(state, monkeypatch):
    import lab.stack as stack

    monkeypatch.setattr(stack.ports, "conflicts", lambda names, running: ["kafka: port 1 is already in use"])
    with pytest.raises(StackError, match=r"^nothing started:\n  kafka: port 1 is already in use"):
        stack.up(["kafka"], report=lambda _: None)
    assert not (state / "run").exists()


# --- tools at run time, and the preflight ---------------------------------------------------------------

def test_a_tool_missing_at_run_time_names_make_lab(tmp_path):
    from lab import toolpaths

    with pytest.raises(toolpaths.ToolMissing, match=r"^weed v1 is not installed at .*: run `make lab`"):
        toolpaths.existing(tmp_path / "weed-v1", "weed v1")


def test_doctor_lines_say_ok_or_fail_with_the_fix(monkeypatch):
    from lab.stack import doctor

    monkeypatch.setattr(supervisor, "running_pid", lambda name: None)  # no lab running: a taken port is a FAIL

    assert doctor.check_python((3, 10, 4)).line().startswith("[FAIL] Python 3.10.4: 3.11+ is needed\n       fix:")
    assert doctor.check_memory(available=1 * doctor.GIB).status == "FAIL"
    assert doctor.check_memory(available=8 * doctor.GIB).status == "OK"
    assert doctor.check_disk(free=1 * doctor.GIB).status == "FAIL"
    assert doctor.check_cores(1).line() == ("[FAIL] 1 CPU core: the lab needs 2\n"
                                            "       fix: use a machine (or VM) with 2+ cores")
    taken = doctor.check_ports(in_use=lambda port: True)
    assert any(c.status == "FAIL" and "`lsof -i :" in c.fix for c in taken)
    monkeypatch.setattr(supervisor, "running_pid", lambda name: 4242)  # this lab holds them: OK
    assert all(c.status == "OK" and "held by this lab" in c.what for c in doctor.check_ports(in_use=lambda p: True))
    text, ok = doctor.report([doctor.Check("OK", "a"), doctor.Check("TODO", "b", "make lab")])
    assert ok and text.endswith("ready: every check passed")
    text, ok = doctor.report([doctor.Check("FAIL", "c", "fix c")])
    assert not ok and "1 check(s) failed" in text


def test_a_hanging_upkeep_never_stops_the_restarts(state):
    import threading

    hang = threading.Event()
    svc = service("unit-upkeep", ["sleep", "60"], healthy=lambda: True)
    svc.upkeep = hang.wait  # a catalog that stopped answering
    supervisor.start(svc)
    w = _watcher([svc])
    w.round(now=0)  # starts the upkeep, which hangs
    supervisor.kill("unit-upkeep")
    w.round(now=100)
    w.round(now=103)
    assert supervisor.running_pid("unit-upkeep") is not None
    hang.set()
