"""Where `make lab` puts each fetched or built tool, under LAB_TOOLS_DIR: paths only, nothing is fetched here.

Run-time code (the API's player page, Spark sessions, the embedded services) finds its tools through these
functions; lab/stack/tools.py fetches and builds them at set-up. A missing tool at run time is a ToolMissing
naming `make lab`, never a download in the middle of a lesson.
"""

from __future__ import annotations

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
