"""Small helpers the lessons share: a quiet notebook, the API client, waiting, background work, Spark.

Lessons show widgets, tables and plots. Logs of the lab's modules go to a file in the stack's log folder
(`logs/notebooks.log`) instead of the cells; a JVM started from a notebook gets /dev/null as its console.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from lab.config import settings
from lab.waiting import wait_for  # noqa: F401 (lessons call lesson.wait_for)

QUIET_LOGGERS = ("lab", "py4j", "pyspark", "botocore", "boto3", "urllib3", "httpx", "httpcore", "s3transfer")


def log_path() -> Path:
    return settings.lab_state_dir / "logs" / "notebooks.log"


def setup() -> None:
    """Call once at the top of a lesson: logs to a file, matplotlib inline, readable pandas tables, and the
    exercises' passes recorded in the state dir (`lab progress`)."""
    from lab.exercises import progress

    progress.ENABLED = True
    path = log_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in QUIET_LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, logging.FileHandler)]:
            logger.removeHandler(old)
        logger.addHandler(handler)
        logger.propagate = False
        logger.setLevel(logging.INFO if name == "lab" else logging.WARNING)
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("matplotlib", "inline")
    except ImportError:
        pass
    import pandas as pd

    pd.set_option("display.max_colwidth", 90)
    pd.set_option("display.max_rows", 40)
    pd.set_option("display.width", 160)


class CheckLine:
    """A "Check yourself" verdict: green once every exercise of the lesson passed, red until then."""

    def __init__(self, message: str, todo: list[str]):
        self.message, self.todo = message, todo

    def __repr__(self) -> str:
        if not self.todo:
            return f"✓ {self.message}"
        return f"✗ {self.message}; still to pass: {', '.join(self.todo)} (`lab progress` lists them)"

    def _repr_html_(self) -> str:
        import html

        color = "#1b7f3b" if not self.todo else "#b3261e"
        return f'<div style="color:{color};font:600 14px/1.4 system-ui,sans-serif">{html.escape(repr(self))}</div>'


def ok(message: str) -> None:
    """The line a "Check yourself" cell ends with: the lesson's own checks held (the cell's asserts); green
    only once the exercises whose checkers ran in this kernel have passed too."""
    from lab.exercises import progress

    todo = [f"{lesson[1:]} {m}" for lesson in sorted(progress.CALLED) for m in progress.missing(lesson)]
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(CheckLine(message, todo))
            return
    except ImportError:
        pass
    print(repr(CheckLine(message, todo)))  # noqa: T201 (the one line a learner is meant to read)


def api(timeout: float = 120.0) -> httpx.Client:
    """The control plane, with the API key write endpoints need."""
    from lab.apiclient import client

    return client(timeout)


def producer(client_id: str, **overrides: Any):
    """The lab's Kafka producer (idempotent, acks=all) with librdkafka's own log lines sent to the lesson's
    log file: a broker restart makes it log retries, which must not land in a cell as red text."""
    from lab import topics

    return topics.producer(**{"client.id": client_id, "logger": logging.getLogger("lab.kafka"), **overrides})


def private_topic(prefix: str, partitions: int = 3) -> str:
    """A topic of the lesson's own (`{prefix}-{random}`): with the producer on, the pipeline's topics receive
    events all the time, so a lesson that must predict what its query reads publishes where nothing else does."""
    from lab import topics

    return topics.create_scratch_topic(f"{prefix}-", partitions, random_bytes=4)


def delete_topic(name: str) -> None:
    from lab import topics

    admin = topics.admin(quiet=True)  # kept until the futures finish: a destroyed client fails them
    for future in admin.delete_topics([name], request_timeout=30).values():
        future.result()


