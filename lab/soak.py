"""`lab soak --hours H --speed X`: an accelerated workshop day on the running stack.

The stack's own producer is paused (stopped cleanly, started again at the end) and the soak produces instead,
at X times the producer's rates: live chunks from pre-encoded real segments (lab/producer/replay.py), a new
stream every LIVE_CHUNKS_PER_STREAM chunks, and a VOD upload every VOD_INTERVAL/X s, at most one transcode in
flight (a 2-core laptop cannot transcode faster; skipped uploads are counted, never hidden).

Every simulated minute (60/X real seconds) it samples: live latency p50/p99 over that minute (from spark-live's
chunk_processing_latency_seconds histogram), catalog sizes, the hot read latencies (lab bench catalog's reads),
RSS per service and restarts. At the end: a table (one row per simulated hour) and a CSV of every sample.
"""

from __future__ import annotations

import csv
import re
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from lab import catalog
from lab.config import settings

HISTOGRAM = "chunk_processing_latency_seconds_bucket"


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def live_buckets() -> dict[float, float]:
    """le -> cumulative count of spark-live's live latency histogram (empty if it does not answer)."""
    try:
        text = httpx.get(f"http://{settings.lab_host}:{settings.spark_live_metrics_port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    return parse_buckets(text)


def parse_buckets(text: str) -> dict[float, float]:
    buckets = {}
    for line in text.splitlines():
        match = re.match(rf"^{HISTOGRAM}\{{(.*)\}} (\S+)$", line)
        if not match:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if labels.get("stream_type") == "live":
            buckets[float(labels["le"])] = float(match.group(2))
    return buckets


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """The q-quantile (seconds) of the observations between two histogram readings, interpolated inside its
    bucket as Prometheus's histogram_quantile does; None without observations."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank = q * counts[-1]
    lower, below = 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


class Load:
    """Live chunks and VOD uploads at `speed` times the producer's rates, on background threads."""

    def __init__(self, speed: float):
        from lab.producer.replay import Replay

        self.speed = speed
        self.stop = threading.Event()
        self.replay = Replay()
        self.vod_uploaded = self.vod_skipped = self.live_chunks = 0
        self.in_flight: str | None = None

    def live(self) -> None:
        rate = self.speed / settings.live_segment_seconds
        while not self.stop.is_set():
            stream = self.replay.start_stream("soak")
            seconds = settings.live_chunks_per_stream / rate
            self.replay.run([stream], rate, seconds, stop=self.stop, on_publish=lambda _c: self._count())
            self.replay.end(stream)

    def _count(self) -> None:
        self.live_chunks += 1

    def vod(self) -> None:
        from lab.producer.upload import api_client
        from lab.producer.vod import _clips, next_clip, upload_once

        clips, number = _clips(), 1
        period = (settings.vod_interval_min + settings.vod_interval_max) / 2 / self.speed
        with api_client() as client:
            while not self.stop.wait(period):
                if self.in_flight and (catalog.stream_doc(catalog.VOD, self.in_flight) or {}).get("status") not in (
                        "ready", "failed"):
                    self.vod_skipped += 1  # the previous transcode still runs: this upload would only queue
                    continue
                try:
                    self.in_flight = upload_once(client, next_clip(clips, number), number)
                    self.vod_uploaded += 1
                    number += 1
                except Exception as exc:  # an upload refused or timed out is counted as skipped, and said
                    _print(f"  VOD upload failed: {exc}")
                    self.vod_skipped += 1

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.live, daemon=True), threading.Thread(target=self.vod, daemon=True)]
        for t in threads:
            t.start()
        return threads


def sample(minute: int, before: dict[float, float], load: Load) -> tuple[dict, dict[float, float]]:
    from lab import stack
    from lab.bench.catalog import _median_ms, document_count

    after = live_buckets()
    row: dict = {"sim_minute": minute, "wall_s": round(time.time(), 1)}
    for name, q in (("live_p50_ms", 0.5), ("live_p99_ms", 0.99)):
        value = quantile(q, before, after)
        row[name] = round(value * 1000) if value is not None else ""
    for name in (catalog.VOD, catalog.LIVE, catalog.LIVE_STATE, catalog.STREAMS):
        row[f"docs_{name}"] = document_count(name)
    newest_vod = load.in_flight or ""
    row["read_vod_doc_ms"] = round(_median_ms(lambda: catalog.stream_doc(catalog.VOD, newest_vod), 5), 2)
    row["read_vod_chunks_ms"] = round(_median_ms(lambda: catalog.chunk_docs(catalog.VOD, newest_vod), 5), 2)
    row["read_stream_list_ms"] = round(_median_ms(lambda: catalog.recent_streams(catalog.LIVE, 20), 5), 2)
    began = time.perf_counter()
    statuses = stack.status()
    row["lab_status_ms"] = round((time.perf_counter() - began) * 1000, 1)
    for s in statuses:
        if s.pid:
            row[f"rss_mib_{s.name}"] = round(s.rss_bytes / 2**20)
    row["rss_mib_total"] = round(sum(s.rss_bytes for s in statuses) / 2**20)
    row["restarts"] = sum(s.restarts for s in statuses)
    row.update(live_chunks=load.live_chunks, vod_uploaded=load.vod_uploaded, vod_skipped=load.vod_skipped)
    return row, after


