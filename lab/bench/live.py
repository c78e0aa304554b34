"""`lab bench live --streams N --rate R --duration S [--engine spark,plain]`: how long a live segment takes
to reach its playlist, for each engine side by side on the same published chunks (live_engines).

Replays pre-encoded real segments for N concurrent streams (each started through the API) at R chunks/s
per stream for S seconds, and reports per engine:
- the player's view: every stream's playlist is polled in the bucket and the first time each chunk's URI
  appears is recorded (publish -> visible; the poll round time is the resolution);
- the catalog's view: `processing_latency_ms` the engine recorded (publish -> playlist written);
- sustained chunks/s into playlists and the backlog (published, not yet in that engine's playlist), and
  spark-live's consumer lag (`kafka_consumer_lag{query="live"}`);
- where a batch spends its time (`live_batch_stage_seconds`);
- each engine's latency as a ratio to the plain engine's, and the 1-minute load average.
`--find-knee` and `--with-vod` are in live_modes. It prints figures and never asserts.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lab import catalog, events, storage
from lab.bench.live_engines import ENGINES, Engine, start_engines, stop_engines
from lab.config import settings
from lab.producer.replay import Replay, sample_segments
from lab.producer.stream import LiveStream, PublishedChunk

DRAIN_TIMEOUT_S = 20.0
# Pause between two polling rounds of every playlist. The poller is a load of its own on the same two cores
# (S3 GETs and their parsing): with 5 ms, 20 playlists were read ~400 times a second, about half a core with the
# S3 server's share, which the engines measured then paid for. 50 ms costs the player column up to 50 ms of
# resolution (the catalog column, written by the engine itself, has none) and leaves the cores to the engines.
POLL_PAUSE_S = 0.05
WARM_UP_S = 8.0
CHUNK_URI = re.compile(r"chunks/(\d+)\.ts")
STAGES = ("wait", "collect", "state", "verify", "playlist", "catalog", "state_write", "finish")


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 95, 99)) -> dict[int, float]:
    """Nearest-rank percentiles (no interpolation: every figure is a latency that really happened)."""
    ordered = sorted(values)
    if not ordered:
        return {}
    return {p: ordered[min(len(ordered) - 1, max(0, -(-p * len(ordered) // 100) - 1))] for p in points}


def scrape_spark_live() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """spark-live's /metrics as {(sample name, labels): value}; empty if it does not answer."""
    url = f"http://{settings.lab_host}:{settings.spark_live_metrics_port}/metrics"
    try:
        text = httpx.get(url, timeout=2.0).text
    except httpx.HTTPError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def settled_scrape(quiet_s: float = 2.0, timeout_s: float = 15.0) -> dict:
    """spark-live's metrics once its batch count stops moving: a batch still running when the last chunk
    showed up would otherwise be missing from the batch and stage counts."""
    key = ("spark_batch_duration_seconds_count", (("query", "live"),))
    last = scrape_spark_live()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = scrape_spark_live()
        if now.get(key) == last.get(key):
            return now
        last = now
    return last


