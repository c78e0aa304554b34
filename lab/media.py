"""Media facts and ffmpeg: probe a source, cut it into keyframe-aligned segments, transcode one segment to
every rung of the ABR ladder, checksums, test clips and the live encoder's command line.

Pure functions taking parameters: nothing here reads settings (lab/config.py imports LADDER from here).
ffmpeg comes from the imageio-ffmpeg wheel, which ships no ffprobe, so probing is done with PyAV, which
demuxes packets without decoding them.

The timeline, followed from source to player:
  - `cut_segments` cuts with the segment muxer and `-reset_timestamps 0`, so every raw segment keeps the
    source's timestamps plus MPEG-TS's usual 1.4 s offset (muxdelay 0.7 s, doubled by the muxer). The offset
    keeps the decode timestamps of any later B-frame encode positive.
  - `transcode_segment` reads a raw segment with `-copyts` and writes with `-muxdelay 0 -muxpreload 0`, so
    each rendition segment carries exactly the raw segment's timestamps. Segments transcoded independently,
    on different executors, therefore line up into one continuous HLS timeline per rendition.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import math
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from functools import cache
from pathlib import Path

import av
import imageio_ffmpeg

log = logging.getLogger(__name__)

# --- the ABR ladder ------------------------------------------------------------------------------------

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


# --- errors and ffmpeg ---------------------------------------------------------------------------------

class MediaError(ValueError):
    """The input is not usable media. `field` names the request field, `reason` says why (for a 4xx)."""

    def __init__(self, reason: str, field: str = "file"):
        super().__init__(reason)
        self.field = field
        self.reason = reason


class FfmpegError(RuntimeError):
    """ffmpeg failed on input that looked valid; the message ends with the tail of its stderr."""


def ffmpeg_exe() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _base_argv() -> list[str]:
    return [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]


def _run(argv: list[str], what: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise FfmpegError(f"ffmpeg failed to {what} (exit {proc.returncode}): {_tail(proc.stderr)}")
    return proc


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _seconds(value: int | None, time_base: Fraction | None) -> float | None:
    return None if value is None or time_base is None else float(value * time_base)


# --- probe ---------------------------------------------------------------------------------------------

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
        raise MediaError(f"not a readable media file ({_av_reason(exc)})") from None
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


def _av_reason(exc: av.FFmpegError) -> str:
    return getattr(exc, "strerror", None) or str(exc)


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
            pts = _seconds(packet.pts, packet.time_base)
            if pts is None:
                continue
            duration = _seconds(packet.duration, packet.time_base) or _frame_seconds(packet.stream)
            yield _Packet(packet.stream.index, pts, pts + duration, packet.is_keyframe)
    except av.FFmpegError as exc:
        raise MediaError(f"damaged media data ({_av_reason(exc)})") from None


def _frame_seconds(stream: av.stream.Stream) -> float:
    """A packet's duration when the container does not store it (MPEG-TS video)."""
    rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None)
    return 1 / float(rate) if rate else 0.0


def _video_packets(container: av.container.InputContainer, video: av.stream.Stream
                   ) -> Iterator[tuple[float, float, bool]]:
    """(pts s, duration s, is keyframe) for each video packet."""
    try:
        for packet in container.demux(video):
            pts = _seconds(packet.pts, packet.time_base)
            if pts is None:
                continue
            duration = _seconds(packet.duration, packet.time_base) or _frame_seconds(video)
            yield pts, duration, packet.is_keyframe
    except av.FFmpegError as exc:
        raise FfmpegError(f"damaged media data ({_av_reason(exc)})") from None


# --- cutting the source into raw segments --------------------------------------------------------------

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
    argv = [*_base_argv(), "-i", str(src), "-map", f"0:{info.video_stream}", "-map", "0:a:0?", "-dn", "-sn",
            *(_copy_video() if copy_video else _mezzanine_video(segment_seconds)),
            *_aac_audio(info.audio_codec, max(r.audio_kbps for r in LADDER.values())),
            *_segment_muxer(segment_seconds, info.fps, str(seg_list)),
            # MPEG-TS's default 1.4 s offset, stated: it keeps every later B-frame encode's DTS positive.
            "-muxdelay", "0.7", str(out_dir / "%d.ts")]
    log.info("cutting %s into %g s segments (%s video)", src.name, segment_seconds,
             "copied" if copy_video else "re-encoded")
    _run(argv, f"cut {src.name} into segments")
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
    ends = starts[1:] + [_video_end_pts(paths[-1])]
    return [SegmentFile(index=i, path=p, start_s=round(s - starts[0], 6), duration_s=round(e - s, 6),
                        size_bytes=p.stat().st_size, sha256=sha256_file(p))
            for i, (p, s, e) in enumerate(zip(paths, starts, ends, strict=True))]


