"""transcode_segment: one raw segment to every rung of the ladder, in ONE ffmpeg process (decode once,
scale per rung), each rendition checked to start on the raw segment's first pts with an IDR."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from lab.media.checksum import sha256_file
from lab.media.ffmpeg import FfmpegError, base_argv, run, threads_option
from lab.media.h264 import first_frame_is_idr
from lab.media.ladder import GOP_SECONDS, Rung
from lab.media.packets import TsFacts, ts_facts


@dataclass(frozen=True)
class RenditionFile:
    rung: str
    path: Path
    size_bytes: int
    duration_s: float
    sha256: str
    encode_seconds: float  # wall time of the one ffmpeg process that made every rung of this segment
    width: int
    height: int
    profile: str
    level: str  # the level actually signalled (the rung's, raised for high frame rates)
    start_pts_s: float  # first video pts, on the continuous timeline


def transcode_segment(raw_path: Path, out_dir: Path, rungs: list[Rung], segment_index: int, start_s: float,
                      threads: int = 0) -> list[RenditionFile]:
    """One ffmpeg decodes the raw segment once and encodes every rung into `{out_dir}/{rung}/{n}.ts`.
    Timestamps are the raw segment's (continuous HLS timeline); audio is copied (gapless). `start_s` only
    labels errors: the timing comes from the raw segment itself. Raises FfmpegError if ffmpeg fails or the
    renditions do not start and end together."""
    names = [r.name for r in rungs]
    if not rungs or len(set(names)) != len(names):
        raise ValueError(f"rungs: need at least one rendition and distinct names, got {names}")
    facts = ts_facts(raw_path)
    outputs = [out_dir / r.name / f"{segment_index}.ts" for r in rungs]
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    argv = [*base_argv(), *threads_option(threads), "-copyts", "-i", str(raw_path),
            "-filter_complex", ladder_graph(rungs)]
    for i, (rung, out) in enumerate(zip(rungs, outputs, strict=True)):
        argv += ["-map", f"[v{i}]", "-map", "0:a:0?", *x264(rung, facts.fps, threads), "-c:a", "copy",
                 "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", str(out)]
    began = time.monotonic()
    run(argv, f"transcode segment {segment_index} (starts at {start_s:.3f} s)")
    wall = time.monotonic() - began
    files = [_rendition(rung, out, wall, facts.fps) for rung, out in zip(rungs, outputs, strict=True)]
    _check_aligned(files, facts, segment_index)
    return files


def ladder_graph(rungs: list[Rung]) -> str:
    """Decode once, split, then scale each copy; letterbox to the rung's exact size (a non-16:9 source keeps
    its shape), so RESOLUTION in the master playlist is always true."""
    labels = "".join(f"[s{i}]" for i in range(len(rungs)))
    chains = [f"[0:v:0]split={len(rungs)}{labels}"]
    for i, r in enumerate(rungs):
        chains.append(f"[s{i}]scale=w={r.width}:h={r.height}:force_original_aspect_ratio=decrease"
                      f":force_divisible_by=2,pad={r.width}:{r.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
                      f"format=yuv420p[v{i}]")
    return ";".join(chains)


def x264(rung: Rung, fps: float, threads: int = 0) -> list[str]:
    """The rung's encoder settings: closed GOPs of GOP_SECONDS counted from the segment's first frame (an
    IDR), no scene-cut keyframes, so every rung has its keyframes at the same instants."""
    gop = max(1, round(GOP_SECONDS * fps)) if fps > 0 else 60
    return ["-c:v", "libx264", "-preset", "veryfast",
            "-profile:v", rung.profile, "-level:v", rung.level_for(fps),
            "-b:v", f"{rung.video_kbps}k", "-maxrate", f"{rung.maxrate_kbps}k",
            "-bufsize", f"{rung.bufsize_kbps}k",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-flags", "+cgop", "-forced-idr", "1", "-force_key_frames", "expr:eq(n,0)",
            # passthrough: with -copyts a constant-frame-rate mode would invent frames from t=0 to the start.
            "-fps_mode", "passthrough", *threads_option(threads)]


def _rendition(rung: Rung, path: Path, wall: float, fps: float) -> RenditionFile:
    facts = ts_facts(path)
    return RenditionFile(rung=rung.name, path=path, size_bytes=path.stat().st_size,
                         duration_s=round(facts.end - facts.start, 6), sha256=sha256_file(path),
                         encode_seconds=round(wall, 3), width=facts.width, height=facts.height,
                         profile=rung.profile, level=rung.level_for(fps), start_pts_s=facts.start)


def _check_aligned(files: list[RenditionFile], raw: TsFacts, segment_index: int) -> None:
    """Every rung must start on the raw segment's first pts, with an IDR, and last as long: a player
    switching rungs at a segment boundary then neither skips nor repeats a frame."""
    tolerance = 0.5 / raw.fps if raw.fps > 0 else 0.02
    length = raw.end - raw.start
    for f in files:
        if abs(f.start_pts_s - raw.start) > tolerance or abs(f.duration_s - length) > tolerance:
            raise FfmpegError(f"segment {segment_index}: rung {f.rung} spans {f.start_pts_s:.3f}"
                              f"+{f.duration_s:.3f} s, the raw segment {raw.start:.3f}+{length:.3f} s")
        if not first_frame_is_idr(f.path):
            raise FfmpegError(f"segment {segment_index}: rung {f.rung} does not start with an IDR frame")
