"""The VOD query's decisions, without Spark, Kafka, S3 or the catalog: statuses, batch plans, playlists."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import m3u8
import pytest

from lab import events
from lab.config import settings
from lab.streaming.common import Received
from lab.streaming.vod_plan import (
    build_playlists,
    can_move,
    chunk_fields,
    latency_ms,
    plan_batch,
    rendition_facts,
    segment_summary,
    stream_verdict,
)

SID = "vod-0123456789ab"
OTHER = "vod-ba9876543210"
NOW = events.now_ms()


def vod_event(index: int, *, sid: str = SID, total: int = 3, raw_key: str | None = None,
              rungs: list[str] | None = None) -> Received:
    event = events.VodChunkEvent(
        published_at_ms=NOW, stream_id=sid, chunk_index=index, total_chunks=total,
        raw_key=raw_key or f"{sid}/raw/{index}.ts", checksum_sha256="a" * 64, size_bytes=1000,
        start_ms=index * 2000, duration_ms=2000, rungs=rungs or ["480p", "360p"], source_height=480,
        audio_track_id="a", video_track_id="v")
    return Received(event, partition=0, offset=index, kafka_timestamp_ms=NOW)


def stream(status: str = "uploaded", total: int = 3, done: tuple[int, ...] = ()) -> dict:
    return {"stream_id": SID, "status": status, "total_chunks": total,
            "segment_results": {str(i): {"status": "done"} for i in done}}


# --- statuses --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "target", "ok"), [
    ("uploaded", "processing", True),
    ("processing", "transcoding", True),
    ("uploaded", "transcoding", True),
    ("transcoding", "ready", True),
    ("transcoding", "processing", False),   # never backwards
    ("processing", "processing", False),    # a replay does not add a second entry
    ("ready", "transcoding", False),        # a finished stream never moves again
    ("ready", "failed", False),
    ("failed", "ready", False),
    ("uploaded", "failed", True),
    ("transcoding", "failed", True),
    ("uploaded", "bogus", False),
])
def test_status_moves_only_forward(current, target, ok):
    assert can_move(current, target) is ok


# --- what a batch does -----------------------------------------------------------------------------

def test_plan_batch_sends_every_new_segment_to_work():
    plan = plan_batch([vod_event(i) for i in range(3)], {SID: stream()})
    assert [e.chunk_index for e in plan.work] == [0, 1, 2]
    assert plan.touched == [SID] and not plan.refused and plan.skipped == 0


def test_unknown_stream_is_dead_lettered_with_the_reason():
    plan = plan_batch([vod_event(0, sid=OTHER)], {SID: stream()})
    assert not plan.work and not plan.touched
    [(item, reason)] = plan.refused
    assert item.event.stream_id == OTHER and reason.startswith("stream_id: unknown stream")


def test_replay_skips_done_segments_and_finished_streams():
    plan = plan_batch([vod_event(i) for i in range(3)], {SID: stream(done=(0, 2))})
    assert [e.chunk_index for e in plan.work] == [1] and plan.skipped == 2
    assert plan.touched == [SID]  # still checked: a crash may have left it finished but not ready
    for status in ("ready", "failed"):
        plan = plan_batch([vod_event(i) for i in range(3)], {SID: stream(status)})
        assert not plan.work and not plan.touched and plan.skipped == 3 and not plan.refused


def test_a_segment_twice_in_one_batch_is_transcoded_once():
    plan = plan_batch([vod_event(1), vod_event(1)], {SID: stream()})
    assert [e.chunk_index for e in plan.work] == [1] and plan.skipped == 1


@pytest.mark.parametrize(("item", "reason"), [
    (vod_event(0, total=4), "total_chunks: 4 does not match the stream's 3"),
    (vod_event(0, raw_key=f"{OTHER}/raw/0.ts"), f"raw_key: expected {SID}/raw/0.ts"),
    (vod_event(5, total=3), "chunk_index: 5 is not below total_chunks 3"),
    (vod_event(0, rungs=["240p"]), "rungs: unknown rendition(s) ['240p']"),
])
def test_events_that_contradict_their_stream_are_refused(item, reason):
    plan = plan_batch([item], {SID: stream()})
    assert plan.refused == [(item, reason)] and not plan.work


def test_a_live_event_on_the_vod_topic_is_refused():
    live = events.LiveEndEvent(stream_id="live-0123456789", published_at_ms=NOW)
    plan = plan_batch([Received(live, 0, 0, NOW)], {})
    assert plan.refused[0][1] == f"event_type: live_end does not belong on {settings.vod_topic}"


# --- segment documents and the stream's verdict ----------------------------------------------------

def rendition(rung: str, index: int, size: int) -> dict:
    width, height, profile, level = {"480p": (854, 480, "main", "3.1"), "360p": (640, 360, "main", "3.0")}[rung]
    return {"rung": rung, "key": f"{SID}/{rung}/{index}.ts", "sha256": "b" * 64, "size_bytes": size,
            "duration_ms": 2000.0, "width": width, "height": height, "profile": profile, "level": level}


def ok_result(index: int, sizes: tuple[int, int] = (250_000, 150_000)) -> dict:
    return {"stream_id": SID, "chunk_index": index, "ok": True, "error": None, "error_kind": None,
            "renditions": [rendition("480p", index, sizes[0]), rendition("360p", index, sizes[1])],
            "encode_seconds": 1.5, "executor": "host:1", "task_seconds": 2.0}


def done(index: int, sizes: tuple[int, int] = (250_000, 150_000), duration_ms: int = 2000) -> dict:
    return segment_summary(ok_result(index, sizes), duration_ms)


RENDITIONS = rendition_facts([ok_result(0)])


def test_chunk_fields_of_a_done_and_a_failed_segment():
    fields = chunk_fields(ok_result(0), batch_id=7)
    assert fields["status"] == "done" and fields["batch_id"] == 7 and fields["failure_reason"] is None
    assert fields["variants"]["480p"] == {k: v for k, v in rendition("480p", 0, 250_000).items() if k != "rung"}
    failed = chunk_fields({**ok_result(1), "ok": False, "error": "checksum mismatch", "error_kind": "checksum",
                           "renditions": []}, batch_id=7)
    assert failed["status"] == "failed" and failed["failure_reason"] == "checksum mismatch"
    assert "variants" not in failed


def test_the_stream_document_keeps_what_the_playlists_need():
    assert done(0) == {"status": "done", "duration_ms": 2000, "sizes": {"480p": 250_000, "360p": 150_000}}
    failed = {**ok_result(1), "ok": False, "error": "transcode failed: x", "error_kind": "media"}
    assert segment_summary(failed, 2000) == {"status": "failed", "reason": "transcode failed: x"}
    assert RENDITIONS == {"480p": {"width": 854, "height": 480, "profile": "main", "level": "3.1"},
                          "360p": {"width": 640, "height": 360, "profile": "main", "level": "3.0"}}


def test_verdict_ready_only_when_every_segment_is_done():
    rungs = ["480p", "360p"]
    assert stream_verdict(3, rungs, {0: done(0), 1: done(1)}).state == "pending"
    assert stream_verdict(3, rungs, {0: done(0), 1: done(1), 2: done(2)}).state == "ready"


def test_verdict_failed_names_the_first_failed_segment():
    bad = {"status": "failed", "reason": "checksum mismatch on x"}
    verdict = stream_verdict(3, ["480p"], {0: done(0), 2: bad, 1: bad})
    assert (verdict.state, verdict.reason) == ("failed", "segment 1: checksum mismatch on x")


def test_verdict_never_ready_with_a_missing_rendition():
    holed = done(1)
    del holed["sizes"]["360p"]
    verdict = stream_verdict(2, ["480p", "360p"], {0: done(0), 1: holed})
    assert verdict.state == "failed" and "360p" in verdict.reason


# --- playlists -------------------------------------------------------------------------------------

def test_playlists_use_relative_uris_and_real_bandwidths():
    results = {2: done(2, (100_000, 50_000), duration_ms=1000), 0: done(0, (250_000, 150_000)),
               1: done(1, (500_000, 100_000))}
    playlists = dict(build_playlists(SID, ["480p", "360p"], results, RENDITIONS, fps=30.0, audio=True))
    assert list(playlists) == [f"{SID}/480p.m3u8", f"{SID}/360p.m3u8", f"{SID}/vod_manifest.m3u8"]

    media = m3u8.loads(playlists[f"{SID}/480p.m3u8"])
    assert media.playlist_type == "vod" and media.is_endlist and media.target_duration == 2
    assert [s.uri for s in media.segments] == [f"../../{settings.bucket_vod_variants}/{SID}/480p/{i}.ts"
                                               for i in range(3)]
    assert [s.duration for s in media.segments] == [2.0, 2.0, 1.0]

    master = m3u8.loads(playlists[f"{SID}/vod_manifest.m3u8"])
    by_uri = {p.uri: p.stream_info for p in master.playlists}
    assert list(by_uri) == ["480p.m3u8", "360p.m3u8"]  # highest bandwidth first
    top = by_uri["480p.m3u8"]
    assert top.bandwidth == 2_000_000  # the peak segment: 500 kB in 2 s
    assert top.average_bandwidth == 1_360_000  # 850 kB in 5 s
    assert top.resolution == (854, 480) and top.frame_rate == 30
    assert top.codecs == "avc1.4d401f,mp4a.40.2"
    assert by_uri["360p.m3u8"].codecs == "avc1.4d401e,mp4a.40.2"


def test_playlists_without_audio_say_so_in_codecs():
    playlists = dict(build_playlists(SID, ["360p"], {0: done(0)}, RENDITIONS, fps=25.0, audio=False))
    master = m3u8.loads(playlists[f"{SID}/vod_manifest.m3u8"])
    assert master.playlists[0].stream_info.codecs == "avc1.4d401e"


def test_playlists_are_the_same_bytes_every_time():
    results = {i: done(i) for i in range(3)}
    assert build_playlists(SID, ["480p", "360p"], results, RENDITIONS, fps=30.0, audio=True) == \
        build_playlists(SID, ["480p", "360p"], dict(reversed(results.items())), RENDITIONS, fps=30.0, audio=True)


def test_latency_from_upload_to_ready():
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert latency_ms(start, start + timedelta(seconds=12, milliseconds=345)) == 12345.0
    assert latency_ms(None, start) is None


# --- the executor task's verdicts (S3 replaced by stubs: no service needed) ---------------------------

def task(**overrides) -> dict:
    return {**vod_event(1).event.model_dump(), "threads": 1, **overrides}


def test_a_changed_raw_segment_is_a_checksum_failure(monkeypatch):
    from lab.streaming import vod_task

    monkeypatch.setattr(vod_task.storage, "get_bytes", lambda bucket, key: b"not the bytes that were cut")
    result = vod_task.transcode_task(task())
    assert (result["ok"], result["error_kind"]) == (False, "checksum")
    assert result["error"].startswith(f"checksum mismatch on {SID}/raw/1.ts")


def test_a_missing_raw_segment_and_an_s3_outage_are_told_apart(monkeypatch):
    from botocore.exceptions import ClientError, EndpointConnectionError

    from lab.streaming import vod_task

    def missing(bucket, key):
        raise ClientError({"Error": {"Code": "NoSuchKey", "Message": "gone"}}, "GetObject")

    monkeypatch.setattr(vod_task.storage, "get_bytes", missing)
    assert vod_task.transcode_task(task())["error_kind"] == "missing"

    def down(bucket, key):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    monkeypatch.setattr(vod_task.storage, "get_bytes", down)
    result = vod_task.transcode_task(task())
    assert result["error_kind"] == "transient" and "EndpointConnectionError" in result["error"]


# --- when a stream becomes `transcoding` (the driver's watcher over Spark's status tracker) -----------

class FakeTracker:
    """Spark's StatusTracker as the driver reads it: jobs of a group, their stages, task counts."""

    def __init__(self, stages: dict[int, tuple[int, int, int]]):
        self.stages = stages  # stage id -> (active, completed, failed)

    def getJobIdsForGroup(self, group):  # noqa: N802 (Spark's name)
        return [6, 7] if group == "query run id" else []

    def getJobInfo(self, job_id):  # noqa: N802
        from types import SimpleNamespace
        return SimpleNamespace(stageIds=list(self.stages))

    def getStageInfo(self, stage_id):  # noqa: N802
        from types import SimpleNamespace
        active, completed, failed = self.stages[stage_id]
        return SimpleNamespace(numActiveTasks=active, numCompletedTasks=completed, numFailedTasks=failed)


def test_started_tasks_counts_running_finished_and_failed_tasks_of_the_new_job_only():
    from lab.streaming import vod

    tracker = FakeTracker({3: (2, 5, 1)})
    assert vod._started_tasks(tracker, "query run id", earlier={6}) == 8  # job 7: the transcode job
    assert vod._started_tasks(tracker, "query run id", earlier={6, 7}) == 0  # no new job yet
    assert vod._started_tasks(tracker, "another query", earlier=set()) == 0


def test_a_stream_is_transcoding_once_its_first_task_has_started(monkeypatch):
    from lab.streaming import vod

    moved: list[list[str]] = []
    monkeypatch.setattr(vod, "advance", lambda docs, status: moved.append([d["stream_id"] for d in docs]))
    streams = {SID: {"stream_id": SID}, OTHER: {"stream_id": OTHER}}
    work = [vod_event(i).event for i in range(3)] + [vod_event(i, sid=OTHER).event for i in range(2)]
    on_started = vod.transcoding_marker(streams, work)
    on_started(1)   # task 0 (SID's first) runs
    on_started(3)   # tasks 0-2: still only SID's
    on_started(4)   # task 3 is OTHER's first
    assert moved == [[SID], [SID], [SID, OTHER]]
