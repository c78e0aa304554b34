"""Packet timing of a media file with PyAV, which demuxes packets without decoding them: where a segment's
video starts and ends, and its frame rate."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from lab.media.ffmpeg import FfmpegError


def seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


def av_reason(exc: av.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def frame_seconds(stream: av.stream.Stream) -> float:
    """A packet's duration when the container does not store it (MPEG-TS video)."""
    rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None)
    return 1 / float(rate) if rate else 0.0


def video_packets(container: av.container.InputContainer, video: av.stream.Stream
                  ) -> Iterator[tuple[float, float, bool]]:
    """(pts s, duration s, is keyframe) for each video packet."""
    try:
        for packet in container.demux(video):
            pts = seconds(packet.pts, packet.time_base)
            if pts is None:
                continue
            duration = seconds(packet.duration, packet.time_base) or frame_seconds(video)
            yield pts, duration, packet.is_keyframe
    except av.FFmpegError as exc:
        raise FfmpegError(f"damaged media data ({av_reason(exc)})") from None


@dataclass(frozen=True)
class TsFacts:
    start: float  # first video pts (s)
    end: float  # end of the last video frame (s)
    fps: float
    width: int
    height: int


def ts_facts(path: Path) -> TsFacts:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise FfmpegError(f"{path.name} has no video stream")
        video = container.streams.video[0]
        fps = float(video.average_rate or video.guessed_rate or 0)
        times = [(pts, dur) for pts, dur, _ in video_packets(container, video)]
        if not times:
            raise FfmpegError(f"{path.name} has no video frames")
        return TsFacts(start=min(t for t, _ in times), end=max(t + d for t, d in times), fps=fps,
                       width=video.codec_context.width, height=video.codec_context.height)


def video_start_pts(ts_path: Path | str) -> float:
    """The first video packet's pts in seconds (an IDR in a closed GOP, so also the earliest)."""
    with av.open(str(ts_path)) as container:
        if not container.streams.video:
            raise FfmpegError(f"{ts_path} has no video stream")
        for pts, _, _ in video_packets(container, container.streams.video[0]):
            return pts
    raise FfmpegError(f"{ts_path} has no video frames")


def video_end_pts(path: Path) -> float:
    return ts_facts(path).end
