"""Playlists by round trip: build with lab.hls, parse back with the m3u8 library, compare values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lab import hls

SEGMENTS = [("0.ts", 4.0), ("1.ts", 4.0), ("2.ts", 2.5)]

GOLDEN_VOD = """#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:4
#EXT-X-PLAYLIST-TYPE:VOD
#EXTINF:4.000,
0.ts
#EXTINF:4.000,
1.ts
#EXTINF:2.500,
2.ts
#EXT-X-ENDLIST
"""


def tags(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


# --- media playlists ---------------------------------------------------------------------------------

def test_vod_media_playlist_matches_the_golden_text() -> None:
    assert hls.media_playlist(SEGMENTS) == GOLDEN_VOD


def test_vod_media_playlist_round_trips() -> None:
    parsed = hls.parse(hls.media_playlist(SEGMENTS))
    assert parsed.version == 3
    assert parsed.playlist_type == "vod"
    assert parsed.is_endlist
    assert parsed.media_sequence == 0
    assert [(s.uri, s.duration) for s in parsed.segments] == SEGMENTS


def test_target_duration_is_the_ceiling_of_the_longest_segment() -> None:
    parsed = hls.parse(hls.media_playlist([("0.ts", 4.0667), ("1.ts", 3.9)]))
    assert parsed.target_duration == 5


def test_a_larger_target_duration_is_kept_a_smaller_one_is_raised() -> None:
    assert hls.parse(hls.media_playlist(SEGMENTS, target_duration=6)).target_duration == 6
    assert hls.parse(hls.media_playlist(SEGMENTS, target_duration=1)).target_duration == 4


def test_event_playlist_has_media_sequence_and_no_endlist() -> None:
    text = hls.media_playlist(SEGMENTS, media_sequence=7, ended=False, playlist_type="EVENT")
    parsed = hls.parse(text)
    assert parsed.media_sequence == 7
    assert parsed.segments[0].media_sequence == 7
    assert parsed.playlist_type == "event"
    assert not parsed.is_endlist and "#EXT-X-ENDLIST" not in text


def test_a_vod_playlist_must_be_ended() -> None:
    with pytest.raises(ValueError, match="playlist_type"):
        hls.media_playlist(SEGMENTS, ended=False, playlist_type="VOD")


def test_segments_need_a_positive_duration() -> None:
    with pytest.raises(ValueError, match="duration"):
        hls.media_playlist([("0.ts", 0.0)])


# --- live playlists ----------------------------------------------------------------------------------

WINDOW = [("../../live-streams/s1/chunks/5.ts", 2.0), ("../../live-streams/s1/chunks/6.ts", 2.021)]


def test_live_window_has_no_playlist_type_and_no_endlist() -> None:
    text = hls.live_playlist(WINDOW, media_sequence=5, target_duration=2, ended=False)
    parsed = hls.parse(text)
    assert parsed.media_sequence == 5
    assert parsed.target_duration == 2
    assert parsed.playlist_type is None and "#EXT-X-PLAYLIST-TYPE" not in text
    assert not parsed.is_endlist
    assert [(s.uri, s.duration) for s in parsed.segments] == WINDOW


def test_ended_live_playlist_has_endlist() -> None:
    parsed = hls.parse(hls.live_playlist(WINDOW, media_sequence=0, target_duration=2, ended=True))
    assert parsed.is_endlist and parsed.media_sequence == 0


def test_live_target_duration_compares_with_rounded_durations() -> None:
    # 2.021 s rounds to 2: a target of 2 is valid (RFC 8216 4.3.3.1); 2.6 s rounds to 3 and raises it.
    assert hls.parse(hls.live_playlist(WINDOW, media_sequence=5, target_duration=2, ended=False)
                     ).target_duration == 2
    longer = [*WINDOW, ("../../live-streams/s1/chunks/7.ts", 2.6)]
    assert hls.parse(hls.live_playlist(longer, media_sequence=5, target_duration=2, ended=False)
                     ).target_duration == 3


def test_empty_live_window_is_a_valid_playlist() -> None:
    parsed = hls.parse(hls.live_playlist([], media_sequence=0, target_duration=2.0, ended=False))
    assert parsed.target_duration == 2 and not parsed.segments and not parsed.is_endlist


def test_live_segments_carry_their_program_date_time() -> None:
    t0 = datetime(2026, 12, 2, 18, 0, 0, 250_000, tzinfo=UTC)
    window = [(uri, d, t0 + timedelta(seconds=2 * n)) for n, (uri, d) in enumerate(WINDOW)]
    text = hls.live_playlist(window, media_sequence=5, target_duration=2, ended=False)
    assert "#EXT-X-PROGRAM-DATE-TIME:2026-12-02T18:00:00.250+00:00" in text
    assert [s.program_date_time for s in hls.parse(text).segments] == [w[2] for w in window]


def test_a_program_date_time_needs_a_time_zone() -> None:
    with pytest.raises(ValueError, match="program_date_time"):
        hls.live_playlist([("0.ts", 2.0, datetime(2026, 1, 1))], media_sequence=0, target_duration=2, ended=False)


# --- RFC 8216 6.2.1: what a reload may change ------------------------------------------------------------

def _window(first: int, last: int, ended: bool = False, *, media_sequence: int | None = None):
    entries = [(f"{i}.ts", 2.0, datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=2 * i))
               for i in range(first, last + 1)]
    return hls.parse(hls.live_playlist(entries, media_sequence=first if media_sequence is None else media_sequence,
                                       target_duration=2, ended=ended))


@pytest.mark.parametrize(("before", "after"), [
    ((0, 2), (0, 3)),            # appended
    ((0, 2), (1, 4)),            # removed from the head, appended
    ((0, 2), (7, 9)),            # versions missed in between
    ((3, 5), (3, 5, True)),      # ENDLIST added
    ((3, 5, True), (3, 5, True)),
])
def test_what_a_reload_may_change(before, after) -> None:
    assert hls.reload_violations(_window(*before), _window(*after)) == []


def test_a_reload_that_rewinds_to_the_whole_recording_breaks_the_rule() -> None:
    """What the lab did before: at the end, MEDIA-SEQUENCE 0 and every segment back at the live URL."""
    problems = hls.reload_violations(_window(5, 9), _window(0, 9, ended=True))
    assert problems and "went back" in problems[0]


def test_changes_other_than_append_and_head_removal_are_named() -> None:
    assert hls.reload_violations(_window(0, 3), _window(0, 2))  # removed from the tail
    assert hls.reload_violations(_window(0, 3), _window(1, 4, media_sequence=0))  # renumbered
    assert "after EXT-X-ENDLIST" in hls.reload_violations(_window(0, 3, ended=True), _window(0, 4, ended=True))[0]


# --- master playlist ---------------------------------------------------------------------------------

VARIANTS = [
    hls.Variant("360p/index.m3u8", 820_000, 760_000, 640, 360, "avc1.4d401e,mp4a.40.2", 30.0),
    hls.Variant("1080p/index.m3u8", 5_600_000, 5_200_000, 1920, 1080, "avc1.640028,mp4a.40.2", 30.0),
    hls.Variant("720p/index.m3u8", 3_100_000, 2_900_000, 1280, 720, "avc1.64001f,mp4a.40.2", 29.97),
]


def test_master_playlist_round_trips_highest_first() -> None:
    parsed = hls.parse(hls.master_playlist(VARIANTS))
    assert parsed.is_variant and parsed.is_independent_segments
    assert [p.uri for p in parsed.playlists] == ["1080p/index.m3u8", "720p/index.m3u8", "360p/index.m3u8"]
    by_uri = {p.uri: p.stream_info for p in parsed.playlists}
    for v in VARIANTS:
        info = by_uri[v.uri]
        assert (info.bandwidth, info.average_bandwidth) == (v.bandwidth, v.average_bandwidth)
        assert info.resolution == (v.width, v.height)
        assert info.codecs == v.codecs
        assert info.frame_rate == pytest.approx(v.frame_rate)


def test_master_playlist_needs_a_variant() -> None:
    with pytest.raises(ValueError, match="variants"):
        hls.master_playlist([])


@pytest.mark.parametrize(("profile", "level", "expected"), [
    ("high", "4.0", "avc1.640028,mp4a.40.2"),
    ("high", "3.1", "avc1.64001f,mp4a.40.2"),
    ("main", "3.0", "avc1.4d401e,mp4a.40.2"),
    ("main", "3.1", "avc1.4d401f,mp4a.40.2"),
    ("baseline", "3.0", "avc1.42c01e,mp4a.40.2"),
])
def test_codecs_for(profile: str, level: str, expected: str) -> None:
    assert hls.codecs_for(profile, level) == expected


def test_codecs_for_without_audio_and_bad_input() -> None:
    assert hls.codecs_for("high", "4.2", audio=False) == "avc1.64002a"
    with pytest.raises(ValueError, match="profile"):
        hls.codecs_for("high10", "4.0")
    with pytest.raises(ValueError, match="level"):
        hls.codecs_for("main", "x")


def test_bandwidth_is_peak_and_average_segment_bitrate() -> None:
    peak, average = hls.bandwidth_from_segments([500_000, 250_000, 100_000], [4.0, 4.0, 1.0])
    assert peak == 1_000_000  # 500 kB in 4 s
    assert average == 755_556  # 850 kB in 9 s, rounded up


def test_bandwidth_rejects_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError):
        hls.bandwidth_from_segments([], [])
    with pytest.raises(ValueError):
        hls.bandwidth_from_segments([1, 2], [1.0])
    with pytest.raises(ValueError):
        hls.bandwidth_from_segments([1], [0.0])


# --- parsing and rewriting ---------------------------------------------------------------------------

def segment_uris(text: str) -> list[str]:
    return [s.uri for s in hls.parse(text).segments]


def test_parse_reads_segment_uris() -> None:
    assert segment_uris(GOLDEN_VOD) == ["0.ts", "1.ts", "2.ts"]


def sign(uri: str) -> str:
    return f"https://cdn.example/{uri}?X-Amz-Signature=abc"


def test_rewrite_uris_maps_segments_and_keeps_every_tag() -> None:
    for text in (GOLDEN_VOD, hls.live_playlist(WINDOW, media_sequence=5, target_duration=2, ended=False)):
        rewritten = hls.rewrite_uris(text, sign)
        assert tags(rewritten) == tags(text)
        assert segment_uris(rewritten) == [sign(u) for u in segment_uris(text)]


def test_rewrite_uris_maps_variant_playlists_and_keeps_stream_info() -> None:
    text = hls.master_playlist(VARIANTS)
    rewritten = hls.rewrite_uris(text, sign)
    assert tags(rewritten) == tags(text)
    assert [p.uri for p in hls.parse(rewritten).playlists] == [sign(p.uri) for p in hls.parse(text).playlists]
