"""HLS playlists (RFC 8216) built and parsed with the m3u8 library: objects serialised with `dumps()`, never
strings glued together. Pure functions: no I/O, no settings; callers pass URIs and durations.

- `media_playlist`: one rendition of a VOD (or an EVENT playlist that only grows).
- `master_playlist`: the variants of a VOD, highest bandwidth first.
- `live_playlist`: the rolling DVR window of a live stream; once the stream ended, the same window with
  ENDLIST (RFC 8216 6.2.1: a live playlist only appends, drops from the head and finally adds ENDLIST).
- `rewrite_uris`: the same playlist with every URI mapped (the API signs URIs per request).
- `reload_violations`: what breaks RFC 8216 6.2.1 between two versions of a live playlist a player polled.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import m3u8

VERSION = 3  # floating-point EXTINF durations need version 3; nothing here needs more
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC, what every raw segment carries

# H.264 profile_idc and the constraint flags byte as libx264 writes them in the SPS.
_PROFILES = {"baseline": (0x42, 0xC0), "main": (0x4D, 0x40), "high": (0x64, 0x00)}

PlaylistType = Literal["VOD", "EVENT"]
# (uri, duration_s) or (uri, duration_s, program_date_time): the wall-clock time of the segment's first frame
SegmentSpec = tuple[str, float] | tuple[str, float, datetime | None]


@dataclass(frozen=True)
class Variant:
    """One rendition in the master playlist; bandwidths in bits/s (peak and average segment bitrate)."""

    uri: str
    bandwidth: int
    average_bandwidth: int
    width: int
    height: int
    codecs: str
    frame_rate: float


def media_playlist(segments: Sequence[SegmentSpec], *, target_duration: float | None = None,
                   media_sequence: int = 0, ended: bool = True,
                   playlist_type: PlaylistType | None = "VOD") -> str:
    """A media playlist of `(uri, duration_s)` segments. TARGETDURATION defaults to the ceiling of the
    longest segment; a VOD playlist is complete by definition, so it must be `ended`."""
    if playlist_type == "VOD" and not ended:
        raise ValueError("playlist_type: a VOD playlist never changes, so it must be ended")
    longest = max((s[1] for s in segments), default=0.0)
    target = max(math.ceil(target_duration or 0), math.ceil(longest), 1)
    playlist = _playlist(segments, target=target, media_sequence=media_sequence, ended=ended)
    playlist.playlist_type = playlist_type
    return playlist.dumps(infspec="milliseconds")


def live_playlist(entries: Sequence[SegmentSpec], *, media_sequence: int, target_duration: float,
                  ended: bool) -> str:
    """The DVR window of a live stream: MEDIA-SEQUENCE is the first entry's sequence number. No
    PLAYLIST-TYPE while live (EVENT would forbid removing segments from the front); ENDLIST once ended.
    A segment given a program_date_time gets EXT-X-PROGRAM-DATE-TIME (ms, UTC): a player maps it to the
    wall clock (hls.js `playingDate`), which is what glass-to-glass latency is measured against."""
    # RFC 8216 compares the target with each EXTINF rounded to the nearest integer. The caller keeps the
    # target from ever shrinking; raising it here only if an entry would break the rule keeps the
    # playlist valid rather than failing a live stream.
    longest = max((math.floor(e[1] + 0.5) for e in entries), default=0)
    target = max(math.ceil(target_duration), longest, 1)
    return _playlist(entries, target=target, media_sequence=media_sequence, ended=ended).dumps(
        infspec="milliseconds")


def _playlist(segments: Sequence[SegmentSpec], *, target: int, media_sequence: int,
              ended: bool) -> m3u8.M3U8:
    if media_sequence < 0:
        raise ValueError("media_sequence: must be >= 0")
    playlist = m3u8.M3U8()
    playlist.version = VERSION
    playlist.target_duration = target
    playlist.media_sequence = media_sequence
    playlist.is_endlist = ended
    for uri, duration, *pdt in segments:
        if duration <= 0:
            raise ValueError(f"duration: segment {uri} has {duration} s")
        when = pdt[0] if pdt else None
        if when is not None and when.tzinfo is None:
            raise ValueError(f"program_date_time: segment {uri} needs a time zone")
        playlist.add_segment(m3u8.Segment(uri=uri, duration=duration, program_date_time=when))
    return playlist


def master_playlist(variants: Sequence[Variant]) -> str:
    """The multivariant playlist, highest bandwidth first (the order players try when they know nothing)."""
    if not variants:
        raise ValueError("variants: at least one is needed")
    master = m3u8.M3U8()
    master.version = VERSION
    # Every segment of every rendition starts with an IDR and its GOPs are closed.
    master.is_independent_segments = True
    for v in sorted(variants, key=lambda v: v.bandwidth, reverse=True):
        master.add_playlist(m3u8.Playlist(uri=v.uri, stream_info={
            "bandwidth": v.bandwidth, "average_bandwidth": v.average_bandwidth,
            "resolution": f"{v.width}x{v.height}", "codecs": v.codecs, "frame_rate": v.frame_rate,
        }, media=[], base_uri=None))
    return master.dumps()


def codecs_for(profile: str, level: str, *, audio: bool = True) -> str:
    """RFC 6381 CODECS for an H.264 `profile`/`level`, as libx264 signals them in the SPS, plus AAC-LC:
    ("main", "3.0") -> "avc1.4d401e,mp4a.40.2"."""
    if profile not in _PROFILES:
        raise ValueError(f"profile: unknown H.264 profile {profile!r}; known: {list(_PROFILES)}")
    try:
        level_idc = round(float(level) * 10)
    except ValueError:
        raise ValueError(f"level: not an H.264 level: {level!r}") from None
    profile_idc, constraints = _PROFILES[profile]
    video = f"avc1.{profile_idc:02x}{constraints:02x}{level_idc:02x}"
    return f"{video},{AUDIO_CODEC}" if audio else video


def bandwidth_from_segments(sizes_bytes: Sequence[int], durations_s: Sequence[float]) -> tuple[int, int]:
    """(peak, average) bits/s: BANDWIDTH is the highest segment bitrate, AVERAGE-BANDWIDTH the whole
    rendition's (RFC 8216 4.3.4.2). Rounded up, so a player never sees less than it will have to fetch."""
    if not sizes_bytes or len(sizes_bytes) != len(durations_s):
        raise ValueError("sizes_bytes, durations_s: need the same, non-zero number of segments")
    if min(durations_s) <= 0:
        raise ValueError("durations_s: every segment must last more than 0 s")
    peak = max(size * 8 / d for size, d in zip(sizes_bytes, durations_s, strict=True))
    average = sum(sizes_bytes) * 8 / sum(durations_s)
    return math.ceil(peak), math.ceil(average)