class Background:
    """Runs `target(*args, **kwargs)` in a daemon thread; keeps its result or its error (never prints)."""

    def __init__(self, target: Callable[..., Any], *args: Any, name: str = "lesson-background", **kwargs: Any):
        self.result: Any = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target, args, kwargs), name=name, daemon=True)
        self._thread.start()

    def _run(self, target: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        try:
            self.result = target(*args, **kwargs)
        except BaseException as exc:  # kept for the notebook to show, not printed from the thread
            self.error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def join(self, timeout: float | None = None) -> Any:
        """Wait for the result; re-raise the thread's error here, in the notebook's own cell."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"{self._thread.name} still running after {timeout} s")
        if self.error is not None:
            raise self.error
        return self.result


def ensure_healthy() -> list[str]:
    """Start every service this stack runs that is not healthy (after a lesson that broke things was
    interrupted, say); returns the names started."""
    from lab.widgets.health import health_frame

    frame = health_frame()
    down = [str(n) for n in frame.loc[frame["wanted"] & ~frame["healthy"], "service"]]
    for name in down:
        start_service(name)
    return down


@contextmanager
def quiet_console() -> Iterator[None]:
    """Point this process's stdout/stderr file descriptors at /dev/null while the block runs. A child started
    inside (the JVM behind a SparkSession) keeps /dev/null as its console, so its start-up chatter and later
    warnings never reach the notebook; Python's own output is restored at the end of the block."""
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def spark_session(app_name: str, master: str = "local[1]"):
    """A small SparkSession for a lesson (one core, no UI): the lab's own builder, started quietly."""
    from lab.streaming import session

    with quiet_console():
        spark = session.build(app_name, master=master, shuffle_partitions=1)
    return spark


# --- services, in either mode (lesson 08) -----------------------------------------------------------
# Embedded mode controls its local processes. In the container stack they are not the kernel's (no Docker
# socket is mounted into `jupyter`, on purpose): the lesson prints the exact command for a terminal on the
# host, then waits, bounded, until the service's health probe shows the effect.

HOST_COMMAND_WAIT_S = 300.0
# compose service -> the embedded services that stand in for it when LAB_HOST_TERMINAL=emulated (tests)
EMULATED_BY = {"spark-job": ("spark-vod", "spark-live"), "mongodb": ("catalog",)}


def compose_command(action: str, name: str) -> str:
    """`docker compose kill spark-job` for `kill_service("spark-live")` in the container stack."""
    from lab.widgets.health import mode_name

    return f"docker compose {action} {mode_name(name)}"


def _in_host_terminal(action: str, name: str, *, healthy_after: bool, timeout: float) -> float:
    """Print the host command, then wait until the service's probe says `healthy_after`; returns seconds."""
    from lab.widgets.health import mode_name

    command = compose_command(action, name)
    print(f"In a terminal on your host, in the lab's folder, run:\n    {command}")  # noqa: T201
    began = time.monotonic()
    if settings.lab_host_terminal == "emulated":
        _emulate(action, mode_name(name))
    state = "healthy" if healthy_after else "down"
    wait_for(lambda: healthy(name) == healthy_after, f"`{command}` to take effect ({mode_name(name)} {state})",
             timeout=timeout, every=1.0)
    return time.monotonic() - began


def _emulate(action: str, compose_name: str) -> None:
    """What the host command would do, done by the embedded stack in another process (a second terminal):
    the container-mode lesson test has no Docker engine."""
    import subprocess
    import sys

    names = EMULATED_BY.get(compose_name, (compose_name,))
    code = "import sys; from lab.widgets import lesson; lesson.embedded_control(sys.argv[1], sys.argv[2:])"
    subprocess.run([sys.executable, "-c", code, action, *names], env={**os.environ, "LAB_MODE": "embedded"},
                   check=True, timeout=HOST_COMMAND_WAIT_S, capture_output=True)


def embedded_control(action: str, names: list[str]) -> None:
    """`kill`, `stop` or `start` embedded services by name (the emulated host terminal's commands)."""
    from lab import stack

    for name in names:
        {"kill": stack.kill_service, "stop": stack.stop_service, "start": stack.start_service}[action](name)


def kill_service(name: str) -> int | None:
    """SIGKILL a service's whole process group, as a crash would (no clean shutdown). Returns the old pid;
    in the container stack, None once the printed `docker compose kill` has taken effect."""
    if settings.lab_mode == "containers":
        _in_host_terminal("kill", name, healthy_after=False, timeout=HOST_COMMAND_WAIT_S)
        return None
    from lab import stack

    return stack.kill_service(name)  # the stack's watcher restarts it; start_service waits for that


def stop_service(name: str) -> None:
    """SIGTERM, as `lab down` does (`docker compose stop` in containers): the service shuts down cleanly."""
    if settings.lab_mode == "containers":
        _in_host_terminal("stop", name, healthy_after=False, timeout=HOST_COMMAND_WAIT_S)
        return
    from lab import stack

    stack.stop_service(name)


def start_service(name: str) -> float:
    """Start a service again and wait until it is healthy; returns the seconds it took."""
    if settings.lab_mode == "containers":
        return _in_host_terminal("start", name, healthy_after=True, timeout=HOST_COMMAND_WAIT_S)
    from lab import stack

    return stack.start_service(name)


def healthy(name: str) -> bool:
    """The service's health probe, by its name in either mode (`spark-live` is `spark-job` in containers)."""
    from lab.widgets import health

    return health.healthy(name)
