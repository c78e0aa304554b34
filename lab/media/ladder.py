"""The ABR ladder: the renditions a VOD stream gets, their encoder budgets and H.264 levels.

Plain data and arithmetic, no PyAV or ffmpeg: lab/config.py imports LADDER from here to check VOD_LADDER.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# H.264 levels (Annex A, table A-1): max macroblocks per frame, max macroblocks per second.
_LEVELS: tuple[tuple[str, int, int], ...] = (
    ("2.1", 792, 19_800), ("2.2", 1_620, 20_250), ("3.0", 1_620, 40_500), ("3.1", 3_600, 108_000),
    ("3.2", 5_120, 216_000), ("4.0", 8_192, 245_760), ("4.1", 8_192, 245_760), ("4.2", 8_704, 522_240),
    ("5.0", 22_080, 589_824), ("5.1", 36_864, 983_040), ("5.2", 36_864, 2_073_600),
)


@dataclass(frozen=True)
class Rung:
    """One rendition of the ladder. `level` suits up to 30 fps; `level_for(fps)` raises it when needed."""

    name: str
    height: int
    width: int
    video_kbps: int
    maxrate_kbps: int
    bufsize_kbps: int
    profile: str  # H.264 profile as libx264 names it: "high" | "main" | "baseline"
    level: str  # H.264 level, "3.1"
    audio_kbps: int

    def level_for(self, fps: float) -> str:
        """The rung's level, or the lowest level that fits its frame size at `fps` if that is higher."""
        mbs = math.ceil(self.width / 16) * math.ceil(self.height / 16)
        for name, max_fs, max_mbps in _LEVELS:
            if float(name) >= float(self.level) and mbs <= max_fs and mbs * fps <= max_mbps:
                return name
        return _LEVELS[-1][0]


# Highest first. maxrate ~1.07-1.1x the average keeps the peak BANDWIDTH honest (Apple's VOD guidance is
# peak <= 110% of average); bufsize 1.5x the average lets x264 spend bits on a hard GOP without bursting.
LADDER: dict[str, Rung] = {
    r.name: r
    for r in (
        Rung("1080p", 1080, 1920, 5000, 5350, 7500, "high", "4.0", 128),
        Rung("720p", 720, 1280, 2800, 3000, 4200, "high", "3.1", 128),
        Rung("480p", 480, 854, 1200, 1280, 1800, "main", "3.1", 96),  # 854x480@30 exceeds level 3.0
        Rung("360p", 360, 640, 700, 750, 1050, "main", "3.0", 96),
    )
}

GOP_SECONDS = 2.0  # a keyframe every 2 s inside a segment (Apple's authoring guidance), an IDR at its start
MIN_KBPS = 100


def ladder_for(height: int, names: list[str]) -> list[Rung]:
    """The rungs of `names` at or below the source height, highest first: never upscale. A source below
    the lowest rung still gets one rendition: that rung scaled down to the source height."""
    unknown = [n for n in names if n not in LADDER]
    if unknown or not names:
        raise ValueError(f"unknown rendition(s) {unknown or names}; known: {list(LADDER)}")
    chosen = [r for r in LADDER.values() if r.name in names]
    fitting = [r for r in chosen if r.height <= height]
    return fitting or [_scaled(chosen[-1], height)]


def _scaled(rung: Rung, height: int) -> Rung:
    """`rung` at a smaller height. It keeps its name: storage keys and settings name rungs by ladder name."""
    height = max(2, height - height % 2)
    width = _even(height * rung.width / rung.height)
    ratio = (width * height) / (rung.width * rung.height)

    def kbps(value: int) -> int:
        return max(MIN_KBPS, round(value * ratio))

    return replace(rung, height=height, width=width, video_kbps=kbps(rung.video_kbps),
                   maxrate_kbps=kbps(rung.maxrate_kbps), bufsize_kbps=kbps(rung.bufsize_kbps))


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))
