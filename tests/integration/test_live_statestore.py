"""The state-store engine (LIVE_ENGINE=statestore) end to end on the embedded stack: real Kafka, S3, catalog and a
Spark query with RocksDB state, run in this process into a namespace of its own (beside whatever spark-live
runs), as `lab bench live --engine statestore` runs it.

A stream started through the API, chunks published with the producer's replay code; the query stopped
mid-stream and restarted with its last batch's commit removed, so Spark runs that batch again against the
state store's previous version (what a crash between the state commit and the batch commit leaves). After
the end marker: every chunk once, playlist sequence numbers contiguous, the recording whole, the state as the
checkpoint holds it.
"""

from __future__ import annotations

import shutil
import uuid

import httpx
import m3u8
import pytest
from prometheus_client import REGISTRY

from lab import catalog, storage
from lab.bench.live_engines import drop_namespace
from lab.config import settings
from lab.producer.replay import Replay, sample_segments
from lab.producer.stream import LiveStream
from lab.streaming import live, live_statestore
from lab.streaming.live_task import Outputs
from lab.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


@pytest.fixture(scope="module")
def spark():
    from lab.streaming import session

    spark = session.build("lab-test-statestore", master="local[2]", shuffle_partitions=2)
    yield spark
    spark.stop()


@pytest.fixture(scope="module")
def replay():
    headers = {"X-API-Key": settings.lab_api_key}
    with httpx.Client(base_url=settings.api_base, headers=headers, timeout=30) as api:
        yield Replay(sample_segments(3, resolution="320x180"), api=api)


@pytest.fixture
def outputs():
    outputs = Outputs(f"test-statestore-{uuid.uuid4().hex[:6]}")
    yield outputs
    drop_namespace(outputs)
    shutil.rmtree(live.checkpoint_dir(f"{live.QUERY}-{outputs.prefix}", "statestore"), ignore_errors=True)


def start(spark, outputs: Outputs):
    query = live.start(spark, engine="statestore", outputs=outputs, starting_offsets="latest")
    wait_for(lambda: query.lastProgress is not None or not query.isActive, "the query's first batch", 180)
    assert query.isActive, query.exception()
    return query


def publish(replay: Replay, stream: LiveStream, count: int) -> None:
    for _ in range(count):
        replay.send(stream)
    assert replay.producer.flush(10) == 0


def chunk_docs(outputs: Outputs, stream_id: str) -> list[dict]:
    """A filter, not `catalog.chunk_docs`: a bench namespace's stream document is only a view (written late)."""
    query = {"stream_id": stream_id, "chunk_index": {"$gte": 0}}
    return sorted(catalog.collection(outputs.chunks).find(query, {"_id": 0}), key=lambda d: d["chunk_index"])


def playlist(outputs: Outputs, stream_id: str) -> m3u8.M3U8:
    return m3u8.loads(storage.get_text(settings.bucket_manifests, outputs.playlist_key(stream_id)) or "")


def uris(stream_id: str, indexes) -> list[str]:
    return [f"../../{settings.bucket_live}/{storage.live_chunk_key(stream_id, i)}" for i in indexes]


def duplicates_skipped() -> float:
    return REGISTRY.get_sample_value("live_duplicates_skipped_total") or 0.0


def drop_last_commit(checkpoint) -> int:
    """Spark runs a batch again when its offsets are logged and its commit is not."""
    last = max(int(p.name) for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
    for name in (str(last), f".{last}.crc"):
        (checkpoint / "commits" / name).unlink(missing_ok=True)
    return last


def test_statestore_engine_restarted_with_a_replayed_batch_records_every_chunk_once(spark, replay, outputs):
    checkpoint = live.checkpoint_dir(f"{live.QUERY}-{outputs.prefix}", "statestore")
    stream = replay.start_stream("integration: state store engine")
    sid = stream.stream_id
    query = start(spark, outputs)
    try:
        publish(replay, stream, 3)
        query.processAllAvailable()
        assert [d["chunk_index"] for d in chunk_docs(outputs, sid)] == [0, 1, 2]
        assert [s.uri for s in playlist(outputs, sid).segments] == uris(sid, range(3))
    finally:
        query.stop()
    drop_last_commit(checkpoint)
    publish(replay, stream, 3)  # while the query is down
    before = duplicates_skipped()
    query = start(spark, outputs)
    try:
        query.processAllAvailable()
        replay.end(stream)
        wait_for(lambda: (catalog.stream_doc(outputs.chunks, sid) or {}).get("status") == "vod",
                 "the stream's end in the namespace", 120)
        query.processAllAvailable()  # its batch committed: the state store's new version with it
    finally:
        query.stop()

    assert duplicates_skipped() > before, "the batch whose commit was removed did not run again"
    docs = chunk_docs(outputs, sid)
    assert [d["chunk_index"] for d in docs] == list(range(6)), "a chunk was lost or duplicated"
    assert [d["playlist_seq"] for d in docs] == list(range(6)) and all(d["in_playlist"] for d in docs)
    assert all(d["gap_before"] == 0 and d["checksum_ok"] for d in docs)
    doc = catalog.stream_doc(outputs.chunks, sid)
    assert doc["status"] == "vod" and doc["recorded_chunks"] == 6 and len(doc["status_history"]) == 1
    last = playlist(outputs, sid)
    assert last.is_endlist and last.media_sequence == 0 and [s.uri for s in last.segments] == uris(sid, range(6))
    final = m3u8.loads(storage.get_text(settings.bucket_manifests, outputs.recording_key(sid)) or "")
    assert final.is_endlist and final.playlist_type == "vod" and [s.uri for s in final.segments] == uris(sid, range(6))
    state = live_statestore.read_states(spark, checkpoint)[sid]
    assert (state.status, state.verified_count, state.last_sequence) == ("vod", 6, 5)
