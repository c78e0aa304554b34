"""The engines `lab bench live` measures side by side, on the same published chunks, in the same run.

- `spark`: the running spark-live service (its LIVE_ENGINE design), writing the lab's own playlists.
- `plain`: `lab.streaming.plain` in a subprocess: the same live logic in a confluent-kafka consumer loop.
- `executors`: a bench-only Spark application running the executor engine (`lab.bench.live_app`), for a
  side-by-side with spark-live when spark-live runs the driver engine.
- `statestore`: the same bench-only application running the state-store engine (transformWithStateInPandas,
  RocksDB), the reference Spark design.

A bench engine starts at the topic's end, consumes with its own consumer group (or checkpoint) and writes
into a namespace of its own (`manifests/bench-<engine>-<run>/...`, `bench_*` collections), so it never
touches what spark-live writes; the namespace is deleted at the end of the run.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field

from lab import catalog, storage
from lab.config import settings
from lab.streaming.live_task import Outputs

ENGINES = ("spark", "plain", "executors", "statestore")
READY_TIMEOUT_S = 300.0  # a Spark app's JVM and first batch: the statestore one needed > 120 s at load 21


@dataclass
class Engine:
    name: str
    outputs: Outputs
    process: subprocess.Popen | None = None
    stages: dict[str, tuple[float, float]] = field(default_factory=dict)  # stage -> (sum s, count), at exit

    @property
    def label(self) -> str:
        return f"spark-live ({settings.live_engine})" if self.name == "spark" else self.name

    def playlist_key(self, stream_id: str) -> str:
        return self.outputs.playlist_key(stream_id)


def _command(name: str, prefix: str) -> list[str]:
    if name == "plain":
        return [sys.executable, "-m", "lab.streaming.plain", "--prefix", prefix, "--from-end"]
    return [sys.executable, "-m", "lab.bench.live_app", "--prefix", prefix, "--engine", name]


def start_engines(names: list[str]) -> list[Engine]:
    run_id = uuid.uuid4().hex[:6]
    engines = []
    try:
        for name in names:
            if name == "spark":
                engines.append(Engine(name, Outputs()))
                continue
            prefix = f"bench-{name}-{run_id}"
            process = subprocess.Popen(_command(name, prefix), stdout=subprocess.PIPE, text=True,
                                       start_new_session=True)
            engines.append(Engine(name, Outputs(prefix), process))
            _wait_ready(engines[-1])
    except BaseException:
        stop_engines(engines)
        raise
    return engines


def _wait_ready(engine: Engine) -> None:
    """Block until the engine says it is positioned at the topic's end (nothing published before is lost)."""
    assert engine.process is not None and engine.process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        ready, _, _ = select.select([engine.process.stdout], [], [], 1.0)
        if ready:
            line = engine.process.stdout.readline()
            if line.strip() == "ready":
                return
            if not line:
                break
        if engine.process.poll() is not None:
            break
    raise SystemExit(f"lab bench live: the {engine.name} engine did not start (exit {engine.process.poll()})")


def stop_engines(engines: list[Engine]) -> None:
    """SIGTERM each subprocess, read its last line (its stage times), drop its namespace."""
    for engine in engines:
        if engine.process is None:
            continue
        if engine.process.poll() is None:
            os.killpg(engine.process.pid, signal.SIGTERM)
        try:
            out, _ = engine.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(engine.process.pid, signal.SIGKILL)
            out, _ = engine.process.communicate()
        lines = [line for line in (out or "").splitlines() if line.startswith("{")]
        if lines:
            engine.stages = {k: tuple(v) for k, v in json.loads(lines[-1]).get("stages", {}).items()}
        drop_namespace(engine.outputs)


def drop_namespace(outputs: Outputs) -> None:
    if not outputs.prefix:
        return
    storage.delete_prefix(settings.bucket_manifests, f"{outputs.prefix}/")
    catalog.db().drop_collection(outputs.chunks)
    catalog.db().drop_collection(outputs.states)
