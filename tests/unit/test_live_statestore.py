"""The state-store engine without Spark: its state and summary rows as strings, and its exactly-once effect:
the real `process_group` over the bucket and catalog of test_live_task's dicts and a state store that, like
Spark's, keeps a batch's state changes only when the batch commits, crashed at each write and replayed."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime

import pandas as pd
import pytest

from lab import catalog, events, storage
from lab.streaming import live, live_statestore, live_task
from lab.streaming.common import Received, decode_rows
from lab.streaming.live_logic import Entry, StreamState
from lab.streaming.live_task import Outputs, Summary
from lab.streaming.plain import Record
from tests.unit.test_live_task import BATCHES, SID, Crash, World


class FakeValueState:
    def __init__(self, world: World) -> None:
        self.world, self.value = world, None

    def get(self):
        return self.value

    def update(self, value: tuple) -> None:
        self.world.maybe_crash("state")
        self.value = value


class FakeListState:
    def __init__(self) -> None:
        self.items: list[tuple] = []

    def get(self):
        return iter(list(self.items))

    def put(self, items: list[tuple]) -> None:
        self.items = list(items)

    def appendList(self, items: list[tuple]) -> None:
        self.items += list(items)

    def clear(self) -> None:
        self.items = []


def processor(world: World) -> live_statestore.LiveStreamProcessor:
    store = live_statestore.LiveStreamProcessor(Outputs())
    store.state, store.recording = FakeValueState(world), FakeListState()
    return store


def as_records(batch: list[Received]) -> list[Record]:
    return [Record(events.encode(r.event), "live-chunks", r.partition, r.offset,
                   datetime.fromtimestamp(r.kafka_timestamp_ms / 1000, UTC)) for r in batch]


def run(world: World, store: live_statestore.LiveStreamProcessor) -> list[Summary]:
    """Each batch until it commits; a failed attempt's state changes are dropped (the state store's version
    is committed with the batch), and the batch is replayed with the same rows."""
    summaries = []
    for batch_id, batch in enumerate(BATCHES):
        while True:
            saved = copy.deepcopy((store.state.value, store.recording.items))
            try:
                summaries.append(live_statestore.process_group(store, SID, as_records(batch), batch_id, Outputs()))
                world.maybe_crash("commit")  # everything written, the batch not yet committed
                break
            except Crash:
                store.state.value, store.recording.items = saved
    return summaries


def run_executors(world: World) -> None:
    for batch_id, batch in enumerate(BATCHES):
        live_task.process_received(decode_rows(as_records(batch))[0], batch_id, Outputs())


def playlists(world: World) -> dict[str, bytes]:
    return {k: v for k, v in world.objects.items() if k.endswith(".m3u8")}


CRASHES = [("playlist", 2), ("insert", 3), ("insert", 4), ("state", 2), ("state", 3), ("commit", 2),
           ("commit", 3)]


@pytest.mark.parametrize(("crash_at", "nth"), CRASHES)
def test_a_crash_anywhere_then_the_replay_leaves_what_an_uninterrupted_run_leaves(monkeypatch, crash_at, nth):
    clean = World(monkeypatch)
    run(clean, processor(clean))
    crashed = World(monkeypatch, crash_at, nth)
    summaries = run(crashed, processor(crashed))
    assert crashed.crash_at is None, f"no {crash_at} write happened"
    assert crashed.outcome() == clean.outcome()
    assert sum(s.chunks for s in summaries) >= 8 and sum(s.dead_letters for s in summaries) == 0
    final = clean.objects[storage.live_playlist_key(SID)].decode()
    assert final.count(".ts") == 8 and "#EXT-X-ENDLIST" in final


def test_it_writes_the_same_playlists_and_documents_as_the_executor_engine(monkeypatch):
    executors = World(monkeypatch)
    run_executors(executors)
    statestore = World(monkeypatch)
    run(statestore, processor(statestore))
    assert playlists(statestore) == playlists(executors)
    assert statestore.outcome()[1] == executors.outcome()[1]
    assert not any(k.endswith(live_task.STATE_NAME) for k in statestore.objects), "an S3 state object"


def test_the_state_after_the_end_is_small_and_refuses_stray_chunks(monkeypatch):
    world = World(monkeypatch)
    store = processor(world)
    run(world, store)
    state = live_statestore.state_from_json(SID, store.state.value[0])
    assert state.status == "vod" and state.verified_count == 8 and store.recording.items == []
    stray = BATCHES[0][:1]
    summary = live_statestore.process_group(store, SID, as_records(stray), 9, Outputs())
    assert summary.chunks == 0 and summary.duplicates == 1  # chunk 0 is recorded: found by `_id`


def test_a_stream_never_started_is_dead_lettered_and_keeps_no_state(monkeypatch):
    world = World(monkeypatch)
    del world.collection(catalog.LIVE).docs[catalog.stream_doc_id(SID)]
    sent = []
    monkeypatch.setattr(live_statestore.live_io, "dead_letter", lambda item, reason: sent.append(reason))
    monkeypatch.setattr(live_statestore, "flush_dead_letters", lambda: None)
    store = processor(world)
    summary = live_statestore.process_group(store, SID, as_records(BATCHES[0]), 0, Outputs())
    assert summary.dead_letters == 3 and all(r.startswith("stream_id: no live stream") for r in sent)
    assert store.state.value is None and world.writes == []


def test_state_and_summary_rows_round_trip():
    state = StreamState(SID, "live", version=3, last_sequence=12, verified_count=11,
                        window=(Entry(11, 9, 2000), Entry(12, 10, 1980)), target_duration=2, missing_total=1,
                        rejected_total=1)
    assert live_statestore.state_from_json(SID, live_statestore.state_to_json(state)) == state
    summary = Summary(chunks=4, gaps=1, duplicates=2, latencies_s=[0.2, 0.3], waits_s=[0.1],
                      playlist_writes=Counter({"live": 2, "live_final": 1}),
                      catalog_calls=Counter({(catalog.LIVE, "insert"): 2, (catalog.LIVE_STATE, "insert"): 1}),
                      stages={"verify": 0.01, "playlist": 0.02})
    assert live_statestore.summary_from_json(live_statestore.summary_to_json(summary)) == summary


def test_the_groups_pandas_rows_become_kafka_records():
    ms = 1_764_460_800_123
    frame = pd.DataFrame({"stream_key": [SID], "value": [b"{}"], "topic": ["live-chunks"], "partition": [3],
                          "offset": [42], "timestamp_ms": [ms]})
    (record,) = live_statestore.records([frame])
    assert (record.value, record.topic, record.partition, record.offset) == (b"{}", "live-chunks", 3, 42)
    assert record.timestamp == datetime.fromtimestamp(ms / 1000, UTC)


def test_the_engine_has_its_own_checkpoint_and_batch_function():
    assert live.checkpoint_dir("live", "statestore") != live.checkpoint_dir("live", "executors")
    assert live.checkpoint_dir("live", "driver") == live.checkpoint_dir("live", "executors")
    assert live.batch_function("statestore", Outputs("bench-x")) is live_statestore.export_summaries
