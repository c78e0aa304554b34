"""`lab bench vod --seconds S`: the VOD pipeline against one plain ffmpeg, on the same clip and machine.

1. makes a fixed clip once (S seconds, 1280x720, 30 fps: the ladder is 720p/480p/360p);
2. uploads it through the API and waits for `ready`;
3. reads the catalog's own timestamps: upload -> ready, and the pipeline's transcode wall time
   (`transcoding` -> `ready`: from the start of the stream's first segment task on an executor: ffmpeg,
   S3 both ways, catalog, playlists);
4. runs `lab.media.reference` on the same clip with the same rungs, segment length and encoder
   settings (one ffmpeg decoding once and writing the whole ladder as HLS) before and after the pipeline;
5. runs the reference once per rung alone, for the cost of each rung.
It prints figures and never asserts: speed depends on the machine (and on what else it is running, so the
load average is printed too).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from lab import catalog
from lab.config import settings
from lab.media.ffmpeg import children_cpu_seconds
from lab.media.ladder import ladder_for
from lab.media.probing import probe
from lab.media.reference import transcode_ladder_reference
from lab.media.sources import make_test_clip
from lab.producer.upload import UploadError, api_client, upload_file

WIDTH, HEIGHT, FPS = 1280, 720, 30
POLL_S = 0.2


def _out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


def wait_finished(stream_id: str, timeout_s: float) -> dict[str, Any]:
    """The stream document once ready or failed, read straight from the catalog (its timestamps are what
    is measured, so the poll interval does not enter the figures)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        doc = catalog.stream_doc(catalog.VOD, stream_id)
        if doc and doc["status"] in ("ready", "failed"):
            return doc
        time.sleep(POLL_S)
    raise SystemExit(f"lab bench vod: {stream_id} not ready after {timeout_s:.0f} s "
                     f"(status {doc['status'] if doc else 'missing'}); see `lab logs spark-vod`")


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def pipeline_figures(doc: dict[str, Any], chunks: list[dict[str, Any]]) -> dict[str, float]:
    timings = [c.get("task_timings") or {} for c in chunks]
    return {
        "upload_to_ready": _seconds(doc["uploaded_at"], doc["ready_at"]),
        "waiting": _seconds(doc["uploaded_at"], doc["transcoding_at"]),
        "transcode_wall": _seconds(doc["transcoding_at"], doc["ready_at"]),
        "ffmpeg_sum": sum(t.get("encode_seconds") or 0.0 for t in timings),
        "ffmpeg_cpu": sum(t.get("encode_cpu_seconds") or 0.0 for t in timings),
        "task_sum": sum(t.get("task_seconds") or 0.0 for t in timings),
        "s3_sum": sum((t.get("download_seconds") or 0.0) + (t.get("upload_seconds") or 0.0) for t in timings),
    }


def run(seconds: float = 30.0) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="lab-bench-vod-"))
    try:
        _run(seconds, workdir)
    except UploadError as exc:
        raise SystemExit(f"lab bench vod: {exc}") from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _run(seconds: float, workdir: Path) -> None:
    clip = make_test_clip(workdir / f"bench-{seconds:g}s-{HEIGHT}p.mp4", seconds, WIDTH, HEIGHT, FPS)
    info = probe(clip)
    rungs = ladder_for(info.height, settings.ladder)
    names = [r.name for r in rungs]
    _out(f"clip: {seconds:g} s {WIDTH}x{HEIGHT} {FPS} fps, {clip.stat().st_size / 1e6:.1f} MB; "
         f"ladder {', '.join(names)}; {settings.vod_segment_seconds:g} s segments")
    _out(f"before: {_load()}")

    # The baseline runs before AND after the pipeline and the ratio uses their mean: on a shared machine the
    # load drifts, and this way both sides see it alike.
    cpu = children_cpu_seconds()
    before = transcode_ladder_reference(clip, workdir / "reference-1", rungs, settings.vod_segment_seconds)
    reference_cpu = children_cpu_seconds() - cpu
    with api_client() as client:
        sent = time.monotonic()
        answer = upload_file(client, clip, f"bench {seconds:g}s {HEIGHT}p")
        answered = time.monotonic() - sent
    stream_id = answer["stream_id"]
    doc = wait_finished(stream_id, timeout_s=max(300.0, seconds * 30))
    if doc["status"] == "failed":
        raise SystemExit(f"lab bench vod: {stream_id} failed: {doc.get('failure_reason')}")
    chunks = catalog.chunk_docs(catalog.VOD, stream_id)
    p = pipeline_figures(doc, chunks)

    after = transcode_ladder_reference(clip, workdir / "reference-2", rungs, settings.vod_segment_seconds)
    reference = (before + after) / 2
    per_rung = {r.name: transcode_ladder_reference(clip, workdir / f"reference-{r.name}", [r],
                                                         settings.vod_segment_seconds) for r in rungs}
    _out(f"after:  {_load()}")
    _out()
    _out(f"pipeline ({stream_id}, {len(chunks)} segments)")
    _out(f"  POST /vod/upload answered          {answered:8.2f} s  (store, probe, cut, publish)")
    _out(f"  upload -> ready                    {p['upload_to_ready']:8.2f} s")
    _out(f"    upload -> transcoding            {p['waiting']:8.2f} s  (Kafka, trigger, catalog, task launch)")
    _out(f"    transcoding -> ready             {p['transcode_wall']:8.2f} s  = pipeline transcode wall time")
    _out(f"  inside the segment tasks (summed)  {p['task_sum']:8.2f} s  ffmpeg {p['ffmpeg_sum']:.2f} s, "
         f"S3 {p['s3_sum']:.2f} s")
    _out(f"  ffmpeg CPU time (user+sys)         {p['ffmpeg_cpu']:8.2f} s")
    _out()
    _out("plain ffmpeg, same clip, rungs, segment length and x264 settings, one process")
    _out(f"  whole ladder                       {reference:8.2f} s  (mean of {before:.2f} s before the "
         f"pipeline ran and {after:.2f} s after)")
    _out(f"  ffmpeg CPU time (user+sys)         {reference_cpu:8.2f} s  (the run before the pipeline)")
    for name, secs in per_rung.items():
        _out(f"  {name:<6} alone                      {secs:8.2f} s")
    _out()
    _out(f"ratio pipeline transcode wall / plain ffmpeg = {p['transcode_wall'] / reference:.2f}  (goal <= 1.15)")
    if p["ffmpeg_cpu"] and reference_cpu:
        _out(f"ratio of ffmpeg CPU time, pipeline / plain   = {p['ffmpeg_cpu'] / reference_cpu:.2f}  (the work "
             f"itself: what segmenting costs, whatever the machine's load)")
