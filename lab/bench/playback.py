"""`lab bench playback`: what one poll of a signed live playlist costs the API, and how many viewers polling
once a second one API process holds.

1. starts a live stream through the API and stores a full DVR window (DVR_WINDOW_SIZE segments) as its
   playlist, built by `hls.live_playlist` as the live query builds it (the segments' bytes are not needed:
   the API signs their URIs, players fetch them from S3);
2. each simulated viewer asks `GET /streams/{id}/live` for its own playback URL, as a player does, then
   polls it as fast as it can over loopback (httpx, keep-alive), CLIENTS viewers for SECONDS;
3. prints polls/s, latency percentiles, and the API process's CPU time per poll (psutil on its pid): one
   Python process uses at most one core, so 1 / (CPU s per poll) is the viewers polling once a second that
   one API process holds. The load generator shares the machine, so measured polls/s is a lower bound.
It also checks what the bench relies on: two polls with one token give identical segment URIs.
Figures only: nothing passes or fails on a time.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from statistics import quantiles

import httpx
import psutil

from lab import hls, storage
from lab.config import settings


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _api_process() -> psutil.Process | None:
    """The process listening on the API's port (None where the OS does not say, e.g. macOS without root)."""
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        return None
    pid = next((c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr.port == settings.api_port
                and c.pid), None)
    return psutil.Process(pid) if pid else None


def _prepare_stream(api: httpx.Client) -> str:
    resp = api.post("/streams/start", json={"title": "bench playback"})
    resp.raise_for_status()
    stream_id = resp.json()["stream_id"]
    window = settings.dvr_window_size
    first = 1000
    entries = [(f"../../{settings.bucket_live}/{storage.live_chunk_key(stream_id, i)}", settings.live_segment_seconds)
               for i in range(first, first + window)]
    text = hls.live_playlist(entries, media_sequence=first, target_duration=settings.live_segment_seconds,
                             ended=False)
    storage.put_playlist(settings.bucket_manifests, storage.live_playlist_key(stream_id), text,
                         cache_control=storage.LIVE_PLAYLIST)
    return stream_id


def segment_uris(playlist: str) -> list[str]:
    return [line for line in playlist.splitlines() if line and not line.startswith("#")]


async def hammer(urls: list[str], seconds: float) -> tuple[list[float], int]:
    """One client per URL, each polling its URL back to back for `seconds`: (latencies of 200s, failures)."""
    latencies: list[float] = []
    failures = 0
    deadline = time.monotonic() + seconds

    async def viewer(url: str) -> None:
        nonlocal failures
        async with httpx.AsyncClient(timeout=10.0) as client:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    resp = await client.get(url)
                    ok = resp.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - started)
                else:
                    failures += 1

    await asyncio.gather(*(viewer(u) for u in urls))
    return latencies, failures


def report(label: str, latencies: list[float], failures: int, seconds: float, cpu_s: float | None,
           viewers: bool) -> None:
    if len(latencies) < 2:
        _out(f"{label}: {len(latencies)} answers, {failures} failures: too few to report")
        return
    cuts = quantiles(latencies, n=100)
    _out(f"{label}: {len(latencies) / seconds:.0f} answers/s, p50 {cuts[49] * 1000:.1f} ms, "
         f"p95 {cuts[94] * 1000:.1f} ms, p99 {cuts[98] * 1000:.1f} ms, {failures} failed")
    if cpu_s is not None:
        per = cpu_s / len(latencies)
        _out(f"  API CPU: {per * 1000:.2f} ms per answer (the whole process's CPU over the run, its background "
             f"health probes included: an overestimate at low rates)"
             + (f" -> one API process (one core) holds about {1 / per:.0f} viewers polling once a second"
                if viewers else ""))


def run(clients: int = 32, seconds: float = 10.0) -> None:
    one, five, _ = os.getloadavg()
    _out(f"lab bench playback: {clients} viewers x {seconds:g} s against {settings.api_base}, "
         f"DVR window {settings.dvr_window_size} segments; load average {one:.2f} / {five:.2f} "
         f"on {os.cpu_count()} cores")
    with httpx.Client(base_url=settings.api_base, headers={"X-API-Key": settings.lab_api_key},
                      timeout=30.0) as api:
        stream_id = _prepare_stream(api)
        urls = [api.get(f"/streams/{stream_id}/live").json()["manifest_url"] for _ in range(clients)]
        first = httpx.get(urls[0]).text
        time.sleep(1.1)  # a signing time read from the clock would differ by now
        second = httpx.get(urls[0]).text
    same = segment_uris(first) == segment_uris(second)
    _out(f"stream {stream_id}: two polls with one token give {'identical' if same else 'DIFFERENT'} "
         f"segment URIs ({len(segment_uris(first))} segments)")
    proc = _api_process()
    for label, target in (("signed live playlist", urls), ("GET /health", [f"{settings.api_base}/health"] * clients)):
        cpu_before = sum(proc.cpu_times()[:2]) if proc else None
        latencies, failures = asyncio.run(hammer(target, seconds))
        cpu_s = sum(proc.cpu_times()[:2]) - cpu_before if proc and cpu_before is not None else None
        report(label, latencies, failures, seconds, cpu_s, viewers=target is urls)
    if proc is None:
        _out("  (API CPU not measured: the OS did not say which process listens on the API's port)")
