"""`lab bench live --streams N --rate R --duration S`: how long a live segment takes to reach its playlist.

Replays pre-encoded real segments for N concurrent streams (each started through the API) at R chunks/s
per stream for S seconds, and reports:
- the player's view: every stream's playlist is polled in the bucket and the first time each chunk's URI
  appears is recorded (publish -> visible; the poll round time is the resolution);
- the catalog's view: `processing_latency_ms` the live query recorded (publish -> playlist written);
- sustained chunks/s into playlists and the consumer lag (`kafka_consumer_lag{query="live"}` of spark-live);
- where a batch spends its time (`live_batch_stage_seconds`, `spark_batch_duration_seconds` of spark-live).
It prints figures and never asserts: speed depends on the machine.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import httpx
from prometheus_client.parser import text_string_to_metric_families

from lab import catalog, events, storage
from lab.config import settings
from lab.producer.replay import Replay, sample_segments
from lab.producer.stream import LiveStream, PublishedChunk

DRAIN_TIMEOUT_S = 20.0
CHUNK_URI = re.compile(r"chunks/(\d+)\.ts")
STAGES = ("wait", "collect", "state", "verify", "playlist", "catalog", "end")


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
    """Polls every stream's live playlist and records when each chunk URI first shows up (epoch ms)."""

    def __init__(self, stream_ids: Sequence[str]):
        self.stream_ids = list(stream_ids)
        self.first_seen: dict[tuple[str, int], int] = {}
        self.rounds: list[float] = []
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(min(16, max(1, len(stream_ids))), thread_name_prefix="bench-poll")
        self._thread = threading.Thread(target=self._loop, name="bench-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._pool.shutdown()

    def _poll(self, stream_id: str) -> None:
        text = storage.get_text(settings.bucket_manifests, storage.live_playlist_key(stream_id)) or ""
        seen_at = events.now_ms()
        for index in CHUNK_URI.findall(text):
            self.first_seen.setdefault((stream_id, int(index)), seen_at)

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.perf_counter()
            list(self._pool.map(self._poll, self.stream_ids))
            self.rounds.append(time.perf_counter() - started)
            self._stop.wait(0.005)


class LagSampler:
    """Once a second: spark-live's consumer lag gauge (records on the broker past its last batch, measured
    after each batch), and the backlog a player would notice (chunks published but not yet in a playlist)."""

    def __init__(self, backlog: Callable[[], int]) -> None:
        self.samples: list[float] = []
        self.backlog: list[int] = []
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


def catalog_latencies(stream_ids: Sequence[str]) -> list[float]:
    docs = catalog.collection(catalog.LIVE).find(
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


def _fmt(p: dict[int, float]) -> str:
    return "  ".join(f"p{k} {v:7.1f} ms" for k, v in p.items()) if p else "no data"


def run(streams: int, rate: float, duration: float) -> None:
    # 100 replay threads share the S3 client's 32 pooled connections; urllib3 warns for every extra one
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    _out(f"live bench: {streams} stream(s) x {rate:g} chunks/s for {duration:g} s "
         f"(trigger {settings.spark_live_trigger_s:g} s, DVR window {settings.dvr_window_size})")
    replay = Replay(sample_segments())
    live: list[LiveStream] = [replay.start_stream(f"bench {i + 1}/{streams}") for i in range(streams)]
    published: list[PublishedChunk] = []
    lock = threading.Lock()

    def record(chunk: PublishedChunk) -> None:
        with lock:
            published.append(chunk)

    def backlog() -> int:
        with lock:
            return sum((c.stream_id, c.sequence_number) not in watcher.first_seen for c in published)

    before = scrape_spark_live()
    watcher = PlaylistWatcher([s.stream_id for s in live])
    watcher.start()
    started = time.monotonic()
    with LagSampler(backlog) as lag:
        replay.run(live, rate, duration, on_publish=record)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while time.monotonic() < deadline and any(
                (c.stream_id, c.sequence_number) not in watcher.first_seen for c in published):
            time.sleep(0.05)
    elapsed = time.monotonic() - started
    watcher.stop()
    after = settled_scrape()
    for stream in live:
        replay.end(stream)

    player = [watcher.first_seen[(c.stream_id, c.sequence_number)] - c.published_at_ms for c in published
              if (c.stream_id, c.sequence_number) in watcher.first_seen]
    last_seen = max(watcher.first_seen.values(), default=0)
    first_pub = min((c.published_at_ms for c in published), default=0)
    span_s = max(1e-3, (last_seen - first_pub) / 1000)
    batches = after.get(("spark_batch_duration_seconds_count", (("query", "live"),)), 0) - before.get(
        ("spark_batch_duration_seconds_count", (("query", "live"),)), 0)
    batch_s = after.get(("spark_batch_duration_seconds_sum", (("query", "live"),)), 0) - before.get(
        ("spark_batch_duration_seconds_sum", (("query", "live"),)), 0)
    rounds = percentiles([r * 1000 for r in watcher.rounds], (50, 99))

    _out(f"published {len(published)} chunks; {len(player)} appeared in playlists "
         f"({len(published) - len(player)} missing after {DRAIN_TIMEOUT_S:g} s drain); run {elapsed:.1f} s")
    _out(f"sustained: {len(player) / span_s:.1f} chunks/s into playlists (offered {streams * rate:g}/s)")
    _out(f"publish -> in playlist, as a player polls it : {_fmt(percentiles(player))}  "
         f"(poll round p50 {rounds.get(50, 0):.1f} ms)")
    _out(f"publish -> playlist written, from the catalog: "
         f"{_fmt(percentiles(catalog_latencies([s.stream_id for s in live])))}")
    if lag.samples:
        _out(f"consumer lag (spark-live gauge: records on the broker not yet processed, after each batch): "
             f"max {max(lag.samples):.0f}, last {lag.samples[-1]:.0f}")
    else:
        _out("consumer lag: spark-live metrics not reachable")
    if lag.backlog:
        _out(f"backlog (published, not yet in a playlist; sampled each second): "
             f"max {max(lag.backlog)}, mean {sum(lag.backlog) / len(lag.backlog):.1f}")
    if batches:
        _out(f"spark-live batches: {batches:.0f}, mean {batch_s / batches * 1000:.1f} ms each "
             f"(foreachBatch wall time), {len(published) / batches:.2f} chunks per batch")
    for stage, mean_ms, count in _stage_means(before, after):
        _out(f"  stage {stage:<9} mean {mean_ms:7.1f} ms  ({count} observations)")