def hourly(rows: list[dict]) -> list[dict]:
    """One row per simulated hour: medians of its samples (RSS and counters: the hour's last sample)."""
    out = []
    for hour in range(0, max(r["sim_minute"] for r in rows) // 60 + 1):
        rs = [r for r in rows if hour * 60 < r["sim_minute"] <= (hour + 1) * 60] or [r for r in rows if hour == 0]
        if not rs:
            continue

        def med(key: str, rs=rs) -> str:
            values = [r[key] for r in rs if r.get(key) not in ("", None)]
            return f"{statistics.median(values):g}" if values else "-"

        last = rs[-1]
        out.append({"hour": hour + 1, "live p50 ms": med("live_p50_ms"), "live p99 ms": med("live_p99_ms"),
                    "vod doc ms": med("read_vod_doc_ms"), "vod chunks ms": med("read_vod_chunks_ms"),
                    "stream list ms": med("read_stream_list_ms"), "status ms": med("lab_status_ms"),
                    "docs": sum(last[k] for k in last if k.startswith("docs_")),
                    "RSS MiB": last["rss_mib_total"], "restarts": last["restarts"]})
    return out


def run(hours: float, speed: float, csv_path: Path | None = None,
        report: Callable[[str], None] = _print) -> list[dict]:
    from lab import stack

    minutes = max(1, round(hours * 60))
    csv_path = csv_path or settings.lab_state_dir / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.csv"
    producer_was_up = any(s.name == "producer" and s.pid for s in stack.status())
    if producer_was_up:
        stack.stop_service("producer")
    load = Load(speed)
    rows: list[dict] = []
    report(f"soak: {hours:g} simulated hours at {speed:g}x = {minutes * 60 / speed / 60:.1f} real minutes; "
           f"one sample per simulated minute ({60 / speed:.1f} s)")
    try:
        load.start()
        before, next_at = live_buckets(), time.monotonic() + 60 / speed
        for minute in range(1, minutes + 1):
            time.sleep(max(0.0, next_at - time.monotonic()))
            next_at = max(next_at + 60 / speed, time.monotonic())  # a slow sample delays, never bunches, the next
            row, before = sample(minute, before, load)
            rows.append(row)
            if minute % 10 == 0 or minute == minutes:
                report(f"  minute {minute}: live p50/p99 {row['live_p50_ms']}/{row['live_p99_ms']} ms, "
                       f"docs {sum(v for k, v in row.items() if k.startswith('docs_'))}, "
                       f"RSS {row['rss_mib_total']} MiB, restarts {row['restarts']}")
    except KeyboardInterrupt:
        report(f"interrupted after {len(rows)} of {minutes} simulated minutes: the figures cover those")
    finally:
        load.stop.set()
        if producer_was_up:
            stack.start_service("producer")
    _write_csv(rows, csv_path)
    table = hourly(rows)
    if table:
        header = list(table[0])
        report("  ".join(header))
        for r in table:
            report("  ".join(str(r[h]).rjust(len(h)) for h in header))
    report(f"CSV: {csv_path}  (VOD uploads {load.vod_uploaded}, skipped while a transcode ran {load.vod_skipped}; "
           f"live chunks {load.live_chunks})")
    return rows


def _write_csv(rows: list[dict], path: Path) -> None:
    if not rows:
        return
    fields = sorted({k for r in rows for k in r}, key=lambda k: (k != "sim_minute", k))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


# --- a learner's day: every lesson, 00 -> 09, back to back on one stack ---------------------------------------

LESSON_CELL_TIMEOUT_S = 600  # as notebooks/_build.py: a cell that waits longer has failed


def lesson_day(only: list[str] | tuple[str, ...] = (), report: Callable[[str], None] = _print) -> list[dict]:
    """Each lesson, as committed, run top to bottom in a fresh kernel (nbclient, as nbval and a learner's
    Shift+Enter), one after another on the running stack with the producer on (left as it is). After each: its
    wall time, the 1-minute load average, the first failing cell, the watcher's restarts and the stack's RSS."""
    import os

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    from lab import lessons, stack
    from lab.stack import watch

    out = settings.lab_state_dir / "lesson-day"
    rows = []
    for path in lessons.stage(out, only):
        nb = nbformat.read(path, as_version=4)
        restarts_before, load_before, began = sum(watch.read_restarts().values()), os.getloadavg()[0], time.monotonic()
        failure = ""
        try:
            NotebookClient(nb, timeout=LESSON_CELL_TIMEOUT_S, kernel_name=lessons.KERNEL["name"],
                           resources={"metadata": {"path": str(out)}}).execute()
        except CellExecutionError as exc:
            failure = next((line for line in str(exc).splitlines() if "Error" in line), str(exc)[:200])[:200]
        except Exception as exc:  # a kernel that died, a timeout: the lesson failed, the day goes on
            failure = f"{exc.__class__.__name__}: {exc}"[:200]
        nbformat.write(nb, path)
        status = stack.status()
        row = {"lesson": path.stem, "seconds": round(time.monotonic() - began),
               "load_1m": f"{load_before:.1f}->{os.getloadavg()[0]:.1f}", "result": "FAIL: " + failure if failure
               else "ok", "restarts": sum(watch.read_restarts().values()) - restarts_before,
               "rss_gib": round(sum(s.rss_bytes for s in status) / 2**30, 2),
               "unhealthy": ",".join(s.name for s in status if s.name in settings.services and not s.healthy)}
        rows.append(row)
        report("  ".join(f"{k}={v}" for k, v in row.items()))
    failed = [r["lesson"] for r in rows if r["result"] != "ok"]
    report(f"lesson day: {len(rows)} lessons in {sum(r['seconds'] for r in rows) / 60:.1f} min, "
           f"{len(failed)} failed{': ' + ', '.join(failed) if failed else ''}; run notebooks in {out}")
    return rows