def parse(text: str) -> m3u8.M3U8:
    return m3u8.loads(text)


def rewrite_uris(text: str, map_uri: Callable[[str], str]) -> str:
    """The playlist with every segment URI and every variant (and rendition group) playlist URI passed
    through `map_uri`; all other tags stay as they were."""
    playlist = parse(text)
    for item in [*playlist.segments, *playlist.playlists, *playlist.iframe_playlists, *playlist.media]:
        if item.uri:
            item.uri = map_uri(item.uri)
    return playlist.dumps(infspec="milliseconds")


def _segment_key(segment: m3u8.Segment) -> tuple:
    return segment.uri, round(float(segment.duration), 3), segment.program_date_time


def reload_violations(before: m3u8.M3U8, after: m3u8.M3U8) -> list[str]:
    """RFC 8216 6.2.1 between two versions of a Media Playlist (`before` fetched first; versions in between may
    have been missed): the server may only append lines, remove segments from the head (MEDIA-SEQUENCE
    incremented by the number removed), and add EXT-X-ENDLIST; nothing changes after ENDLIST. Returns what
    was broken, empty if nothing."""
    problems: list[str] = []
    if before.is_endlist and after.dumps() != before.dumps():
        problems.append("changed after EXT-X-ENDLIST")
    if before.target_duration != after.target_duration:
        problems.append(f"EXT-X-TARGETDURATION changed: {before.target_duration} -> {after.target_duration}")
    if before.playlist_type != after.playlist_type:
        problems.append(f"EXT-X-PLAYLIST-TYPE changed: {before.playlist_type} -> {after.playlist_type}")
    first_before, first_after = before.media_sequence or 0, after.media_sequence or 0
    removed = first_after - first_before
    if removed < 0:
        return [*problems, f"EXT-X-MEDIA-SEQUENCE went back: {first_before} -> {first_after}"]
    kept = [_segment_key(s) for s in before.segments[removed:]]
    now = [_segment_key(s) for s in after.segments]
    if now[:len(kept)] != kept:
        problems.append(f"segments {first_before + removed}.. are not the ones the previous version listed "
                        f"with those numbers (only appending and removing from the head are allowed)")
    if len(now) < len(kept):
        problems.append(f"{len(kept) - len(now)} segment(s) removed from the tail")
    return problems
