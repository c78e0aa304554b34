"""The sample clips in `data/` the VOD uploader sends: made locally with ffmpeg's test sources at set-up,
never downloaded (no network, no licence question, the same pictures on every laptop)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.config import ROOT
from lab.media.ffmpeg import MediaError
from lab.media.probing import probe
from lab.media.sources import make_test_clip

log = logging.getLogger(__name__)

DATA_DIR = ROOT / "data"
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".ts", ".webm", ".m4v")


@dataclass(frozen=True)
class Clip:
    name: str
    seconds: float
    width: int
    height: int
    fps: int = 30

    @property
    def path(self) -> Path:
        return DATA_DIR / self.name


# Three sizes, so the ladder is cut differently for each: 360p only; 480p+360p; 720p+480p+360p.
# Short, so that on a 2-core laptop each reaches `ready` within seconds of the previous upload.
SAMPLE_CLIPS: tuple[Clip, ...] = (
    Clip("sample-360p-8s.mp4", 8, 640, 360),
    Clip("sample-480p-10s.mp4", 10, 854, 480),
    Clip("sample-720p-12s.mp4", 12, 1280, 720),
)


def _usable(clip: Clip) -> bool:
    """A clip is kept only if it probes as the intended video (an interrupted set-up leaves a broken file)."""
    if not clip.path.is_file():
        return False
    try:
        info = probe(clip.path)
    except MediaError:
        return False
    return (info.width, info.height) == (clip.width, clip.height) and abs(info.duration_s - clip.seconds) < 0.5


def ensure_sample_clips(report: Callable[[str], None] = log.info) -> list[Path]:
    """Make any missing sample clip (idempotent: a clip already there and sound is left alone)."""
    for clip in SAMPLE_CLIPS:
        if _usable(clip):
            continue
        report(f"making sample clip data/{clip.name} ({clip.seconds:g} s, {clip.width}x{clip.height})")
        partial = clip.path.with_suffix(".partial.mp4")
        make_test_clip(partial, clip.seconds, clip.width, clip.height, clip.fps)
        partial.replace(clip.path)  # appears whole or not at all
    return [c.path for c in SAMPLE_CLIPS]


def sample_clips() -> list[Path]:
    """The clips in data/ the uploader may send: the samples, and any other video a learner put there."""
    return sorted(p for p in DATA_DIR.glob("*") if p.suffix.lower() in VIDEO_SUFFIXES
                  and ".partial." not in p.name)

