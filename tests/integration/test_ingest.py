"""Going live from OBS, played by ffmpeg standing in for it (issue 22): RTMP and SRT into the ingest service's
listeners, the same segments as the lab's encoder, through S3, Kafka and Spark to the playlist.

Bad input: a wrong or missing key, a second publisher on the same key, a publisher that disconnects in the
middle of a segment (a clean end: every segment accepted is in the recording, none is half), an encoder that
sends no keyframe (a clear error in the catalog, and the stream ends).
"""

from __future__ import annotations

import subprocess
import time

import httpx
import m3u8
import pytest

from lab import catalog, media, storage
from lab.apiclient import client
from lab.config import settings
from lab.live_ingest import urls
from lab.live_ingest.session import NO_KEYFRAME
from lab.media.ffmpeg import ffmpeg_exe
from lab.media.h264 import first_frame_is_idr
from lab.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]
FPS = 30


def start(ingest: str) -> dict:
    with client() as api:
        resp = api.post("/streams/start", json={"ingest": ingest, "title": f"test {ingest} ingest"})
    assert resp.status_code == 201, resp.text
    return resp.json()


def publish_url(started: dict, key: str | None = None) -> tuple[str, str]:
    """(URL, muxer) for ffmpeg as the publisher, with `key` in place of the stream's own if given."""
    key = started["ingest_key"] if key is None else key
    host = f"127.0.0.1:{settings.rtmp_port if started['ingest'] == 'rtmp' else settings.srt_port}"
    if started["ingest"] == "rtmp":
        return f"rtmp://{host}/{urls.RTMP_APP}/{key}".rstrip("/"), "flv"
    return f"srt://{host}?mode=caller&latency=200000{f'&passphrase={key}' if key else ''}", "mpegts"


def pusher(started: dict, seconds: float, *, key: str | None = None, gop: int | None = None) -> subprocess.Popen:
    """ffmpeg as OBS: a real-time test picture and tone, H.264 with a keyframe every segment (or every `gop`)."""
    url, muxer = publish_url(started, key)
    gop = gop or round(settings.live_segment_seconds * FPS)
    argv = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={FPS}",
            "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", f"{seconds:g}",
            "-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
            "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-c:a", "aac", "-f", muxer, url]
    return subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)


def push_when_armed(started: dict, seconds: float, **kwargs) -> subprocess.Popen:
    """The listener is armed within a second or two of the start: retry a refused connection until then."""
    deadline = time.monotonic() + 60
    while True:
        proc = pusher(started, seconds, **kwargs)
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            return proc  # connected and streaming
        if proc.returncode == 0 or time.monotonic() > deadline:
            return proc
        time.sleep(1)


def stream_doc(stream_id: str) -> dict:
    doc = catalog.stream_doc(catalog.LIVE, stream_id)
    assert doc is not None
    return doc


def finished(stream_id: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (d := stream_doc(stream_id))["status"] == "vod" and d, f"{stream_id} ended",
                    timeout=timeout)


def check_whole_recording(stream_id: str, at_least: int) -> list[dict]:
    """Every chunk is in the playlist, starts on a keyframe, and the finished live playlist decodes."""
    chunks = [c for c in catalog.chunk_docs(catalog.LIVE, stream_id) if c["chunk_index"] >= 0]
    assert len(chunks) >= at_least, f"{len(chunks)} chunks recorded, expected at least {at_least}"
    assert [c["chunk_index"] for c in chunks] == list(range(len(chunks))), "a chunk is missing"
    assert all(c["in_playlist"] for c in chunks), [c.get("reason") for c in chunks if not c["in_playlist"]]
    for c in chunks:
        data = storage.get_bytes(settings.bucket_live, storage.live_chunk_key(stream_id, c["chunk_index"]))
        assert first_frame_is_idr(data), f"chunk {c['chunk_index']} does not start with a keyframe"
    text = storage.get_text(settings.bucket_manifests, storage.live_playlist_key(stream_id)) or ""
    assert "#EXT-X-ENDLIST" in text
    signed = httpx.get(f"{settings.api_base}/streams/{stream_id}/live", timeout=15).json()["manifest_url"]
    media.decode_check(signed, timeout=120)  # a real decoder reads every segment the playlist lists
    return chunks


@pytest.mark.parametrize("ingest", ["rtmp", "srt"])
def test_a_pushed_stream_reaches_the_playlist_and_ends_with_its_publisher(ingest: str) -> None:
    started = start(ingest)
    assert started["ingest_url"] and started["ingest_key"] not in (started["ingest_url"] or "")
    proc = push_when_armed(started, seconds=9)
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    doc = finished(started["stream_id"])
    assert doc["end_reason"] == "publisher: POST /streams/end" and "ingest_error" not in doc
    chunks = check_whole_recording(started["stream_id"], at_least=4)
    live = m3u8.loads(storage.get_text(settings.bucket_manifests, storage.live_playlist_key(started["stream_id"])))
    assert len(live.segments) == min(len(chunks), settings.dvr_window_size)
    assert "ingest_key" not in httpx.get(f"{settings.api_base}/streams/{started['stream_id']}/metadata").text


@pytest.mark.parametrize("ingest", ["rtmp", "srt"])
def test_a_wrong_or_missing_key_is_refused(ingest: str) -> None:
    started = start(ingest)
    for key in ("not-the-key-0123456789abcdef", ""):
        proc = push_when_armed(started, seconds=4, key=key)
        assert proc.wait(60) != 0, f"a publisher with key {key!r} was accepted"
    time.sleep(2)
    assert not storage.list_keys(settings.bucket_live, f"{started['stream_id']}/"), "refused bytes reached S3"
    assert stream_doc(started["stream_id"])["status"] == "live", "a refused publisher ended the stream"
    proc = push_when_armed(started, seconds=5)  # the stream still waits for its own publisher
    assert proc.wait(60) == 0
    finished(started["stream_id"])


def test_a_second_publisher_on_the_same_key_is_refused() -> None:
    started = start("rtmp")
    first = push_when_armed(started, seconds=10)
    assert first.poll() is None, "the first publisher did not connect"
    second = pusher(started, seconds=3)
    assert second.wait(30) != 0, "a second publisher was accepted on the same key"
    assert first.wait(60) == 0
    finished(started["stream_id"])


def test_a_disconnect_mid_segment_ends_the_stream_cleanly() -> None:
    started = start("rtmp")
    proc = push_when_armed(started, seconds=60)
    time.sleep(3 * settings.live_segment_seconds + settings.live_segment_seconds / 2)  # inside a segment
    proc.kill()  # the cable pulled: no goodbye, the connection just closes
    proc.wait()
    finished(started["stream_id"])
    check_whole_recording(started["stream_id"], at_least=2)


def test_an_encoder_sending_no_keyframes_gets_a_clear_error() -> None:
    started = start("rtmp")
    proc = push_when_armed(started, seconds=40, gop=100_000)  # one keyframe at the start, then none
    doc = finished(started["stream_id"], timeout=180)
    proc.kill()
    proc.wait()
    assert doc.get("ingest_error", "").startswith("no keyframe from the encoder"), doc.get("ingest_error")
    assert NO_KEYFRAME.split("{")[0] in doc["ingest_error"] and "Keyframe Interval" in doc["ingest_error"]
    assert not storage.list_keys(settings.bucket_live, f"{started['stream_id']}/"), "a half segment was uploaded"
