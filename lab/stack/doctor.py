"""`lab doctor`: a preflight of this machine for the lab, one [OK] / [FAIL] line per check, each failure with
its exact fix. `make lab` runs it before building anything and stops on a [FAIL].

Tools not built yet are [TODO], not failures: `make lab` builds them next.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

import psutil

from lab import toolpaths
from lab.config import ROOT, settings
from lab.stack import ports, supervisor

GIB = 2**30
MIN_FREE_MEMORY = 4 * GIB   # the full stack measured 2.6-3.6 GiB RSS, plus a browser
MIN_FREE_DISK = 6 * GIB     # tools, Go build cache, Spark, the catalog and segments of a day
MIN_CORES = 2


@dataclass
class Check:
    status: str   # OK, FAIL or TODO
    what: str
    fix: str = ""

    def line(self) -> str:
        return f"[{self.status}] {self.what}" + (f"\n       fix: {self.fix}" if self.fix else "")


def _version(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return (proc.stdout + proc.stderr).strip() if proc.returncode == 0 else None


def _first_number(text: str, pattern: str) -> tuple[int, ...] | None:
    match = re.search(pattern, text)
    return tuple(int(x) for x in match.groups()) if match else None


MIN_PYTHON = (3, 11)


def check_python(version: tuple[int, ...] = tuple(sys.version_info[:3])) -> Check:
    found = ".".join(map(str, version))
    if version >= MIN_PYTHON:
        return Check("OK", f"Python {found}")
    return Check("FAIL", f"Python {found}: 3.11+ is needed",
                 "install Python 3.11+ (Debian: apt-get install python3.11-venv; macOS: brew install python@3.12), "
                 "then `make lab PYTHON=python3.11`")


def check_java() -> Check:
    fix = "install Java 17+ (Debian: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17)"
    exe = shutil.which("java")
    out = _version([exe, "-version"]) if exe else None
    major = _first_number(out or "", r'version "(\d+)')
    if not major:
        return Check("FAIL", "Java: not found on PATH", fix)
    if major[0] < 17:
        return Check("FAIL", f"Java {major[0]}: 17+ is needed", fix)
    return Check("OK", f"Java {major[0]}")


def check_go() -> Check:
    fix = "install Go 1.24+ (https://go.dev/doc/install; macOS: brew install go)"
    exe = shutil.which("go")
    found = _first_number(_version([exe, "version"]) or "", r"go(\d+)\.(\d+)") if exe else None
    if not found:
        return Check("FAIL", "Go: not found on PATH", fix)
    if found < (1, 24):
        return Check("FAIL", f"Go {found[0]}.{found[1]}: 1.24+ is needed", fix)
    return Check("OK", f"Go {found[0]}.{found[1]}")


def check_npm() -> Check:
    fix = "install Node.js 18+ with npm (Debian: apt-get install npm; macOS: brew install node)"
    node = _first_number(_version(["node", "--version"]) or "", r"v(\d+)") if shutil.which("node") else None
    npm = _version(["npm", "--version"]) if shutil.which("npm") else None
    if not node or not npm:
        return Check("FAIL", "Node.js/npm: not found on PATH", fix)
    if node[0] < 18:
        return Check("FAIL", f"Node.js {node[0]}: 18+ is needed", fix)
    return Check("OK", f"Node.js {node[0]}, npm {npm.splitlines()[-1]}")


def check_memory(available: int | None = None) -> Check:
    available = psutil.virtual_memory().available if available is None else available
    what = f"free memory {available / GIB:.1f} GiB (the lab needs {MIN_FREE_MEMORY / GIB:.0f} GiB)"
    if available >= MIN_FREE_MEMORY:
        return Check("OK", what)
    return Check("FAIL", what, "close other programs (browsers, IDEs, Docker Desktop's VM) or use a bigger machine")


def check_disk(free: int | None = None) -> Check:
    free = shutil.disk_usage(ROOT).free if free is None else free
    what = f"free disk {free / GIB:.1f} GiB at {ROOT} (the lab needs {MIN_FREE_DISK / GIB:.0f} GiB)"
    if free >= MIN_FREE_DISK:
        return Check("OK", what)
    return Check("FAIL", what, f"free space on that disk, or clone the repository onto another; "
                               f"`lab reset` wipes an old stack's data ({settings.lab_state_dir})")


def check_cores(cores: int | None = None) -> Check:
    cores = (os.cpu_count() or 1) if cores is None else cores
    if cores >= MIN_CORES:
        return Check("OK", f"{cores} CPU cores")
    return Check("FAIL", f"{cores} CPU core: the lab needs {MIN_CORES}", "use a machine (or VM) with 2+ cores")


def check_ports(in_use: Callable[[int], bool] = ports.port_in_use) -> list[Check]:
    checks = [Check("FAIL", line, "set distinct ports in .env") for line in ports.duplicates()]
    for name, (service, port) in ports.plan().items():
        if supervisor.running_pid(service) is not None:
            checks.append(Check("OK", f"port {port} ({name}): held by this lab's {service}"))
        elif in_use(port):
            checks.append(Check("FAIL", f"port {port} ({name}): in use by another program",
                                f"stop it (`lsof -i :{port}` shows it) or set another port in .env"))
        else:
            checks.append(Check("OK", f"port {port} ({name}): free"))
    return checks


def check_tools() -> list[Check]:
    from lab.versions import pin

    tools = {
        "Kafka jars": toolpaths.kafka_libs_dir(),
        **{f"{name} {pin(version)}": toolpaths.go_binary_path(name) for name, version in toolpaths.GO_TOOLS.items()},
        "hls.js": toolpaths.hlsjs_file(),
    }
    try:
        tools["spark-sql-kafka"] = toolpaths.spark_kafka_dir()
    except ImportError:
        pass  # no pyspark yet: the venv is made by `make lab`
    return [Check("OK", f"tool {name}: built ({path})") if path.exists() else
            Check("TODO", f"tool {name}: not built yet", "`make lab` fetches or builds it once (minutes)")
            for name, path in tools.items()]


def run_checks() -> list[Check]:
    return [check_python(), check_java(), check_go(), check_npm(), check_memory(), check_disk(), check_cores(),
            *check_ports(), *check_tools()]


def report(checks: list[Check]) -> tuple[str, bool]:
    """The text to print, and whether every check passed (TODO is not a failure)."""
    failed = [c for c in checks if c.status == "FAIL"]
    lines = [c.line() for c in checks]
    lines.append(f"{len(failed)} check(s) failed: fix them, then run `make lab` again" if failed
                 else "ready: every check passed")
    return "\n".join(lines), not failed
