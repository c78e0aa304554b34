"""ffmpeg and media facts, one concern per module, read in the order a chunk meets them:

  ladder.py      the ABR ladder (Rung, LADDER, ladder_for): plain data, no PyAV, so settings can check names
  ffmpeg.py      the ffmpeg executable, its errors, running it, decode_check (what a player would report)
  packets.py     packet timing of a file with PyAV (first/last video pts, frame rate)
  probing.py     probe: facts about an uploaded source, or why it is not usable media
  segmenter.py   cut_segments: keyframe-aligned raw MPEG-TS segments
  transcode.py   transcode_segment: one raw segment to every rung in one ffmpeg
  h264.py        first_frame_is_idr: NAL parsing of a segment's first access unit
  checksum.py    SHA-256 of files and bytes
  sources.py     synthetic sources: test clips, the font for their clock, the live encoder's argv
  reference.py   the plain-ffmpeg ladder `lab bench vod` compares with

Pure functions taking parameters: nothing here reads settings (lab/config.py imports lab.media.ladder).

The timeline, followed from source to player:
  - `cut_segments` cuts with the segment muxer and `-reset_timestamps 0`, so every raw segment keeps the
    source's timestamps plus MPEG-TS's usual 1.4 s offset (muxdelay 0.7 s, doubled by the muxer). The offset
    keeps the decode timestamps of any later B-frame encode positive.
  - `transcode_segment` reads a raw segment with `-copyts` and writes with `-muxdelay 0 -muxpreload 0`, so
    each rendition segment carries exactly the raw segment's timestamps. Segments transcoded independently,
    on different executors, therefore line up into one continuous HLS timeline per rendition.

The lab's own modules import the module they need (`from lab.media import probing`). For notebooks and
tests, the names below are also reachable as `media.NAME` after `from lab import media`; each is imported on
first use (PEP 562), so importing this package loads neither PyAV nor imageio-ffmpeg.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> the module that defines it. No module here is named like a public name: importing a
# submodule sets it as an attribute of this package and would hide the function of the same name.
_PUBLIC = {
    "Rung": "ladder", "LADDER": "ladder", "GOP_SECONDS": "ladder", "ladder_for": "ladder",
    "MediaError": "ffmpeg", "FfmpegError": "ffmpeg", "ffmpeg_exe": "ffmpeg", "decode_check": "ffmpeg",
    "video_start_pts": "packets",
    "SourceInfo": "probing", "probe": "probing",
    "SegmentFile": "segmenter", "cut_segments": "segmenter",
    "RenditionFile": "transcode", "transcode_segment": "transcode",
    "first_frame_is_idr": "h264",
    "sha256_file": "checksum", "sha256_bytes": "checksum",
    "make_test_clip": "sources", "live_encoder_command": "sources",
    "transcode_ladder_reference": "reference",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'lab.media' has no attribute {name!r}")
    return getattr(importlib.import_module(f"lab.media.{module}"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
