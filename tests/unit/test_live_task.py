"""The executor engine's exactly-once effect, without a stack: the real `process_received`, with the bucket
and the catalog replaced by dicts, crashed at each of its writes in turn and then replayed."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import BulkWriteError

from lab import catalog, events, hls, storage
from lab.config import settings
from lab.streaming import live_io, live_task
from lab.streaming.common import Received
from lab.streaming.live_logic import StreamState

SID = "live-0123456789"
NOW = events.now_ms()


class Crash(Exception):
    """Stands in for a killed process: nothing after it runs."""


class FakeCollection:
    def __init__(self, world: World) -> None:
        self.world = world
        self.docs: dict[str, dict[str, Any]] = {}

    def insert_many(self, docs: list[dict[str, Any]], ordered: bool = True):
        for n, doc in enumerate(docs):
            if n == len(docs) // 2:  # part-way through the batch
                self.world.maybe_crash("insert")
            if doc["_id"] in self.docs:
                raise BulkWriteError({"writeErrors": [{"index": n, "code": 11000}], "nInserted": n})
            self.docs[doc["_id"]] = dict(doc)
        return type("Result", (), {"inserted_ids": [d["_id"] for d in docs]})()

    def update_one(self, query: dict, update: dict, upsert: bool = False) -> None:
        doc = self.docs.setdefault(query["_id"], {"_id": query["_id"]})
        doc.update(update.get("$set", {}))
        for key, value in update.get("$push", {}).items():
            doc.setdefault(key, []).append(value)
        for key, value in update.get("$addToSet", {}).items():
            if value not in doc.setdefault(key, []):
                doc[key].append(value)


class World:
    """The bucket and the catalog as dicts; `crash_at` names the write that kills the process (once)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, crash_at: str | None = None, nth: int = 1) -> None:
        self.objects: dict[str, bytes] = {}
        self.collections: dict[str, FakeCollection] = {}
        self.crash_at, self.nth = crash_at, nth
        self.writes: list[str] = []
        self.catalog_reads = 0
        monkeypatch.setattr(storage, "get_text", self.get_text)
        monkeypatch.setattr(storage, "put", self.put)
        monkeypatch.setattr(storage, "put_playlist", self.put_playlist)
        monkeypatch.setattr(catalog, "collection", self.collection)
        monkeypatch.setattr(catalog, "find_by_id", self.find_by_id)
        monkeypatch.setattr(live_io, "verify_segment", lambda event: None)
        monkeypatch.setattr(live_io.ViewWriter, "submit", lambda *a: None)
        self.collection(catalog.LIVE).docs[catalog.stream_doc_id(SID)] = {"status": "live"}

    def collection(self, name: str) -> FakeCollection:
        return self.collections.setdefault(name, FakeCollection(self))

    def find_by_id(self, name: str, _id: str, projection: Any = None) -> dict[str, Any] | None:
        self.catalog_reads += 1
        return self.collection(name).docs.get(_id)

    def get_text(self, bucket: str, key: str) -> str | None:
        data = self.objects.get(key)
        return None if data is None else data.decode()

    def maybe_crash(self, kind: str) -> None:
        """Crash at the nth write of this kind."""
        if self.crash_at == kind:
            self.nth -= 1
            if self.nth == 0:
                self.crash_at = None
                raise Crash(kind)

    def _write(self, kind: str, key: str, body: bytes) -> None:
        self.maybe_crash(kind)
        self.writes.append(kind)
        self.objects[key] = body

    def put(self, bucket: str, key: str, body: bytes, **_: Any) -> None:
        self._write("state" if key.endswith(live_task.STATE_NAME) else "page", key, body)

    def put_playlist(self, bucket: str, key: str, text: str, **_: Any) -> None:
        self._write("playlist", key, text.encode())

    def outcome(self) -> tuple:
        """What a player and a reader of the catalog see (times left out: they differ between runs)."""
        volatile = {"recorded_at", "manifest_updated_at", "processing_latency_ms", "batch_id"}
        docs = {name: {i: {k: v for k, v in d.items() if k not in volatile} for i, d in c.docs.items()}
                for name, c in self.collections.items()}
        return dict(self.objects), docs


def chunk(seq: int) -> Received:
    event = events.LiveChunkEvent(
        stream_id=SID, chunk_index=seq, sequence_number=seq, object_key=f"{SID}/chunks/{seq}.ts",
        checksum_sha256="a" * 64, size_bytes=1000, duration_ms=2000, keyframe_aligned=True,
        audio_track_id="a", video_track_id="v", published_at_ms=NOW)
    return Received(event, partition=2, offset=100 + seq, kafka_timestamp_ms=NOW)


def end(offset: int) -> Received:
    return Received(events.LiveEndEvent(stream_id=SID, published_at_ms=NOW), 2, offset, NOW)


BATCHES = [[chunk(i) for i in range(0, 3)], [chunk(i) for i in range(3, 7)], [chunk(7), end(200)]]


def run(world: World, batches: list[list[Received]]) -> list[live_task.Summary]:
    """Each batch until it goes through; a crashed batch is replayed whole, with the same offsets (Spark's
    offset log; a plain consumer that had not committed)."""
    summaries = []
    for batch_id, batch in enumerate(batches):
        while True:
            try:
                summaries.append(live_task.process_received(batch, batch_id, live_task.Outputs()))
                break
            except Crash:
                continue
    return summaries


