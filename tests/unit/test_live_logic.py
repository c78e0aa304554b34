"""The live query's decisions, without Spark, Kafka, S3 or the catalog: state + events -> plan."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import m3u8
import pytest

from lab import catalog, events
from lab.streaming.common import Received
from lab.streaming.live_logic import (
    Entry,
    StreamState,
    batch_documents,
    chunk_problem,
    needs_verification,
    plan_stream,
    render_playlist,
    rounded_seconds,
)

SID = "live-0123456789"
NOW = events.now_ms()
WINDOW = 3


def chunk(seq: int, *, duration_ms: int = 2000, index: int | None = None, key: str | None = None) -> Received:
    index = seq if index is None else index
    event = events.LiveChunkEvent(
        stream_id=SID, chunk_index=index, sequence_number=seq, object_key=key or f"{SID}/chunks/{index}.ts",
        checksum_sha256="a" * 64, size_bytes=1000, duration_ms=duration_ms, keyframe_aligned=True,
        audio_track_id="a", video_track_id="v", published_at_ms=NOW)
    return Received(event, partition=0, offset=seq, kafka_timestamp_ms=NOW)


def end() -> Received:
    return Received(events.LiveEndEvent(stream_id=SID, published_at_ms=NOW), 0, 10_000, NOW)


def plan(state: StreamState, items: list[Received], bad: dict[int, str] | None = None,
         recorded: set[int] | None = None):
    chunks = [i.event for i in items if isinstance(i.event, events.LiveChunkEvent)]
    verdicts = {c.chunk_index: (bad or {}).get(c.chunk_index) for c in chunks if needs_verification(state, c)}
    return plan_stream(state, items, verdicts, recorded or set(), window_size=WINDOW, min_target=2)


def fresh() -> StreamState:
    return StreamState(SID)


def test_verified_chunks_get_consecutive_playlist_seqs_and_a_bounded_window():
    p = plan(fresh(), [chunk(i) for i in range(5)])
    assert [d.playlist_seq for d in p.chunks] == [0, 1, 2, 3, 4]
    assert [e.chunk_index for e in p.after.window] == [2, 3, 4]
    assert p.after.media_sequence == 2 and p.after.dvr_window_start == 2
    assert (p.after.last_sequence, p.after.verified_count, p.gaps) == (4, 5, 0)


def test_gap_is_counted_by_its_size_and_consumes_no_playlist_seq():
    p = plan(fresh(), [chunk(0), chunk(1), chunk(5), chunk(6)])
    assert p.gaps == 3 and [d.gap_before for d in p.chunks] == [0, 0, 3, 0]
    assert [d.playlist_seq for d in p.chunks] == [0, 1, 2, 3]
    assert p.after.missing_total == 3


def test_a_first_chunk_that_is_not_zero_is_a_gap():
    assert plan(fresh(), [chunk(2)]).gaps == 2


def test_checksum_failure_is_recorded_but_kept_out_of_the_playlist():
    p = plan(fresh(), [chunk(0), chunk(1), chunk(2)], bad={1: "checksum_mismatch: x"})
    assert [(d.action, d.checksum_ok, d.playlist_seq) for d in p.chunks] == [
        ("playlist", True, 0), ("rejected", False, None), ("playlist", True, 1)]
    assert [e.chunk_index for e in p.after.window] == [0, 2]
    assert p.gaps == 0 and p.after.rejected_total == 1 and p.after.last_sequence == 2


def test_replayed_batch_changes_nothing():
    batch = [chunk(0), chunk(1), chunk(2), chunk(3)]
    first = plan(fresh(), batch)
    again = plan(first.after, batch, recorded={0, 1, 2, 3})
    assert all(d.action == "duplicate" for d in again.chunks)
    assert again.after == first.after and not again.window_changed and again.gaps == 0


@pytest.mark.parametrize(("crash_at", "nth"), [("playlist", 2), ("insert", 3), ("insert", 4)])
def test_driver_engine_crash_then_restart_and_replay_leaves_what_an_uninterrupted_run_leaves(monkeypatch, crash_at,
                                                                                              nth):
    """The driver engine killed at a write (its memory lost: a new StateCache), then the batch replayed: it
    reads the state back from the catalog and leaves the same playlists and documents, each once."""
    from lab.streaming import live
    from tests.unit.test_live_task import BATCHES, Crash, World

    def run(world: World) -> None:
        monkeypatch.setattr(live, "STATES", live.StateCache())
        monkeypatch.setattr(live, "VIEWS", type("NoViews", (), {"submit": print, "discard": print})())
        for batch_id, batch in enumerate(BATCHES):
            while True:
                try:
                    live.process_events(batch, batch_id)
                    break
                except Crash:
                    monkeypatch.setattr(live, "STATES", live.StateCache())  # a restarted process
    clean = World(monkeypatch)
    run(clean)
    crashed = World(monkeypatch, crash_at, nth)
    run(crashed)
    assert crashed.crash_at is None, f"no {crash_at} write happened"
    objects, docs = crashed.outcome()
    clean_objects, clean_docs = clean.outcome()
    history = [h["status"] for h in docs[catalog.LIVE][catalog.stream_doc_id(SID)].pop("status_history")]
    clean_docs[catalog.LIVE][catalog.stream_doc_id(SID)].pop("status_history")
    assert history == ["vod"], "the end was recorded twice"
    for doc in (docs, clean_docs):
        doc[catalog.LIVE][catalog.stream_doc_id(SID)].pop("ended_at")
    assert (objects, docs) == (clean_objects, clean_docs)


def test_late_or_repeated_chunk_is_not_a_duplicate_unless_recorded():
    state = plan(fresh(), [chunk(0), chunk(1), chunk(2)]).after
    p = plan(state, [chunk(1), chunk(3), chunk(3)], recorded=set())
    assert [d.action for d in p.chunks] == ["rejected", "playlist", "duplicate"]
    assert p.chunks[0].reason.startswith("late:")


def test_end_marker_is_acted_on_once_and_chunks_after_it_stay_out():
    p = plan(fresh(), [chunk(0), end(), chunk(1)])
    assert p.end is not None
    assert [d.action for d in p.chunks] == ["playlist", "rejected"]
    assert p.chunks[1].reason.startswith("after_end:")
    ended = StreamState(SID, status="vod", last_sequence=0, verified_count=1)
    assert plan(ended, [end()]).end is None


def test_media_sequence_advances_by_exactly_the_entries_dropped():
    rng = random.Random(7)
    state, seq = fresh(), 0
    for _ in range(60):
        batch = []
        for _ in range(rng.randint(0, 4)):
            seq += 1 + (rng.random() < 0.1) * rng.randint(1, 3)  # sometimes a gap
            batch.append(chunk(seq))
        bad = {c.event.chunk_index: "checksum_mismatch" for c in batch if rng.random() < 0.1}
        p = plan(state, batch, bad=bad)
        old, new = p.before.window, p.after.window
        assert len(new) <= WINDOW
        # dropped: entries of the old window that slid out, plus those added and slid out in this batch
        dropped = [e for e in old if e not in new] + [
            d for d in p.chunks if d.action == "playlist" and d.playlist_seq < p.after.media_sequence]
        if old:
            assert p.after.media_sequence - p.before.media_sequence == len(dropped)
        seqs = [e.playlist_seq for e in new]
        assert seqs == list(range(p.after.media_sequence, p.after.media_sequence + len(seqs)))
        state = p.after


def test_target_duration_covers_every_rounded_segment_and_never_shrinks():
    p = plan(fresh(), [chunk(0, duration_ms=2400), chunk(1, duration_ms=2600)])
    assert p.after.target_duration == 3
    p2 = plan(p.after, [chunk(2, duration_ms=1000)])
    assert p2.after.target_duration == 3
    assert rounded_seconds(2499) == 2 and rounded_seconds(2500) == 3


def test_state_round_trips_through_the_document_that_carries_it():
    state = plan(fresh(), [chunk(0), chunk(1), chunk(4)], bad={1: "x"}).after
    assert StreamState.from_doc(SID, "live", state.to_doc()) == state
    assert StreamState.from_doc(SID, "live", None) == fresh()


def test_state_version_counts_batches_that_recorded_something():
    first = plan(fresh(), [chunk(0), chunk(1)])
    assert first.after.version == 1
    assert plan(first.after, [chunk(0), chunk(1)], recorded={0, 1}).after.version == 1  # a replay
    assert plan(first.after, [chunk(2)]).after.version == 2


def test_a_batch_inserts_its_new_chunks_and_one_new_state_per_stream():
    first = plan(fresh(), [chunk(0), chunk(1), chunk(2)], bad={1: "checksum_mismatch: x"})
    chunks, states = batch_documents([first], {SID: datetime.now(UTC)}, batch_id=7)
    assert [d["_id"] for d in chunks] == [f"{SID}/0", f"{SID}/1", f"{SID}/2"]
    assert [d["in_playlist"] for d in chunks] == [True, False, True]
    assert chunks[0]["processing_latency_ms"] is not None and "processing_latency_ms" not in chunks[1]
    assert [s["_id"] for s in states] == [f"{SID}/1"]
    assert StreamState.from_doc(SID, "live", states[0]) == first.after
    replay = plan(first.after, [chunk(0), chunk(1), chunk(2)], recorded={0, 1, 2})
    assert batch_documents([replay], {}, batch_id=7) == ([], [])


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"index": 3}, "chunk_index"),
    ({"key": "live-9999999999/chunks/1.ts"}, "object_key"),
    ({"key": f"{SID}/chunks/../../x.ts"}, "object_key"),
])
def test_events_off_the_key_layout_are_refused_naming_the_field(kwargs, field):
    problem = chunk_problem(chunk(1, **kwargs).event)
    assert problem is not None and problem.startswith(f"{field}:")
    assert chunk_problem(chunk(1).event) is None


def test_live_playlist_is_a_rolling_window_with_relative_uris():
    entries = [Entry(5, 3, 2000), Entry(7, 4, 2000)]
    text = render_playlist(SID, entries, target_duration=2, ended=False)
    parsed = m3u8.loads(text)
    assert parsed.media_sequence == 3 and parsed.target_duration == 2
    assert parsed.playlist_type is None and not parsed.is_endlist
    assert [s.uri for s in parsed.segments] == [f"../../live-streams/{SID}/chunks/5.ts",
                                                f"../../live-streams/{SID}/chunks/7.ts"]


def test_final_playlist_starts_at_zero_and_ends():
    entries = [Entry(i, i, 2000) for i in range(4)]
    parsed = m3u8.loads(render_playlist(SID, entries, target_duration=2, ended=True))
    assert parsed.media_sequence == 0 and parsed.is_endlist and len(parsed.segments) == 4