class PlaylistWatcher:
    """Polls every stream's live playlist (one key per engine) and records when each chunk URI first shows
    up (epoch ms) under that key."""

    def __init__(self, keys: Sequence[tuple[str, str]]):
        self.keys = list(keys)  # (stream_id, playlist key)
        self.first_seen: dict[tuple[str, int], int] = {}
        self.rounds: list[float] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(min(32, max(1, len(self.keys))), thread_name_prefix="bench-poll")
        self._thread = threading.Thread(target=self._loop, name="bench-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()

    def _poll(self, key: tuple[str, str]) -> None:
        text = storage.get_text(settings.bucket_manifests, key[1]) or ""
        seen_at = events.now_ms()
        for index in CHUNK_URI.findall(text):
            self.first_seen.setdefault((key[1], int(index)), seen_at)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            list(self._pool.map(self._poll, self.keys))
            self.rounds.append(time.perf_counter() - started)
            self._stop.wait(POLL_PAUSE_S)


class LagSampler:
    """Once a second: spark-live's consumer lag gauge (records on the broker past its last batch, measured
    after each batch), and each engine's backlog (chunks published but not yet in its playlist)."""

    def __init__(self, backlog: Callable[[], list[int]]) -> None:
        self.samples: list[float] = []
        self.backlog: list[list[int]] = []
        self._count_backlog = backlog
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bench-lag", daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            self.backlog.append(self._count_backlog())
            value = scrape_spark_live().get(("kafka_consumer_lag", (("query", "live"),)))
            if value is not None:
                self.samples.append(value)


def catalog_latencies(collection: str, stream_ids: Sequence[str]) -> list[float]:
    docs = catalog.collection(collection).find(
        {"stream_id": {"$in": list(stream_ids)}, "chunk_index": {"$gte": 0}, "in_playlist": True},
        {"_id": 0, "processing_latency_ms": 1})
    return [d["processing_latency_ms"] for d in docs if d.get("processing_latency_ms") is not None]


def _stage_means(before: dict, after: dict) -> list[tuple[str, float, int]]:
    rows = []
    for stage in STAGES:
        labels = (("stage", stage),)
        total = after.get(("live_batch_stage_seconds_sum", labels), 0.0) - before.get(
            ("live_batch_stage_seconds_sum", labels), 0.0)
        count = after.get(("live_batch_stage_seconds_count", labels), 0.0) - before.get(
            ("live_batch_stage_seconds_count", labels), 0.0)
        if count:
            rows.append((stage, total / count * 1000, int(count)))
    return rows


def load_average() -> float:
    return os.getloadavg()[0]


def cpu_seconds(engines: Sequence[Engine]) -> dict[str, float]:
    """CPU seconds so far of every stack service, each bench engine's subprocess and this process (the
    publisher and the poller): a run's difference says what the two cores were busy with."""
    import psutil

    from lab import stack
    from lab.stack import supervisor

    used = stack.cpu_seconds()
    for engine in engines:
        if engine.process is not None:
            used[f"bench {engine.name}"] = supervisor.group_cpu_seconds(engine.process.pid)
    me = psutil.Process().cpu_times()
    used["bench publisher + poller"] = me.user + me.system
    return used


@dataclass
class EngineResult:
    label: str
    player_ms: list[float]
    catalog_ms: list[float]
    seen: int
    sustained: float
    backlog_max: int
    stages: list[tuple[str, float, int]] = field(default_factory=list)


@dataclass
class RunResult:
    streams: int
    rate: float
    duration: float
    published: int
    load: tuple[float, float]  # 1-minute load average before and after
    engines: list[EngineResult]
    lag: list[float]
    poll_p50_ms: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds over the run, by process
    wall_s: float = 0.0

    @property
    def offered(self) -> float:
        return self.streams * self.rate


def measure(engines: list[Engine], streams: int, rate: float, duration: float,
            replay: Replay | None = None) -> RunResult:
    """One run: N new streams published for `duration` s, seen by every engine; the streams are ended."""
    replay = replay or Replay(sample_segments())
    load_before, cpu_before, began = load_average(), cpu_seconds(engines), time.monotonic()
    live: list[LiveStream] = [replay.start_stream(f"bench {i + 1}/{streams}") for i in range(streams)]
    published: list[PublishedChunk] = []
    lock = threading.Lock()
    keys = {(e.name, s.stream_id): e.playlist_key(s.stream_id) for e in engines for s in live}

    def record(chunk: PublishedChunk) -> None:
        with lock:
            published.append(chunk)

    def missing(engine: Engine) -> int:
        with lock:
            return sum((keys[(engine.name, c.stream_id)], c.sequence_number) not in watcher.first_seen
                       for c in published)

    before = scrape_spark_live()
    watcher = PlaylistWatcher([(sid, key) for (_, sid), key in keys.items()])
    watcher.start()
    with LagSampler(lambda: [missing(e) for e in engines]) as lag:
        replay.run(live, rate, duration, on_publish=record)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and any(missing(e) for e in engines):
            time.sleep(0.1)
    watcher.stop()
    after = settled_scrape() if any(e.name == "spark" for e in engines) else {}
    for stream in live:
        replay.end(stream)
    results = [_engine_result(e, i, live, published, watcher, keys, lag) for i, e in enumerate(engines)]
    for result, engine in zip(results, engines, strict=True):
        if engine.name == "spark":
            result.stages = _stage_means(before, after)
    rounds = percentiles([r * 1000 for r in watcher.rounds], (50,))
    cpu_after = cpu_seconds(engines)
    cpu = {name: cpu_after[name] - cpu_before.get(name, 0.0) for name in cpu_after}
    return RunResult(streams, rate, duration, len(published), (load_before, load_average()), results,
                     lag.samples, rounds.get(50, 0.0), cpu, time.monotonic() - began)


def _engine_result(engine: Engine, index: int, live: list[LiveStream], published: list[PublishedChunk],
                   watcher: PlaylistWatcher, keys: dict, lag: LagSampler) -> EngineResult:
    seen = {(c.stream_id, c.sequence_number): watcher.first_seen.get((keys[(engine.name, c.stream_id)],
                                                                       c.sequence_number))
            for c in published}
    player = [seen[(c.stream_id, c.sequence_number)] - c.published_at_ms for c in published
              if seen[(c.stream_id, c.sequence_number)] is not None]
    first_pub = min((c.published_at_ms for c in published), default=0)
    last_seen = max((t for t in seen.values() if t is not None), default=first_pub)
    span_s = max(1e-3, (last_seen - first_pub) / 1000)
    catalog_ms = catalog_latencies(engine.outputs.chunks, [s.stream_id for s in live])
    backlog = max((sample[index] for sample in lag.backlog), default=0)
    return EngineResult(engine.label, player, catalog_ms, len(player), len(player) / span_s, backlog)


def _fmt_ms(values: Sequence[float]) -> str:
    p = percentiles(values)
    return " ".join(f"{p[k]:7.0f}" for k in (50, 95, 99)) if p else "      -       -       -"


def report(result: RunResult) -> None:
    _out(f"{result.streams} stream(s) x {result.rate:g} chunks/s = {result.offered:g} chunks/s offered for "
         f"{result.duration:g} s: {result.published} published; load average (1 min) "
         f"{result.load[0]:.2f} -> {result.load[1]:.2f} on {os.cpu_count()} cores; poll round p50 "
         f"{result.poll_p50_ms:.0f} ms")
    _out(f"  {'engine':<26} {'publish -> in playlist (ms)':>27}  {'written (catalog, ms)':>23}  "
         f"{'seen':>6} {'sustained/s':>11} {'backlog max':>11}")
    _out(f"  {'':<26} {'p50     p95     p99':>27}  {'p50     p95     p99':>23}")
    for e in result.engines:
        _out(f"  {e.label:<26} {_fmt_ms(e.player_ms):>27}  {_fmt_ms(e.catalog_ms):>23}  {e.seen:>6} "
             f"{e.sustained:>11.1f} {e.backlog_max:>11}")
    plain = next((e for e in result.engines if e.label == "plain"), None)
    if plain and percentiles(plain.player_ms):
        base = percentiles(plain.player_ms)
        for e in (e for e in result.engines if e is not plain and percentiles(e.player_ms)):
            mine = percentiles(e.player_ms)
            _out(f"  ratio {e.label} / plain: p50 {mine[50] / max(base[50], 1):.2f}x, "
                 f"p95 {mine[95] / max(base[95], 1):.2f}x, p99 {mine[99] / max(base[99], 1):.2f}x")
    if result.lag:
        _out(f"  spark-live consumer lag (records on the broker not yet processed, after each batch): "
             f"max {max(result.lag):.0f}, last {result.lag[-1]:.0f}")
    if result.cpu:
        busiest = sorted(((s, n) for n, s in result.cpu.items() if s >= 0.05 * result.wall_s), reverse=True)
        _out(f"  CPU over the run's {result.wall_s:.0f} s (100 % = one core; {os.cpu_count()} cores): "
             + ", ".join(f"{name} {s / result.wall_s:.0%}" for s, name in busiest)
             + f"; all {sum(result.cpu.values()) / result.wall_s:.0%}")
    for e in result.engines:
        for stage, mean_ms, count in e.stages:
            _out(f"  {e.label} stage {stage:<11} mean {mean_ms:8.1f} ms ({count} observations)")


def report_engine_stages(engines: list[Engine]) -> None:
    """The bench engines' stage times over the whole bench (they report once, when they stop)."""
    for engine in engines:
        for stage, (total, count) in sorted(engine.stages.items()):
            if count:
                _out(f"  {engine.label} stage {stage:<11} mean {total / count * 1000:8.1f} ms "
                     f"({count:.0f} observations, whole bench)")


def warm_up(engines: list[Engine]) -> None:
    """A short run that is not reported: the first batches of a freshly started Spark query (JIT, Python
    workers, the first connections) took seconds, and landed in the first measured run's tail."""
    result = measure(engines, streams=2, rate=1.0, duration=WARM_UP_S)
    _out(f"warm-up ({WARM_UP_S:g} s, not reported): " + ", ".join(
        f"{e.label} p99 {percentiles(e.player_ms).get(99, float('nan')):.0f} ms" for e in result.engines))


def run(streams: int, rate: float, duration: float, *, engines: Sequence[str] = ("spark", "plain"),
        find_knee: bool = False, with_vod: bool = False) -> None:
    # 100 replay threads share the S3 client's 32 pooled connections; urllib3 warns for every extra one
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"lab bench live: --engine {','.join(unknown)}: choose from {', '.join(ENGINES)}")
    _out(f"live bench: engines {', '.join(engines)}; spark-live runs LIVE_ENGINE={settings.live_engine}; "
         f"trigger {settings.spark_live_trigger_s:g} s, DVR window {settings.dvr_window_size}")
    started = start_engines(list(engines))
    try:
        warm_up(started)
        if find_knee:
            from lab.bench.live_modes import find_knee as knee

            knee(started, streams, duration)
        elif with_vod:
            from lab.bench.live_modes import quiet_and_with_vod

            quiet_and_with_vod(started, streams, rate, duration)
        else:
            report(measure(started, streams, rate, duration))
    finally:
        stop_engines(started)
    report_engine_stages(started)
