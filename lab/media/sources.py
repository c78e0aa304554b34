"""Synthetic sources: test clips (the samples, benches, tests), the font for their clock, the live encoder's
ffmpeg argv."""

from __future__ import annotations

import logging
import subprocess
from functools import cache
from pathlib import Path

from lab.media.ffmpeg import base_argv, ffmpeg_exe, run
from lab.media.ladder import GOP_SECONDS, LADDER, MIN_KBPS

log = logging.getLogger(__name__)

def make_test_clip(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """An H.264/AAC MP4: the testsrc2 pattern with its running time drawn on it, a 440 Hz tone, 2 s GOPs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gop = round(GOP_SECONDS * fps)
    video = f"testsrc2=size={width}x{height}:rate={fps}"
    overlay = _drawtext("%{pts\\:hms}", height)
    tone = "sine=frequency=440:sample_rate=48000"
    argv = [*base_argv(), "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", tone,
            "-t", f"{seconds:g}", "-map", "0:v", "-map", "1:a", *(["-vf", overlay] if overlay else []),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-c:a", "aac", "-b:a", "96k",
            "-movflags", "+faststart",  # index first, like a web upload (and what a truncation test needs)
            str(path)]
    run(argv, f"make the test clip {path.name}")
    return path


def _drawtext(text: str, height: int) -> str | None:
    """A drawtext filter with a boxed caption, or None when no font can be found (no overlay then)."""
    font = _font_option()
    if font is None:
        return None
    size = max(12, height // 12)
    return (f"drawtext={font}text='{text}':fontsize={size}:fontcolor=white:box=1:boxcolor=black@0.6"
            f":boxborderw={size // 4}:x=(w-tw)/2:y=h-th-{size}")


@cache
def _font_option() -> str | None:
    """`fontfile='…':` for the DejaVu Sans that ships in matplotlib's wheel, so the picture is the same on
    every machine; else `""` if drawtext finds a default font through fontconfig (this ffmpeg build asks
    fontconfig for "Sans", which fails on a machine without system fonts); else None."""
    try:
        import matplotlib  # a project dependency, imported only for its font file

        ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
        if ttf.is_file() and "'" not in str(ttf):
            return f"fontfile='{ttf}':"
    except ImportError:
        pass
    probe_argv = [*base_argv(), "-f", "lavfi", "-i", "color=size=64x64:duration=0.04",
                  "-vf", "drawtext=text=x", "-f", "null", "-"]
    ok = subprocess.run(probe_argv, capture_output=True, check=False, timeout=30).returncode == 0
    if not ok:
        log.warning("no font for ffmpeg's drawtext: test pictures carry no clock")
    return "" if ok else None


def live_encoder_command(out_dir: Path, segment_seconds: float, width: int, height: int, fps: int,
                         start_number: int = 0) -> list[str]:
    """ffmpeg argv for a real-time live source: testsrc2 with the wall clock drawn on it and a tone, H.264
    (one closed GOP per segment) / AAC, cut by the segment muxer into `{out_dir}/%d.ts`. Each finished
    segment is announced on stdout as a CSV row `name,start,end` the moment the muxer closes it
    (`-segment_list pipe:1`), so the caller reads stdout line by line instead of polling the folder."""
    gop = max(1, round(segment_seconds * fps))
    kbps = _live_kbps(width, height, fps)
    overlay = _drawtext("%{localtime}", height)
    return [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "warning", "-y",
        # -re on both inputs: each lavfi source is read at its native rate, as a camera would deliver it
        "-re", "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={fps}",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:beep_factor=4:sample_rate=48000",
        "-map", "0:v", "-map", "1:a", *(["-vf", overlay] if overlay else []),
        "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
        "-b:v", f"{kbps}k", "-maxrate", f"{round(kbps * 1.1)}k", "-bufsize", f"{round(kbps * 1.5)}k",
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop",
        "-force_key_frames", f"expr:gte(t,n_forced*{segment_seconds:g})",
        "-c:a", "aac", "-b:a", "96k",
        "-f", "segment", "-segment_time", f"{segment_seconds:g}", "-segment_time_delta", f"{0.5 / fps:.4f}",
        "-segment_format", "mpegts", "-reset_timestamps", "0", "-segment_start_number", str(start_number),
        "-segment_list", "pipe:1", "-segment_list_type", "csv", "-segment_list_flags", "+live",
        str(out_dir / "%d.ts"),
    ]


def _live_kbps(width: int, height: int, fps: int) -> int:
    """The closest ladder rung's bitrate, scaled by picture area and frame rate."""
    rung = min(LADDER.values(), key=lambda r: abs(r.height - height))
    area = (width * height) / (rung.width * rung.height)
    return max(MIN_KBPS, round(rung.video_kbps * area * min(2, fps / 30)))