# --- checksums -----------------------------------------------------------------------------------------

def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- one segment to every rung -------------------------------------------------------------------------

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
    facts = _ts_facts(raw_path)
    outputs = [out_dir / r.name / f"{segment_index}.ts" for r in rungs]
    for out in outputs:
        out.parent.mkdir(parents=True, exist_ok=True)
    argv = [*_base_argv(), *_threads(threads), "-copyts", "-i", str(raw_path),
            "-filter_complex", _ladder_graph(rungs)]
    for i, (rung, out) in enumerate(zip(rungs, outputs, strict=True)):
        argv += ["-map", f"[v{i}]", "-map", "0:a:0?", *_x264(rung, facts.fps, threads), "-c:a", "copy",
                 "-muxdelay", "0", "-muxpreload", "0", "-f", "mpegts", str(out)]
    began = time.monotonic()
    _run(argv, f"transcode segment {segment_index} (starts at {start_s:.3f} s)")
    wall = time.monotonic() - began
    files = [_rendition(rung, out, wall, facts.fps) for rung, out in zip(rungs, outputs, strict=True)]
    _check_aligned(files, facts, segment_index)
    return files


def _threads(threads: int) -> list[str]:
    return ["-threads", str(threads)] if threads else []


def _ladder_graph(rungs: list[Rung]) -> str:
    """Decode once, split, then scale each copy; letterbox to the rung's exact size (a non-16:9 source keeps
    its shape), so RESOLUTION in the master playlist is always true."""
    labels = "".join(f"[s{i}]" for i in range(len(rungs)))
    chains = [f"[0:v:0]split={len(rungs)}{labels}"]
    for i, r in enumerate(rungs):
        chains.append(f"[s{i}]scale=w={r.width}:h={r.height}:force_original_aspect_ratio=decrease"
                      f":force_divisible_by=2,pad={r.width}:{r.height}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
                      f"format=yuv420p[v{i}]")
    return ";".join(chains)


def _x264(rung: Rung, fps: float, threads: int = 0) -> list[str]:
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
            "-fps_mode", "passthrough", *_threads(threads)]


def _rendition(rung: Rung, path: Path, wall: float, fps: float) -> RenditionFile:
    facts = _ts_facts(path)
    return RenditionFile(rung=rung.name, path=path, size_bytes=path.stat().st_size,
                         duration_s=round(facts.end - facts.start, 6), sha256=sha256_file(path),
                         encode_seconds=round(wall, 3), width=facts.width, height=facts.height,
                         profile=rung.profile, level=rung.level_for(fps), start_pts_s=facts.start)


def _check_aligned(files: list[RenditionFile], raw: _TsFacts, segment_index: int) -> None:
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


@dataclass(frozen=True)
class _TsFacts:
    start: float  # first video pts (s)
    end: float  # end of the last video frame (s)
    fps: float
    width: int
    height: int


def _ts_facts(path: Path) -> _TsFacts:
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise FfmpegError(f"{path.name} has no video stream")
        video = container.streams.video[0]
        fps = float(video.average_rate or video.guessed_rate or 0)
        times = [(pts, dur) for pts, dur, _ in _video_packets(container, video)]
        if not times:
            raise FfmpegError(f"{path.name} has no video frames")
        return _TsFacts(start=min(t for t, _ in times), end=max(t + d for t, d in times), fps=fps,
                        width=video.codec_context.width, height=video.codec_context.height)


# --- the benchmark baseline ----------------------------------------------------------------------------

def transcode_ladder_reference(src: Path, out_dir: Path, rungs: list[Rung], segment_seconds: float) -> float:
    """The plain-ffmpeg baseline `lab bench` compares with: one process decodes the whole source once and
    writes every rung as HLS with the same encoder settings. Returns wall seconds."""
    fps = probe(src).fps
    argv = [*_base_argv(), "-i", str(src), "-filter_complex", _ladder_graph(rungs)]
    for i, rung in enumerate(rungs):
        target = out_dir / rung.name
        target.mkdir(parents=True, exist_ok=True)
        argv += ["-map", f"[v{i}]", "-map", "0:a:0?", *_x264(rung, fps), "-c:a", "aac", "-b:a",
                 f"{rung.audio_kbps}k", "-f", "hls", "-hls_time", f"{segment_seconds:g}",
                 "-hls_playlist_type", "vod", "-hls_segment_filename", str(target / "%d.ts"),
                 str(target / "index.m3u8")]
    began = time.monotonic()
    _run(argv, f"transcode {src.name} to the whole ladder")
    return time.monotonic() - began


