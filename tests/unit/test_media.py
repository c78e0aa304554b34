"""lab.media against real ffmpeg and PyAV, on a tiny clip: the ladder, probing bad input, keyframe-aligned
cutting, and a transcode whose segments line up into one continuous timeline. No services needed."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import av
import pytest

from lab import hls, media
from lab.media import h264

SEGMENT_S = 2.0
CLIP_S = 6.0
# Two tiny rungs with distinct names keep the transcode fast on a 2-core laptop.
RUNGS = [replace(media.LADDER["360p"], name="small", width=320, height=180, video_kbps=300, maxrate_kbps=330,
                 bufsize_kbps=450),
         replace(media.LADDER["360p"], name="tiny", width=256, height=144, video_kbps=200, maxrate_kbps=220,
                 bufsize_kbps=300)]


Renditions = list[list[media.RenditionFile]]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def clip(work: Path) -> Path:
    return media.make_test_clip(work / "clip.mp4", CLIP_S, 640, 360, fps=30)


@pytest.fixture(scope="module")
def segments(clip: Path, work: Path) -> list[media.SegmentFile]:
    return media.cut_segments(clip, work / "raw", SEGMENT_S, media.probe(clip))


@pytest.fixture(scope="module")
def renditions(segments: list[media.SegmentFile], work: Path) -> Renditions:
    """Segments 0 and 1, each transcoded on its own, as two Spark executors would."""
    return [media.transcode_segment(s.path, work / "out", RUNGS, s.index, s.start_s) for s in segments[:2]]


# --- the ladder --------------------------------------------------------------------------------------

def test_ladder_is_highest_first_and_16_by_9() -> None:
    assert list(media.LADDER) == ["1080p", "720p", "480p", "360p"]
    for rung in media.LADDER.values():
        assert rung.width % 2 == 0 and abs(rung.width / rung.height - 16 / 9) < 0.01


@pytest.mark.parametrize("height", [144, 240, 359, 360, 480, 700, 720, 1079, 1080, 2160])
def test_ladder_for_never_upscales_and_always_gives_a_rung(height: int) -> None:
    rungs = media.ladder_for(height, list(media.LADDER))
    assert rungs, "at least one rendition"
    assert all(r.height <= height for r in rungs)
    assert [r.height for r in rungs] == sorted((r.height for r in rungs), reverse=True)
    assert all(r.width % 2 == 0 and r.height % 2 == 0 for r in rungs)


def test_ladder_for_keeps_every_rung_at_or_below_the_source() -> None:
    assert [r.name for r in media.ladder_for(720, list(media.LADDER))] == ["720p", "480p", "360p"]
    assert [r.name for r in media.ladder_for(1080, ["720p", "360p"])] == ["720p", "360p"]


def test_ladder_for_a_small_source_scales_the_lowest_rung_down() -> None:
    [rung] = media.ladder_for(241, list(media.LADDER))
    assert (rung.name, rung.height, rung.width) == ("360p", 240, 426)
    assert rung.video_kbps < media.LADDER["360p"].video_kbps


def test_ladder_for_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="4k"):
        media.ladder_for(1080, ["720p", "4k"])


def test_level_rises_with_frame_rate() -> None:
    assert media.LADDER["1080p"].level_for(30) == "4.0"
    assert media.LADDER["1080p"].level_for(60) == "4.2"
    assert media.LADDER["360p"].level_for(25) == "3.0"


# --- probe -------------------------------------------------------------------------------------------

def test_probe_describes_the_clip(clip: Path) -> None:
    info = media.probe(clip)
    assert info.duration_s == pytest.approx(CLIP_S, abs=0.05)
    assert (info.width, info.height, info.fps) == (640, 360, 30.0)
    assert (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.keyframe_interval_s == pytest.approx(2.0, abs=0.05)
    assert info.size_bytes == clip.stat().st_size and info.bit_rate > 0


def test_probe_rejects_a_text_file(tmp_path: Path) -> None:
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n" * 50)
    with pytest.raises(media.MediaError, match="not a readable media file") as exc:
        media.probe(path)
    assert exc.value.field == "file"


@pytest.mark.parametrize(("name", "text"), [
    ("notes.txt", "this is not a video\n" * 50),  # ffmpeg's tty demuxer would draw it as ANSI-art video
    ("list.m3u8", "#EXTM3U\n#EXTINF:2,\nhttp://127.0.0.1:9/x.ts\n#EXT-X-ENDLIST\n"),  # names other files
])
def test_probe_rejects_text_that_ffmpeg_would_read_as_media(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(media.MediaError, match="not a readable media file"):
        media.probe(path)


def test_probe_rejects_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.mp4"
    path.touch()
    with pytest.raises(media.MediaError, match="empty"):
        media.probe(path)


def test_probe_rejects_a_truncated_mp4(clip: Path, tmp_path: Path) -> None:
    """make_test_clip writes the index first (faststart): cut short, PyAV still opens it and simply runs
    out of packets, so only comparing the media reached with the declared duration catches it."""
    data = clip.read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])
    with av.open(str(path)) as container:  # the premise: opening alone does not fail
        assert container.duration
    with pytest.raises(media.MediaError, match="truncated"):
        media.probe(path)


def test_probe_rejects_audio_only(work: Path) -> None:
    path = work / "tone.m4a"
    argv = [media.ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    with pytest.raises(media.MediaError, match="no video stream"):
        media.probe(path)


def test_probe_rejects_a_still_picture(work: Path, clip: Path) -> None:
    path = work / "still.png"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-frames:v", "1", str(path)],
                   check=True, capture_output=True)
    with pytest.raises(media.MediaError, match="single picture"):
        media.probe(path)


def test_probe_reports_a_rotated_phone_video_as_displayed(work: Path, clip: Path) -> None:
    path = work / "portrait.mp4"
    subprocess.run([media.ffmpeg_exe(), "-v", "error", "-y", "-display_rotation", "90", "-i", str(clip),
                    "-c", "copy", str(path)], check=True, capture_output=True)
    info = media.probe(path)
    assert (info.width, info.height, info.rotation) == (360, 640, 90)


# --- cutting -----------------------------------------------------------------------------------------

def test_cut_makes_keyframe_aligned_segments(segments: list[media.SegmentFile]) -> None:
    assert [s.index for s in segments] == [0, 1, 2]
    assert [s.path.name for s in segments] == ["0.ts", "1.ts", "2.ts"]
    for seg in segments:
        assert media.first_frame_is_idr(seg.path), f"segment {seg.index} does not start with an IDR"
        assert seg.duration_s == pytest.approx(SEGMENT_S, abs=0.05)
        assert seg.start_s == pytest.approx(seg.index * SEGMENT_S, abs=0.05)
        assert seg.sha256 == media.sha256_file(seg.path) == media.sha256_bytes(seg.path.read_bytes())
        assert seg.size_bytes == seg.path.stat().st_size
    assert sum(s.duration_s for s in segments) == pytest.approx(CLIP_S, abs=0.05)


def test_cut_re_encodes_a_source_with_sparse_keyframes(work: Path) -> None:
    """One keyframe in 6 s and no audio: too far apart to cut at 2 s, so the cut re-encodes with a forced
    keyframe every segment."""
    src = work / "sparse.mkv"
    video = "testsrc2=size=160x90:rate=25"
    argv = [media.ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi", "-i", video, "-t", "6",
            "-c:v", "libx264", "-preset", "ultrafast", "-g", "300", str(src)]
    subprocess.run(argv, check=True, capture_output=True)
    info = media.probe(src)
    assert info.keyframe_interval_s > 1.5 * SEGMENT_S and info.audio_codec is None
    cut = media.cut_segments(src, work / "sparse", SEGMENT_S, info)
    assert [round(s.duration_s, 2) for s in cut] == [2.0, 2.0, 2.0]
    assert all(media.first_frame_is_idr(s.path) for s in cut)


def test_raw_segments_keep_a_continuous_timeline(segments: list[media.SegmentFile]) -> None:
    starts = [media.video_start_pts(s.path) for s in segments]
    for seg, start, following in zip(segments, starts, starts[1:], strict=False):
        assert following == pytest.approx(start + seg.duration_s, abs=0.001)


def test_first_frame_is_idr_reads_bytes_too(segments: list[media.SegmentFile]) -> None:
    assert media.first_frame_is_idr(segments[0].path.read_bytes())


def test_idr_detection_on_nal_units() -> None:
    aud, sps = b"\x00\x00\x00\x01\x09\xf0", b"\x00\x00\x01\x67\x4d"
    idr, non_idr = b"\x00\x00\x01\x65\x88", b"\x00\x00\x01\x41\x9a"
    assert h264._idr_first(aud + sps + idr)
    assert not h264._idr_first(aud + non_idr)
    assert h264._idr_first((2).to_bytes(4, "big") + b"\x65\x88")  # MP4 length-prefixed form


# --- transcoding -------------------------------------------------------------------------------------

def test_each_rendition_starts_with_an_idr_at_the_rung_height(renditions: Renditions) -> None:
    for files in renditions:
        assert [f.rung for f in files] == [r.name for r in RUNGS]
        for rung, f in zip(RUNGS, files, strict=True):
            assert media.first_frame_is_idr(f.path)
            info = media.probe(f.path)
            assert (info.width, info.height) == (rung.width, rung.height)
            assert info.audio_codec == "aac"
            assert f.sha256 == media.sha256_file(f.path) and f.size_bytes == f.path.stat().st_size
            assert f.encode_seconds > 0


def test_independent_transcodes_continue_one_timeline(segments: list[media.SegmentFile],
                                                      renditions: Renditions) -> None:
    first, second = renditions
    for a, b in zip(first, second, strict=True):
        start0, start1 = media.video_start_pts(a.path), media.video_start_pts(b.path)
        assert start1 == pytest.approx(start0 + a.duration_s, abs=0.001)
        assert start0 == pytest.approx(media.video_start_pts(segments[0].path), abs=0.001)
        assert a.duration_s == pytest.approx(segments[0].duration_s, abs=0.001)


def test_renditions_decode_alone_and_as_a_playlist(work: Path, renditions: Renditions) -> None:
    for files in renditions:
        for f in files:
            media.decode_check(f.path)
    # Across the segment boundary too: a timestamp jump or a broken GOP would be reported here.
    for rung in RUNGS:
        entries = [(f"{i}.ts", files[k].duration_s) for i, files in enumerate(renditions)
                   for k, r in enumerate(RUNGS) if r.name == rung.name]
        playlist = work / "out" / rung.name / "index.m3u8"
        playlist.write_text(hls.media_playlist(entries))
        media.decode_check(playlist)


def test_codecs_string_matches_the_encoded_sps(renditions: Renditions) -> None:
    f = renditions[0][0]
    with av.open(str(f.path)) as container:
        data = bytes(next(p for p in container.demux(video=0) if p.size))
    sps = data.find(b"\x00\x00\x01\x67") + 4
    assert f"avc1.{data[sps:sps + 3].hex()}" == hls.codecs_for(f.profile, f.level, audio=False)


def test_plain_ffmpeg_hls_puts_segments_on_the_same_timeline(clip: Path, work: Path,
                                                             renditions: Renditions) -> None:
    seconds = media.transcode_ladder_reference(clip, work / "reference", RUNGS[:1], SEGMENT_S)
    assert seconds > 0
    reference = work / "reference" / RUNGS[0].name
    assert [s.uri for s in hls.parse((reference / "index.m3u8").read_text()).segments][:2] == ["0.ts", "1.ts"]
    for i, files in enumerate(renditions):
        assert media.video_start_pts(reference / f"{i}.ts") == pytest.approx(
            media.video_start_pts(files[0].path), abs=0.001)


def test_decode_check_reports_damage_even_when_ffmpeg_exits_0(tmp_path: Path,
                                                               renditions: Renditions) -> None:
    data = bytearray(renditions[0][0].path.read_bytes())
    for offset in range(20_000, len(data) - 5_000, 40_000):
        data[offset:offset + 1_500] = bytes(1_500)
    damaged = tmp_path / "damaged.ts"
    damaged.write_bytes(bytes(data))
    with pytest.raises(media.FfmpegError, match="decoding"):
        media.decode_check(damaged)


def test_transcode_needs_distinct_rung_names(segments: list[media.SegmentFile], tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="distinct"):
        media.transcode_segment(segments[0].path, tmp_path, [RUNGS[0], RUNGS[0]], 0, 0.0)


# --- the live encoder's command ----------------------------------------------------------------------

def test_live_encoder_command_announces_segments_on_stdout(tmp_path: Path) -> None:
    argv = media.live_encoder_command(tmp_path, 2.0, 320, 180, 25, start_number=4)
    joined = " ".join(argv)
    assert argv[0] == media.ffmpeg_exe()
    assert argv.count("-re") == 2
    assert "-segment_list pipe:1 -segment_list_type csv" in joined
    assert "-g 50 " in joined and "-tune zerolatency" in joined and "-segment_start_number 4" in joined
    assert argv[-1] == str(tmp_path / "%d.ts")
