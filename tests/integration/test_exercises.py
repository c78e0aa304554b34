"""Every solution that needs the stack, run through its checker against the real services; wrong answers get a
hint naming what to fix. (The pure checkers are in tests/unit/test_exercises.py.)"""

from __future__ import annotations

import httpx
import pytest

from lab import catalog
from lab.config import ROOT, settings
from lab.exercises import l01, l02, l04, l06, l07, l09
from lab.producer.replay import Replay, sample_segments
from lab.waiting import wait_for
from tests.unit.test_exercises import solution

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]


@pytest.fixture(scope="module")
def api() -> httpx.Client:
    from lab.apiclient import client

    with client(120) as c:
        yield c


@pytest.fixture(scope="module")
def live(api: httpx.Client):
    """A live stream with chunks 0-2 recorded by the live query."""
    replay = Replay(sample_segments(3, resolution="320x180"), api=api)
    stream = replay.start_stream("exercises: live")
    for _ in range(3):
        replay.send(stream)
    replay.producer.flush(30)
    wait_for(lambda: len(catalog.chunk_docs(catalog.LIVE, stream.stream_id)) >= 3, "3 chunks recorded", 120)
    yield stream
    replay.end(stream)


@pytest.fixture(scope="module")
def vod(api: httpx.Client) -> str:
    """A ready VOD stream of the 360p sample (one rung, several segments)."""
    sample = ROOT / "data" / "sample-360p-8s.mp4"
    with open(sample, "rb") as f:
        stream_id = api.post("/vod/upload", data={"title": "exercises: vod"},
                             files={"file": (sample.name, f, "video/mp4")}).json()["stream_id"]
    doc = wait_for(lambda: (d := api.get(f"/vod/{stream_id}/metadata").json())["status"] in ("ready", "failed") and d,
                   f"{stream_id} to be ready", timeout=600, every=1)
    assert doc["status"] == "ready", doc.get("failure_reason")
    return stream_id


def test_01_the_hash_model_is_where_kafka_puts_keys() -> None:
    partitions = settings.live_topic_partitions
    for i in range(8):
        key = f"live-{i:010d}"
        assert l01.landed_partition(key, partitions) == l01.predicted_partition(key, partitions), key


def test_01_the_solution_key_lands_on_its_partition() -> None:
    partitions = settings.live_topic_partitions
    for target in (0, partitions - 1):
        assert l01.key_for_partition(solution("l01").ex1_key_for_partition(target, partitions), target, partitions)
    wrong = next(k for k in (f"live-{i:010d}" for i in range(100)) if l01.predicted_partition(k, partitions) != 0)
    assert "not 0" in l01.key_for_partition(wrong, 0, partitions).message


def test_02_fixed_upload_and_predictions(api: httpx.Client) -> None:
    s = solution("l02")
    sample = ROOT / "data" / "sample-360p-8s.mp4"
    assert l02.upload_fixed(s.ex1_fixed_upload(api, sample))
    with open(sample, "rb") as f:
        refused = api.post("/vod/upload", data={"name": "x"}, files={"video": (sample.name, f, "video/mp4")})
    verdict = l02.upload_fixed(refused)
    assert not verdict and str(refused.status_code) in verdict.message
    assert l02.predicted_codes(s.PREDICTIONS, api), l02.actual_codes(api)
    wrong = dict(s.PREDICTIONS, **{"metadata of an unknown VOD id": 200})
    assert "you said 200" in l02.predicted_codes(wrong, api).message


def test_04_trace_a_rendition(vod: str) -> None:
    key, sha = solution("l04").ex2_trace(vod, "360p", 1)
    assert l04.rendition_traced(vod, "360p", 1, key, sha)
    assert "not the checksum" in l04.rendition_traced(vod, "360p", 1, key, "00" * 32).message


def test_06_back_to_kafka_from_the_catalog(live) -> None:
    position = solution("l06").ex1_position(live.stream_id, 1)
    assert l06.found_in_kafka(position, live.stream_id, 1)
    partition, offset = position
    assert "the record there" in l06.found_in_kafka((partition, offset - 1), live.stream_id, 1).message


def test_07_promql_answers(live) -> None:
    s = solution("l07")
    wait_for(lambda: l07.promql("live_rate", s.LIVE_RATE).ok, "live chunks in Prometheus", timeout=60, every=1)
    assert l07.promql("gaps_10m", s.GAPS_10M)
    assert "labels" in l07.promql("live_rate", "rate(chunks_processed_total[1m])").message
    assert "refused" in l07.promql("live_rate", "sum(rate(").message


def test_09_a_forged_url_is_refused(api: httpx.Client, live) -> None:
    url = api.get(f"/streams/{live.stream_id}/live").json()["manifest_url"]
    assert l09.forged_refused(solution("l09").ex1_forged(url), url)