# --- inspecting segments -------------------------------------------------------------------------------

def first_frame_is_idr(ts: Path | str | bytes) -> bool:
    """True if the first video access unit holds an IDR slice (NAL type 5) before any non-IDR slice.
    Accepts a path or the segment's bytes (the live encoder checks what it is about to upload)."""
    with _open(ts) as container:
        if not container.streams.video:
            return False
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                return _idr_first(bytes(packet))
    return False


def _open(source: Path | str | bytes) -> av.container.InputContainer:
    if isinstance(source, bytes):
        return av.open(io.BytesIO(source), format="mpegts")
    return av.open(str(source))


def _idr_first(data: bytes) -> bool:
    for nal_type in _nal_types(data):
        if nal_type == 5:
            return True
        if nal_type == 1:  # a non-IDR slice came first
            return False
    return False


def _nal_types(data: bytes) -> Iterator[int]:
    """NAL unit types of an Annex-B access unit (MPEG-TS); falls back to 4-byte length prefixes (MP4)."""
    if data.startswith((b"\x00\x00\x01", b"\x00\x00\x00\x01")):
        pos = data.find(b"\x00\x00\x01")
        while pos != -1 and pos + 3 < len(data):
            yield data[pos + 3] & 0x1F
            pos = data.find(b"\x00\x00\x01", pos + 3)
        return
    pos = 0
    while pos + 4 < len(data):
        size = int.from_bytes(data[pos:pos + 4], "big")
        yield data[pos + 4] & 0x1F
        pos += 4 + size


def video_start_pts(ts_path: Path | str) -> float:
    """The first video packet's pts in seconds (an IDR in a closed GOP, so also the earliest)."""
    with av.open(str(ts_path)) as container:
        if not container.streams.video:
            raise FfmpegError(f"{ts_path} has no video stream")
        for pts, _, _ in _video_packets(container, container.streams.video[0]):
            return pts
    raise FfmpegError(f"{ts_path} has no video frames")


def _video_end_pts(path: Path) -> float:
    return _ts_facts(path).end


def decode_check(url_or_path: str | Path, *, timeout: float = 600.0) -> None:
    """Decode every stream to nowhere, as a player would; FfmpegError with ffmpeg's messages if it reports any
    error, even when it exits 0 (damaged slices are reported but not fatal). A live playlist is followed
    until its ENDLIST, like a player does; `timeout` bounds that."""
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-v", "error",
            # a local playlist may point at http(s) segments; ffmpeg's default whitelist would refuse them
            "-protocol_whitelist", "file,http,https,tcp,tls,crypto",
            "-i", str(url_or_path), "-map", "0", "-f", "null", "-"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or proc.stderr.strip():
        raise FfmpegError(f"decoding {url_or_path} failed (exit {proc.returncode}): {_tail(proc.stderr)}")


# --- test sources --------------------------------------------------------------------------------------

def make_test_clip(path: Path, seconds: float, width: int, height: int, fps: int = 30) -> Path:
    """An H.264/AAC MP4: the testsrc2 pattern with its running time drawn on it, a 440 Hz tone, 2 s GOPs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    gop = round(GOP_SECONDS * fps)
    video = f"testsrc2=size={width}x{height}:rate={fps}"
    overlay = _drawtext("%{pts\\:hms}", height)
    tone = "sine=frequency=440:sample_rate=48000"
    argv = [*_base_argv(), "-f", "lavfi", "-i", video, "-f", "lavfi", "-i", tone,
            "-t", f"{seconds:g}", "-map", "0:v", "-map", "1:a", *(["-vf", overlay] if overlay else []),
            "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0",
            "-c:a", "aac", "-b:a", "96k",
            "-movflags", "+faststart",  # index first, like a web upload (and what a truncation test needs)
            str(path)]
    _run(argv, f"make the test clip {path.name}")
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
    probe_argv = [*_base_argv(), "-f", "lavfi", "-i", "color=size=64x64:duration=0.04",
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