@pytest.fixture(autouse=True)
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live_task, "RECORDING_PAGE", 3)  # the 8 segments fill two pages and open a third


# every kind of write, in the middle batch: (kind, which write of that kind)
CRASHES = [("page", 1), ("page", 2), ("playlist", 2), ("insert", 3), ("insert", 4), ("state", 2)]


@pytest.mark.parametrize(("crash_at", "nth"), CRASHES)
def test_a_crash_at_any_write_then_the_replay_leaves_what_an_uninterrupted_run_leaves(monkeypatch, crash_at, nth):
    clean = World(monkeypatch)
    run(clean, BATCHES)
    crashed = World(monkeypatch, crash_at, nth)
    run(crashed, BATCHES)
    assert crashed.crash_at is None, f"no {crash_at} write happened"
    assert crashed.outcome() == clean.outcome()
    objects, docs = clean.outcome()
    assert sorted(docs[catalog.LIVE]) == sorted([catalog.doc_id(SID, i) for i in range(8)]
                                                + [catalog.stream_doc_id(SID)])
    final = objects[storage.live_playlist_key(SID)].decode()
    assert final.count(".ts") == 8 and "#EXT-X-ENDLIST" in final
    recording = hls.parse(objects[storage.recording_playlist_key(SID)].decode())
    assert recording.playlist_type == "vod" and recording.media_sequence == 0 and len(recording.segments) == 8
    assert docs[catalog.LIVE][catalog.stream_doc_id(SID)]["recording_path"].endswith(
        storage.recording_playlist_key(SID))


def test_the_end_only_adds_endlist_to_the_live_playlist(monkeypatch):
    """RFC 8216 6.2.1 across the end: the last live version -> the ended one is a legal reload, even when the
    window has slid (the recording is a playlist of its own)."""
    monkeypatch.setattr(live_io, "settings", settings.model_copy(update={"dvr_window_size": 3}))
    world = World(monkeypatch)
    run(world, BATCHES[:2])
    live = hls.parse(world.objects[storage.live_playlist_key(SID)].decode())
    run(world, BATCHES[2:])
    ended = hls.parse(world.objects[storage.live_playlist_key(SID)].decode())
    assert live.media_sequence == 4 and not live.is_endlist
    assert ended.is_endlist and ended.media_sequence == 5, "the window slid by the last chunk, then ENDLIST"
    assert hls.reload_violations(live, ended) == []


def test_a_crash_after_the_state_write_replays_nothing_and_reads_no_catalog(monkeypatch):
    """The state object's offset says the batch is applied: the replay skips every event of it."""
    world = World(monkeypatch)
    run(world, BATCHES[:2])
    reads = world.catalog_reads
    replay = live_task.process_received(BATCHES[1], 1, live_task.Outputs())
    assert replay.replayed == len(BATCHES[1]) and replay.chunks == 0
    assert world.catalog_reads == reads, "a replay of an applied batch asked the catalog"


def test_the_state_object_round_trips_and_the_recording_pages_hold_every_segment(monkeypatch):
    world = World(monkeypatch)
    run(world, BATCHES[:2])
    stored = live_task.read_stored(live_task.Outputs(), SID)
    assert stored is not None and (stored.partition, stored.offset) == (2, 106)
    assert stored.state.verified_count == 7 and stored.state.last_sequence == 6
    assert [e.chunk_index for e in live_task.read_recording(live_task.Outputs(), stored)] == list(range(7))
    assert live_task.Stored.from_json(SID, stored.to_json().decode()) == stored


def test_a_stream_never_started_is_unknown(monkeypatch):
    world = World(monkeypatch)
    del world.collection(catalog.LIVE).docs[catalog.stream_doc_id(SID)]
    assert live_task.read_stored(live_task.Outputs(), SID) is None
    assert live_task.read_stored(live_task.Outputs("bench-x"), SID) is None


def test_a_bench_namespace_starts_fresh_and_writes_apart(monkeypatch):
    world = World(monkeypatch)
    outputs = live_task.Outputs("bench-plain")
    live_task.process_received(BATCHES[0], 0, outputs)
    assert storage.live_playlist_key(SID) not in world.objects
    assert outputs.playlist_key(SID) in world.objects and outputs.state_key(SID) in world.objects
    assert sorted(world.collections) == sorted([catalog.LIVE, outputs.chunks, outputs.states])
    assert live_task.read_stored(outputs, SID).state.last_sequence == 2
    assert StreamState(SID).version == 0


def test_parallel_io_nested_inside_the_pool_runs_inline_instead_of_deadlocking():
    """More outer tasks than pool threads, each needing inner parallel reads (a takeover of many streams)."""
    import threading

    from lab.streaming import live_io

    results: list = []
    outer = threading.Thread(target=lambda: results.extend(live_io.parallel(
        lambda n: sum(live_io.parallel(lambda k: k * n, range(3))), range(4 * live_io.IO_THREADS))), daemon=True)
    outer.start()
    outer.join(timeout=20)
    assert not outer.is_alive(), "nested parallel() deadlocked the I/O pool"
    assert results == [3 * n for n in range(4 * live_io.IO_THREADS)]
