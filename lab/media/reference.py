"""The plain-ffmpeg baseline `lab bench vod` compares the pipeline with."""

from __future__ import annotations

import time
from pathlib import Path

from lab.media.ffmpeg import base_argv, run
from lab.media.ladder import Rung
from lab.media.probing import probe
from lab.media.transcode import ladder_graph, x264


def transcode_ladder_reference(src: Path, out_dir: Path, rungs: list[Rung], segment_seconds: float) -> float:
    """The plain-ffmpeg baseline `lab bench` compares with: one process decodes the whole source once and
    writes every rung as HLS with the same encoder settings. Returns wall seconds."""
    fps = probe(src).fps
    argv = [*base_argv(), "-i", str(src), "-filter_complex", ladder_graph(rungs)]
    for i, rung in enumerate(rungs):
        target = out_dir / rung.name
        target.mkdir(parents=True, exist_ok=True)
        argv += ["-map", f"[v{i}]", "-map", "0:a:0?", *x264(rung, fps), "-c:a", "aac", "-b:a",
                 f"{rung.audio_kbps}k", "-f", "hls", "-hls_time", f"{segment_seconds:g}",
                 "-hls_playlist_type", "vod", "-hls_segment_filename", str(target / "%d.ts"),
                 str(target / "index.m3u8")]
    began = time.monotonic()
    run(argv, f"transcode {src.name} to the whole ladder")
    return time.monotonic() - began
