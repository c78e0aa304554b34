"""The VOD pipeline end to end on the embedded stack: a real clip uploaded through the API is transcoded by
the Spark VOD query into a playable ABR HLS ladder; a tampered raw segment fails its stream; bad files are
refused at the door; and a replay from an older checkpoint changes nothing.

Clips are small (854x480 -> 480p + 360p) so the suite stays quick on a 2-core laptop. Deadlines are
generous and never what a test asserts on.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from lab import catalog, events, media, storage, topics
from lab import stack as lab_stack
from lab.config import settings
from lab.stack import supervisor
from lab.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

KEY = {"X-API-Key": settings.lab_api_key}
READY_TIMEOUT_S = 240.0
CHECKPOINT = settings.lab_state_dir / "checkpoints" / "vod"
RUNGS = ["480p", "360p"]


# --- helpers -------------------------------------------------------------------------------------------



def stream_doc(stream_id: str) -> dict[str, Any]:
    return catalog.stream_doc(catalog.VOD, stream_id) or {}


def wait_finished(stream_id: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        doc = stream_doc(stream_id)
        return doc if doc.get("status") in ("ready", "failed") else None

    return wait_for(finished, lambda: f"{stream_id} to finish; status reached: "
                                      f"{stream_doc(stream_id).get('status', 'no document')}", READY_TIMEOUT_S)


def upload(api: httpx.Client, path: Path, title: str) -> httpx.Response:
    with open(path, "rb") as f:
        return api.post("/vod/upload", headers=KEY, files={"file": (path.name, f, "application/octet-stream")},
                        data={"title": title})


def upload_ok(api: httpx.Client, path: Path, title: str) -> str:
    resp = upload(api, path, title)
    assert resp.status_code == 202, resp.text
    return resp.json()["stream_id"]


def spark_vod_metrics() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://{settings.lab_host}:{settings.spark_vod_metrics_port}/metrics", timeout=5).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def objects(stream_id: str) -> dict[tuple[str, str], tuple[str, int, Any]]:
    """(bucket, key) -> (ETag, size, LastModified) of everything stored for a stream."""
    found = {}
    for bucket in (settings.bucket_vod_raw, settings.bucket_vod_variants, settings.bucket_manifests):
        for page in storage.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{stream_id}/"):
            for obj in page.get("Contents", []):
                found[(bucket, obj["Key"])] = (obj["ETag"], obj["Size"], obj["LastModified"])
    return found


def catalog_docs(stream_id: str) -> list[dict[str, Any]]:
    return list(catalog.collection(catalog.VOD).find({"stream_id": stream_id}).sort("chunk_index", 1))


def restart_spark_vod() -> None:
    lab_stack.up(["spark-vod"], report=lambda _: None)


@pytest.fixture(scope="module")
def api():
    with httpx.Client(base_url=settings.api_base, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("vod-clips")
    media.make_test_clip(folder / "twenty.mp4", 20, 854, 480)
    media.make_test_clip(folder / "short.mp4", 6, 640, 360)
    return folder


@pytest.fixture(scope="module")
def ready_stream(api, clips, tmp_path_factory) -> tuple[str, Path]:
    """The 20 s clip, uploaded and ready; plus a copy of the VOD query's checkpoint from before its upload
    (the "older checkpoint" the replay test restarts from)."""
    snapshot = tmp_path_factory.mktemp("vod-checkpoint") / "vod"
    wait_for(lambda: (CHECKPOINT / "commits").is_dir(), "the VOD query's first checkpoint", timeout=60)
    shutil.copytree(CHECKPOINT, snapshot)
    stream_id = upload_ok(api, clips / "twenty.mp4", f"integration: ready {uuid.uuid4().hex[:6]}")
    doc = wait_finished(stream_id)
    assert doc["status"] == "ready", f"{stream_id} {doc['status']}: {doc.get('failure_reason')}"
    return stream_id, snapshot


# --- a clip reaches ready, and plays -------------------------------------------------------------------

def test_upload_reaches_ready_with_every_field(api, ready_stream):
    stream_id, _ = ready_stream
    doc = stream_doc(stream_id)
    assert [h["status"] for h in doc["status_history"]] == ["uploaded", "processing", "transcoding", "ready"]
    times = [h["at"] for h in doc["status_history"]]
    assert times == sorted(times)
    assert doc["variants_generated"] == RUNGS
    assert doc["manifest_path"] == f"{settings.bucket_manifests}/{stream_id}/vod_manifest.m3u8"
    assert doc["processing_latency_ms"] == pytest.approx(
        (doc["ready_at"] - doc["uploaded_at"]).total_seconds() * 1000, abs=1)
    chunks = catalog.chunk_docs(catalog.VOD, stream_id)
    assert len(chunks) == doc["total_chunks"] == 10  # 20 s in 2 s segments (tests/stack.env)
    assert {c["status"] for c in chunks} == {"done"}
    content = api.get(f"/content/{stream_id}").json()
    assert content["status"] == "ready" and content["variants"] == RUNGS
    head = storage.s3().head_object(Bucket=settings.bucket_manifests, Key=storage.vod_master_key(stream_id))
    assert head["CacheControl"] == storage.IMMUTABLE


def test_playback_url_decodes_every_rendition(api, ready_stream):
    stream_id, _ = ready_stream
    resp = api.get(f"/vod/{stream_id}/manifest")
    assert resp.status_code == 200, resp.text
    url = resp.json()["manifest_url"]
    master = m3u8.loads(httpx.get(url).text)
    assert [p.stream_info.resolution for p in master.playlists] == [(854, 480), (640, 360)]
    assert all(p.stream_info.codecs.startswith("avc1.") for p in master.playlists)
    media.decode_check(url)  # ffmpeg -i <url> -map 0 -f null -: every variant, end to end, no error


def test_segments_start_with_an_idr_and_line_up_across_renditions(ready_stream, tmp_path):
    stream_id, _ = ready_stream
    chunks = catalog.chunk_docs(catalog.VOD, stream_id)
    frame = 1 / 30
    starts: dict[str, list[float]] = {}
    for rung in RUNGS:
        playlist = m3u8.loads(storage.get_text(settings.bucket_manifests,
                                               storage.vod_media_playlist_key(stream_id, rung)))
        assert playlist.is_endlist and playlist.playlist_type == "vod"
        assert len(playlist.segments) == len(chunks)
        for chunk, segment in zip(chunks, playlist.segments, strict=True):
            key = storage.variant_segment_key(stream_id, rung, chunk["chunk_index"])
            assert segment.uri == f"../../{settings.bucket_vod_variants}/{key}"
            data = storage.get_bytes(settings.bucket_vod_variants, key)
            assert media.sha256_bytes(data) == chunk["variants"][rung]["sha256"], key
            assert media.first_frame_is_idr(data), f"{key} does not start with an IDR frame"
            path = tmp_path / f"{rung}-{chunk['chunk_index']}.ts"
            path.write_bytes(data)
            starts.setdefault(rung, []).append(media.video_start_pts(path))
    for index, chunk in enumerate(chunks):
        raw = tmp_path / f"raw-{index}.ts"
        raw.write_bytes(storage.get_bytes(settings.bucket_vod_raw, chunk["raw_key"]))
        expected = media.video_start_pts(raw)
        for rung in RUNGS:
            assert abs(starts[rung][index] - expected) < frame, f"{rung} segment {index} starts off the raw one"
    # Continuous timeline: each segment starts where the previous one ended.
    for index in range(1, len(chunks)):
        gap = starts[RUNGS[0]][index] - starts[RUNGS[0]][index - 1] - chunks[index - 1]["duration_ms"] / 1000
        assert abs(gap) < frame, f"segment {index} starts {gap:+.3f} s off the end of the previous one"


def test_metrics_of_the_vod_query():
    samples = spark_vod_metrics()
    for rung in RUNGS:
        assert samples.get(("vod_variants_generated_total", (("rung", rung),)), 0) >= 10
    # One ffmpeg run per segment makes every rung: one observation per segment, and no rung label.
    assert samples.get(("vod_transcode_seconds_count", ()), 0) >= 10
    assert not any(name.startswith("vod_transcode_seconds") and "rung" in dict(labels) for name, labels in samples)
    assert samples.get(("chunk_processing_latency_seconds_count", (("stream_type", "vod"),)), 0) >= 10
    assert samples.get(("vod_streams_finished_total", (("status", "ready"),)), 0) >= 1


# --- what must fail, fails -----------------------------------------------------------------------------

def test_a_raw_segment_changed_after_its_checksum_fails_the_stream(api, clips, ready_stream):
    supervisor.stop("spark-vod")
    try:
        stream_id = upload_ok(api, clips / "short.mp4", "integration: tampered segment")
        key = storage.raw_segment_key(stream_id, 1)
        # Another real segment's bytes: valid video, so only the checksum can tell.
        other = storage.get_bytes(settings.bucket_vod_raw, storage.raw_segment_key(stream_id, 0))
        storage.put_segment(settings.bucket_vod_raw, key, other, media.sha256_bytes(other))
    finally:
        restart_spark_vod()
    doc = wait_finished(stream_id)
    assert doc["status"] == "failed"
    assert doc["failure_reason"].startswith("segment 1: checksum mismatch"), doc["failure_reason"]
    assert doc["status_history"][-1]["status"] == "failed"
    bad = catalog.collection(catalog.VOD).find_one({"stream_id": stream_id, "chunk_index": 1})
    assert bad["status"] == "failed" and bad["error_kind"] == "checksum"
    assert storage.get_text(settings.bucket_manifests, storage.vod_master_key(stream_id)) is None
    assert spark_vod_metrics().get(("chunk_checksum_failures_total", (("stream_type", "vod"),)), 0) >= 1
    assert api.get(f"/vod/{stream_id}/manifest").status_code == 409


def _truncated_mp4(clips: Path) -> bytes:
    data = (clips / "twenty.mp4").read_bytes()
    return data[: len(data) // 2]


@pytest.mark.parametrize(("name", "make", "status", "detail"), [
    ("notes.txt", lambda clips: b"this is a text file, not a video\n" * 50, 415, "file: not a readable media file"),
    ("empty.mp4", lambda clips: b"", 400, "file: the uploaded file is empty"),
    ("cut.mp4", _truncated_mp4, 415, "file: truncated"),
])
def test_bad_files_are_refused_before_anything_is_stored(api, clips, tmp_path, name, make, status, detail):
    raw_before = set(storage.list_keys(settings.bucket_vod_raw))
    path = tmp_path / name
    path.write_bytes(make(clips))
    title = f"integration: refused {uuid.uuid4().hex[:8]}"
    resp = upload(api, path, title)
    assert resp.status_code == status and resp.json()["detail"].startswith(detail), resp.text
    assert catalog.collection(catalog.VOD).count_documents({"title": title}) == 0
    # Anything new in vod-raw belongs to a registered stream (another upload), never to this one.
    new = set(storage.list_keys(settings.bucket_vod_raw)) - raw_before
    orphans = {k for k in new if catalog.stream_doc(catalog.VOD, k.split("/")[0]) is None}
    assert not orphans


def test_an_upload_kafka_does_not_accept_is_rolled_back(clips, monkeypatch):
    """The rollback (`ingest._discard`) end to end: the upload path runs in-process against the stack's real
    S3 and catalog, with a real Kafka producer pointed at a closed port. Segments are stored and documents
    registered before the events are published, so only the rollback can leave nothing behind."""
    from lab import ingest

    with socket.socket() as sock:  # a port nobody listens on: bind it, then let it go
        sock.bind((settings.lab_host, 0))
        closed = sock.getsockname()[1]
    producer = topics.producer(**{"bootstrap.servers": f"{settings.lab_host}:{closed}",
                                  "message.timeout.ms": 3000, "client.id": "test-vod-rollback"})
    created: list[str] = []
    real_new_id = events.new_vod_id
    monkeypatch.setattr(ingest.events, "new_vod_id", lambda: created.append(real_new_id()) or created[-1])
    with open(clips / "short.mp4", "rb") as f, pytest.raises(RuntimeError, match="Kafka did not accept"):
        ingest.ingest(f, "short.mp4", "integration: kafka unreachable", producer)
    assert len(created) == 1
    stream_id = created[0]
    assert storage.list_keys(settings.bucket_vod_raw, f"{stream_id}/") == []
    assert catalog.collection(catalog.VOD).count_documents({"stream_id": stream_id}) == 0


def test_an_event_of_an_unknown_stream_is_dead_lettered(ready_stream):
    stream_id = events.new_vod_id()
    event = events.VodChunkEvent(
        published_at_ms=events.now_ms(), stream_id=stream_id, chunk_index=0, total_chunks=1,
        raw_key=storage.raw_segment_key(stream_id, 0), checksum_sha256="0" * 64, size_bytes=1, start_ms=0,
        duration_ms=2000, rungs=["360p"], source_height=360, audio_track_id="a", video_track_id="v")
    where: list[tuple[int, int]] = []
    producer = topics.producer(**{"client.id": "test-vod-dead-letter"})
    topics.publish(producer, settings.vod_topic, stream_id, events.encode(event),
                   lambda err, msg: where.append((msg.partition(), msg.offset())) if err is None else None)
    assert producer.flush(10) == 0 and where
    record = _dead_letter(where[0])
    assert record["reason"].startswith("stream_id: unknown stream"), record["reason"]
    assert catalog.stream_doc(catalog.VOD, stream_id) is None


def _dead_letter(where: tuple[int, int]) -> dict[str, Any]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": f"test-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([settings.dead_letter_topic])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            record = json.loads(msg.value())
            if (record["source_topic"], record["source_partition"], record["source_offset"]) == \
                    (settings.vod_topic, *where):
                return record
    finally:
        consumer.close()
    raise AssertionError(f"no dead letter for {settings.vod_topic}{list(where)}")


# --- replay --------------------------------------------------------------------------------------------

def end_offsets() -> dict[str, int]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": f"test-{uuid.uuid4().hex}"})
    try:
        parts = consumer.list_topics(settings.vod_topic, timeout=10).topics[settings.vod_topic].partitions
        return {str(p): consumer.get_watermark_offsets(TopicPartition(settings.vod_topic, p), timeout=10)[1]
                for p in parts}
    finally:
        consumer.close()


def committed_offsets(checkpoint: Path) -> dict[str, int] | None:
    """The Kafka offsets of the checkpoint's last COMMITTED batch (offsets/N with commits/N), from Spark's
    own files: `offsets/N` is a version line, the batch metadata, then one JSON line per source."""
    commits = sorted((int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")), reverse=True)
    if not commits:
        return None
    lines = (checkpoint / "offsets" / str(commits[0])).read_text().splitlines()
    return {k: int(v) for k, v in json.loads(lines[-1])[settings.vod_topic].items()}


def test_replay_from_an_older_checkpoint_changes_nothing(ready_stream):
    stream_id, snapshot = ready_stream
    docs, stored = catalog_docs(stream_id), objects(stream_id)
    assert committed_offsets(snapshot) != end_offsets(), "the snapshot must be behind: there is nothing to replay"
    supervisor.stop("spark-vod")
    try:
        shutil.rmtree(CHECKPOINT)
        shutil.copytree(snapshot, CHECKPOINT)
    finally:
        restart_spark_vod()
    target = end_offsets()

    def replayed_past_target() -> bool:
        # batches of at most vod.MAX_SEGMENTS_PER_BATCH while the producer keeps publishing: a batch's end may
        # step over the target, never stop on it
        committed = committed_offsets(CHECKPOINT) or {}
        return all(committed.get(part, -1) >= offset for part, offset in target.items())

    wait_for(replayed_past_target,
             lambda: f"the VOD query to replay up to {target} (committed: {committed_offsets(CHECKPOINT)})",
             READY_TIMEOUT_S)
    assert catalog_docs(stream_id) == docs
    assert objects(stream_id) == stored
