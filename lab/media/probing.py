"""probe: facts about an uploaded source, or MediaError saying why it is not usable media.

Done with PyAV (the imageio-ffmpeg wheel ships no ffprobe), demuxing packets without decoding them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import av

from lab.media.ffmpeg import MediaError
from lab.media.packets import av_reason, frame_seconds, seconds


@dataclass(frozen=True)
class SourceInfo:
    duration_s: float
    width: int
    height: int
    fps: float
    video_codec: str
    audio_codec: str | None
    bit_rate: int  # bits/s over the whole file
    keyframe_interval_s: float  # longest keyframe gap seen in the first PROBE_WINDOW_S
    size_bytes: int
    format_name: str
    video_stream: int  # absolute stream index (cover art in audio files is skipped)
    rotation: int = 0  # degrees a player turns the picture (phone video); width/height are as displayed


PROBE_WINDOW_S = 30.0
TAIL_WINDOW_S = 10.0
TRUNCATION_TOLERANCE_S = 0.5
# Demuxers that turn text into "media": `tty` draws any .txt file as ANSI-art video (a text upload would be
# accepted and transcoded), and playlists make ffmpeg open the files or URLs named inside the upload.
NOT_MEDIA_FORMATS = {"tty": "it is text", "hls": "it is a playlist", "concat": "it is a playlist",
                     "dash": "it is a playlist"}
# Probing reads only the uploaded file itself: no network, whatever the file names inside it.
_PROBE_OPTIONS = {"protocol_whitelist": "file"}


def probe(path: Path | str) -> SourceInfo:
    """Facts about a source, or MediaError saying why it is not usable. Demuxes packets only (no decode):
    the first PROBE_WINDOW_S for the keyframe interval, and the last TAIL_WINDOW_S to catch truncation."""
    path = Path(path)
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        raise MediaError("the file is empty")
    try:
        with av.open(str(path), metadata_errors="ignore", options=_PROBE_OPTIONS) as container:
            info = _probe_open(container, size)
    except av.FFmpegError as exc:
        raise MediaError(f"not a readable media file ({av_reason(exc)})") from None
    rotation = _rotation(path, info.video_stream)
    if rotation % 180:
        info = replace(info, width=info.height, height=info.width)
    return replace(info, rotation=rotation)


def _rotation(path: Path, stream_index: int) -> int:
    """The display rotation of the first frame. PyAV 18 exposes the display matrix only on decoded frames,
    so this is the one frame probe decodes; 0 when it cannot be decoded (cutting will then say why)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            frame = next(container.decode(container.streams[stream_index]), None)
            return round(frame.rotation) % 360 if frame is not None else 0
    except (av.FFmpegError, StopIteration):
        return 0


def _probe_open(container: av.container.InputContainer, size: int) -> SourceInfo:
    if container.format.name in NOT_MEDIA_FORMATS:
        raise MediaError(f"not a readable media file ({NOT_MEDIA_FORMATS[container.format.name]}: "
                         f"ffmpeg's {container.format.name} demuxer)")
    video = next((s for s in container.streams.video if not _is_cover_art(s)), None)
    if video is None:
        raise MediaError("no video stream")
    if not video.codec_context.width or not video.codec_context.height:
        raise MediaError("the video stream has no picture size")
    audio = container.streams.audio[0] if container.streams.audio else None
    declared = container.duration / av.time_base if container.duration else None
    # Without a declared duration the only way to learn it is to read every packet.
    head = _scan_head(container, video, PROBE_WINDOW_S if declared else math.inf)
    if head.first_video is None:
        raise MediaError("the video stream has no frames")
    if head.video_packets == 1:
        raise MediaError("a single picture, not a video")
    end = head.end
    if declared and declared > PROBE_WINDOW_S:
        end = _scan_tail(container, head.start, declared)
        if end is None:
            raise MediaError(f"truncated: the file declares {declared:.1f} s of media but its data ends "
                             f"before {declared - TAIL_WINDOW_S:.1f} s")
    reached = end - head.start
    # Edit lists and audio priming move the two apart by a few frames, never by half a second.
    if declared and reached < declared - TRUNCATION_TOLERANCE_S:
        raise MediaError(f"truncated: the file declares {declared:.1f} s of media but its data ends after "
                         f"{max(0.0, reached):.1f} s")
    duration = declared or reached
    if duration <= 0 or reached <= 0:
        raise MediaError("zero duration")
    fps = float(video.average_rate or video.guessed_rate or video.base_rate or 0)
    return SourceInfo(
        duration_s=round(duration, 3), width=video.codec_context.width, height=video.codec_context.height,
        fps=round(fps, 3), video_codec=video.codec_context.name,
        audio_codec=audio.codec_context.name if audio else None,
        bit_rate=container.bit_rate or round(size * 8 / duration),
        keyframe_interval_s=round(head.keyframe_gap, 3),
        size_bytes=size, format_name=container.format.name, video_stream=video.index)


def _is_cover_art(stream: av.stream.Stream) -> bool:
    return bool(stream.disposition & av.stream.Disposition.attached_pic)


@dataclass(frozen=True)
class _Head:
    start: float  # earliest pts of any stream
    end: float  # latest packet end of any stream
    first_video: float | None
    keyframe_gap: float  # longest gap between video keyframes
    video_packets: int


def _scan_head(container: av.container.InputContainer, video: av.stream.Stream, window: float) -> _Head:
    """The packets of the first `window` seconds: where the media starts and how far apart keyframes are."""
    start, end, first_video, video_end = math.inf, -math.inf, None, -math.inf
    keyframes: list[float] = []
    count = 0
    for packet in _packets(container):
        start, end = min(start, packet.pts), max(end, packet.end)
        if packet.stream == video.index:
            count += 1
            first_video = packet.pts if first_video is None else min(first_video, packet.pts)
            video_end = max(video_end, packet.end)
            if packet.key:
                keyframes.append(packet.pts)
        if packet.pts - start > window:
            break
    if first_video is None:
        return _Head(0.0, 0.0, None, 0.0, 0)
    # The stretch after the last keyframe counts too: it is a lower bound of the next gap.
    marks = sorted(keyframes or [first_video]) + [video_end]
    return _Head(start, end, first_video, max(b - a for a, b in zip(marks, marks[1:], strict=False)), count)


def _scan_tail(container: av.container.InputContainer, start: float, declared: float) -> float | None:
    """End of the last packet after seeking near the declared end. A truncated MP4 whose index (moov) is
    intact opens fine and simply runs out of packets early (PyAV raises nothing), so reaching the end is
    the test. None when the seek lands past the data."""
    try:
        container.seek(int((start + declared - TAIL_WINDOW_S) * av.time_base), backward=True)
    except av.FFmpegError:
        return None
    return max((p.end for p in _packets(container)), default=None)


@dataclass(frozen=True)
class _Packet:
    stream: int
    pts: float
    end: float
    key: bool


def _packets(container: av.container.InputContainer) -> Iterator[_Packet]:
    """Timed packets of every stream, in file order; a demux error means damaged data."""
    try:
        for packet in container.demux():
            pts = seconds(packet.pts, packet.time_base)
            if pts is None:
                continue
            duration = seconds(packet.duration, packet.time_base) or frame_seconds(packet.stream)
            yield _Packet(packet.stream.index, pts, pts + duration, packet.is_keyframe)
    except av.FFmpegError as exc:
        raise MediaError(f"damaged media data ({av_reason(exc)})") from None
