"""cut_segments: a source cut into keyframe-aligned raw MPEG-TS segments, the unit every later step works on."""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

from lab.media.checksum import sha256_file
from lab.media.ffmpeg import FfmpegError, base_argv, run
from lab.media.ladder import LADDER
from lab.media.packets import video_end_pts, video_start_pts
from lab.media.probing import SourceInfo

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class SegmentFile:
    index: int
    path: Path
    start_s: float  # from the first video frame of the source
    duration_s: float
    size_bytes: int
    sha256: str


def cut_segments(src: Path, out_dir: Path, segment_seconds: float, info: SourceInfo) -> list[SegmentFile]:
    """Keyframe-aligned raw MPEG-TS segments `{n}.ts` (H.264 + AAC or no audio). Stream copy when the
    source's keyframes are close enough to the segment length; otherwise one fast re-encode that places
    a keyframe every `segment_seconds`. Raises FfmpegError if ffmpeg fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    # A rotated source is re-encoded upright: MPEG-TS has no display matrix to carry the rotation.
    copy_video = (info.video_codec == "h264" and info.keyframe_interval_s <= 1.5 * segment_seconds
                  and info.rotation == 0)
    seg_list = out_dir / "segments.csv"
    argv = [*base_argv(), "-i", str(src), "-map", f"0:{info.video_stream}", "-map", "0:a:0?", "-dn", "-sn",
            *(_copy_video() if copy_video else _mezzanine_video(segment_seconds)),
            *_aac_audio(info.audio_codec, max(r.audio_kbps for r in LADDER.values())),
            *_segment_muxer(segment_seconds, info.fps, str(seg_list)),
            # MPEG-TS's default 1.4 s offset, stated: it keeps every later B-frame encode's DTS positive.
            "-muxdelay", "0.7", str(out_dir / "%d.ts")]
    log.info("cutting %s into %g s segments (%s video)", src.name, segment_seconds,
             "copied" if copy_video else "re-encoded")
    run(argv, f"cut {src.name} into segments")
    names = [row[0] for row in csv.reader(seg_list.read_text().splitlines()) if row]
    return _segment_files([out_dir / name for name in names])


def _copy_video() -> list[str]:
    return ["-c:v", "copy"]


def _mezzanine_video(segment_seconds: float) -> list[str]:
    """A near-transparent intermediate (CRF 18): the ladder is encoded from it, so quality is kept here."""
    return ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
            "-force_key_frames", f"expr:gte(t,n_forced*{segment_seconds:g})", "-sc_threshold", "0",
            "-flags", "+cgop"]


def _aac_audio(codec: str | None, kbps: int) -> list[str]:
    """AAC in every raw segment, so transcodes copy audio and it stays gapless across segments."""
    if codec is None:
        return []
    if codec == "aac":
        return ["-c:a", "copy"]
    return ["-c:a", "aac", "-b:a", f"{kbps}k", "-ac", "2"]


def _segment_muxer(segment_seconds: float, fps: float, seg_list: str) -> list[str]:
    # segment_time_delta of half a frame: without it a keyframe exactly on the boundary can be missed,
    # because the muxer compares a 90 kHz pts with a microsecond-rounded boundary (seen: a 4 s first segment
    # from a 2 s GOP source cut at 2 s).
    delta = 0.5 / fps if fps > 0 else 0.01
    return ["-f", "segment", "-segment_time", f"{segment_seconds:g}", "-segment_time_delta", f"{delta:.4f}",
            "-segment_format", "mpegts", "-reset_timestamps", "0", "-segment_start_number", "0",
            "-segment_list", seg_list, "-segment_list_type", "csv"]


def _segment_files(paths: list[Path]) -> list[SegmentFile]:
    """Start and duration from each segment's own first video pts: the segment list's first start is 0
    whatever the real first pts, and its times leave out MPEG-TS's offset."""
    if not paths:
        raise FfmpegError("ffmpeg wrote no segments")
    starts = [video_start_pts(p) for p in paths]
    ends = starts[1:] + [video_end_pts(paths[-1])]
    return [SegmentFile(index=i, path=p, start_s=round(s - starts[0], 6), duration_s=round(e - s, 6),
                        size_bytes=p.stat().st_size, sha256=sha256_file(p))
            for i, (p, s, e) in enumerate(zip(paths, starts, ends, strict=True))]
