"""HLS playlists (RFC 8216) built and parsed with the m3u8 library: objects serialised with `dumps()`, never
strings glued together. Pure functions: no I/O, no settings; callers pass URIs and durations.

- `media_playlist`: one rendition of a VOD (or an EVENT playlist that only grows).
- `master_playlist`: the variants of a VOD, highest bandwidth first.
- `live_playlist`: the rolling DVR window of a live stream, and its final form once the stream ended.
- `rewrite_uris`: the same playlist with every URI mapped (the API signs URIs per request).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import m3u8

VERSION = 3  # floating-point EXTINF durations need version 3; nothing here needs more
AUDIO_CODEC = "mp4a.40.2"  # AAC-LC, what every raw segment carries

# H.264 profile_idc and the constraint flags byte as libx264 writes them in the SPS.
_PROFILES = {"baseline": (0x42, 0xC0), "main": (0x4D, 0x40), "high": (0x64, 0x00)}

PlaylistType = Literal["VOD", "EVENT"]


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


def media_playlist(segments: Sequence[tuple[str, float]], *, target_duration: float | None = None,
                   media_sequence: int = 0, ended: bool = True,
                   playlist_type: PlaylistType | None = "VOD") -> str:
    """A media playlist of `(uri, duration_s)` segments. TARGETDURATION defaults to the ceiling of the
    longest segment; a VOD playlist is complete by definition, so it must be `ended`."""
    if playlist_type == "VOD" and not ended:
        raise ValueError("playlist_type: a VOD playlist never changes, so it must be ended")
    longest = max((d for _, d in segments), default=0.0)
    target = max(math.ceil(target_duration or 0), math.ceil(longest), 1)
    playlist = _playlist(segments, target=target, media_sequence=media_sequence, ended=ended)
    playlist.playlist_type = playlist_type
    return playlist.dumps(infspec="milliseconds")


def live_playlist(entries: Sequence[tuple[str, float]], *, media_sequence: int, target_duration: float,
                  ended: bool) -> str:
    """The DVR window of a live stream: MEDIA-SEQUENCE is the first entry's sequence number. No
    PLAYLIST-TYPE while live (EVENT would forbid removing segments from the front); ENDLIST once ended."""
    # RFC 8216 compares the target with each EXTINF rounded to the nearest integer. The caller keeps the
    # target from ever shrinking; raising it here only if an entry would break the rule keeps the
    # playlist valid rather than failing a live stream.
    longest = max((math.floor(d + 0.5) for _, d in entries), default=0)
    target = max(math.ceil(target_duration), longest, 1)
    return _playlist(entries, target=target, media_sequence=media_sequence, ended=ended).dumps(
        infspec="milliseconds")


def _playlist(segments: Sequence[tuple[str, float]], *, target: int, media_sequence: int,
              ended: bool) -> m3u8.M3U8:
    if media_sequence < 0:
        raise ValueError("media_sequence: must be >= 0")
    playlist = m3u8.M3U8()
    playlist.version = VERSION
    playlist.target_duration = target
    playlist.media_sequence = media_sequence
    playlist.is_endlist = ended
    for uri, duration in segments:
        if duration <= 0:
            raise ValueError(f"duration: segment {uri} has {duration} s")
        playlist.add_segment(m3u8.Segment(uri=uri, duration=duration))
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
