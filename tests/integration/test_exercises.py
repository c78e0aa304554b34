"""Every solution that needs the stack, run through its checker against the real services, and the banks of
wrong answers those checkers judge against the real system: each gets a hint naming what to fix. (The pure
checkers and their banks are in tests/unit/test_exercises.py and tests/unit/test_wrong_answers.py.)"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from lab import catalog
from lab.config import ROOT, settings
from lab.exercises import l01, l02, l03, l04, l06, l07, l09
from lab.producer.replay import Replay, sample_segments
from lab.waiting import wait_for
from tests.unit.test_exercises import solution

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

# the exercises whose wrong answers are banked here, against the real system (numbered as in the lessons)
BANKED = {"01.1", "01.2", "01.3", "02.1", "02.2", "03.3", "04.1", "06.1", "07.1", "07.2", "09.1", "09.3"}


def wrong(verdict, says: str) -> None:
    """A wrong answer's verdict: a hint that names what is wrong (`says`), not the checker's own failure."""
    assert not verdict.ok and not verdict.broken and "failed with" not in verdict.message, verdict.message
    assert says in verdict.message, verdict.message


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
    partitions, s = settings.live_topic_partitions, solution("l01")
    for i in range(8):
        key = f"live-{i:010d}"
        assert l01.landed_partition(key, partitions) == s.partition_of(key, partitions), key


def test_01_the_solution_key_lands_on_its_partition() -> None:
    partitions, s = settings.live_topic_partitions, solution("l01")
    for target in (0, partitions - 1):
        assert l01.key_for_partition(s.ex1_key_for_partition(target, partitions), target, partitions)
    elsewhere = next(k for k in (f"live-{i:010d}" for i in range(100)) if s.partition_of(k, partitions) != 0)
    wrong(l01.key_for_partition(elsewhere, 0, partitions), "not 0")


def test_01_the_fixed_event_is_recorded_by_the_live_query(live) -> None:
    """The solution uploads chunk 5 and its event; wrong answers: the segment not uploaded, its checksum not
    the bytes', a chunk already taken."""
    s, stream_id = solution("l01"), live.stream_id
    segment = sample_segments(1, resolution="320x180")[0]
    event = s.ex2_fixed_event(stream_id, segment)
    not_uploaded = dict(event, chunk_index=9, sequence_number=9, object_key=f"{stream_id}/chunks/9.ts")
    wrong(l01.fixed_event(not_uploaded, stream_id, taken=(0, 1, 2, 3, 4)), "upload the segment first")
    wrong(l01.fixed_event(dict(event, checksum_sha256="00" * 32), stream_id, taken=(0, 1, 3, 4)), "checksum_sha256")
    wrong(l01.fixed_event(event, stream_id, taken=(0, 1, 2)), "already published")
    verdict = l01.fixed_event(event, stream_id, taken=(0, 1, 3, 4))
    assert verdict, verdict
    assert catalog.find_by_id(catalog.LIVE, catalog.doc_id(stream_id, 2))["checksum_ok"]


def test_02_fixed_upload_and_predictions(api: httpx.Client) -> None:
    s = solution("l02")
    sample = ROOT / "data" / "sample-360p-8s.mp4"
    assert l02.upload_fixed(s.ex1_fixed_upload(api, sample))
    with open(sample, "rb") as f:
        refused = api.post("/vod/upload", data={"name": "x"}, files={"video": (sample.name, f, "video/mp4")})
    verdict = l02.upload_fixed(refused)
    assert not verdict and str(refused.status_code) in verdict.message
    assert l02.predicted_codes(s.PREDICTIONS, api), l02.actual_codes(api)
    wrong(l02.predicted_codes(dict(s.PREDICTIONS, **{"metadata of an unknown VOD id": 200}), api), "you said 200")
    wrong(l02.predicted_codes(dict(s.PREDICTIONS, **{"start a stream without the API key": 403}), api),
          "you said 403, the API answered 401")
    wrong(l02.predicted_codes(dict.fromkeys(s.PREDICTIONS, "404"), api), "the string '404'")
    wrong(l02.upload_fixed(api.get("/health")), "GET /health")


def test_04_trace_a_rendition(vod: str) -> None:
    key, sha = solution("l04").ex1_trace(vod, "360p", 1)
    assert l04.rendition_traced(vod, "360p", 1, key, sha)
    wrong(l04.rendition_traced(vod, "360p", 1, key, "00" * 32), "not the checksum")
    wrong(l04.rendition_traced(vod, "360p", 1, key.replace("/1.ts", "/0.ts"), sha), "is not where segment 1")
    source_sha = catalog.find_by_id(catalog.VOD, catalog.doc_id(vod, 1))["raw_sha256"]
    wrong(l04.rendition_traced(vod, "360p", 1, key, source_sha), "the source segment")


def test_06_back_to_kafka_from_the_catalog(live) -> None:
    position = solution("l06").ex1_position(live.stream_id, 1)
    assert l06.found_in_kafka(position, live.stream_id, 1)
    partition, offset = position
    wrong(l06.found_in_kafka((partition, offset - 1), live.stream_id, 1), "the record there")
    wrong(l06.found_in_kafka((partition, 10**12), live.stream_id, 1), "no record at offset")
    wrong(l06.found_in_kafka((offset, partition), live.stream_id, 1) if offset >= settings.live_topic_partitions
          else l06.found_in_kafka((99, offset), live.stream_id, 1), "wrong way round")


LIVE_RATE_BANK = [  # (wrong PromQL, part of its hint): many of them answer 0 whenever the true value is 0
    ("rate(chunks_processed_total[1m])", "label"),
    ('rate(chunks_processed_total{stream_type="live"}[1m])', "sum()"),
    ('sum by (stream_type) (rate(chunks_processed_total{stream_type="live"}[1m]))', "no by()"),
    ('sum(irate(chunks_processed_total{stream_type="live"}[1m]))', "uses irate"),
    ('sum(increase(chunks_processed_total{stream_type="live"}[1m]))', "rate()"),
    ('sum(rate(chunks_processed_total{stream_type="live"}[5m]))', "[1m]"),
    ('sum(rate(chunks_processed_total{stream_type="vod"}[1m]))', "label"),
    ('sum(rate(live_chunk_gaps_total[1m]))', "counter of processed chunks"),
    ('scalar(sum(rate(chunks_processed_total{stream_type="live"}[1m])))', "scalar()"),
    ("vector(0)", "counter of processed chunks"),
    ("sum(rate(", "refused"),
    ('sum(chunks_processed_total{stream_type="live"})', "rate()"),
]
GAPS_BANK = [
    ("sum(increase(live_chunk_gaps_total[5m]))", "[10m]"),
    ("sum(live_chunk_gaps_total)", "increase()"),
    ("increase(live_chunk_gaps_total[10m])", "sum()"),
    ("sum(rate(live_chunk_gaps_total[10m]))", "increase()"),
    ('sum(increase(chunk_checksum_failures_total{stream_type="live"}[10m]))', "counter of detected gaps"),
    ("0", "counter of detected gaps"),
]


def test_07_promql_answers_and_wrong_ones(live) -> None:
    s = solution("l07")
    assert l07.live_rate(s.LIVE_RATE), l07.live_rate(s.LIVE_RATE)
    assert l07.live_rate(s.LIVE_RATE.replace("[1m]", "[60s]")), "an equivalent form is the same canonical one"
    assert l07.gaps_10m(s.GAPS_10M), l07.gaps_10m(s.GAPS_10M)
    for expr, says in LIVE_RATE_BANK:
        wrong(l07.live_rate(expr), says)
    for expr, says in GAPS_BANK:
        wrong(l07.gaps_10m(expr), says)


def test_09_a_forged_url_is_refused(api: httpx.Client, live) -> None:
    url = api.get(f"/streams/{live.stream_id}/live").json()["manifest_url"]
    assert l09.forged_refused(solution("l09").ex1_forged(url), url)
    exp = parse_qs(urlsplit(url).query)["exp"][0]
    wrong(l09.forged_refused(url.replace(f"exp={exp}", "exp=0"), url), "earlier")  # refused as expired: no proof
    other = api.get(f"/streams/{live.stream_id}/live").json()["manifest_url"]
    wrong(l09.forged_refused(url.replace(f"/{live.stream_id}/", "/live-0000000000/"), url), "same /play/")
    assert other


# --- the build-it exercises: the learner's code runs in the real system, in the learner's sandbox ----------

def test_01_build_it_grow_a_topic_of_ones_own() -> None:
    s = solution("l01")
    moved = s.ex3_moved(l01.GROW_KEYS, 3, 6)
    verdict = l01.grown(s.ex3_grow, moved)
    assert verdict, verdict
    assert verdict.table is not None and set(verdict.table.loc[verdict.table["moved"], "key"]) == moved
    wrong(l01.grown(lambda admin, topic, partitions: None, moved), "has 3 partitions, not 6")
    wrong(l01.grown(s.ex3_grow, set(l01.GROW_KEYS) - moved), "wrongly")
    wrong(l01.grown(lambda admin, topic, partitions: admin.create_partitions([]), moved), "raised")
    wrong(l01.grown(s.ex3_grow, list(range(3))), "MOVED is a list")
    from confluent_kafka.admin import NewPartitions

    def by_three(admin, topic, partitions):  # adds 3, as if NewPartitions took the number to add
        for future in admin.create_partitions([NewPartitions(topic, 3)], request_timeout=30).values():
            future.result()

    wrong(l01.grown(by_three, moved), "raised")  # Kafka refuses a "new total" below the current count


def test_09_build_it_an_edge_that_signs(api: httpx.Client, live) -> None:
    import hashlib
    import hmac

    s = solution("l09")
    other = api.post("/streams/start", json={"title": "exercises: another"}).json()["stream_id"]
    assert l09.signed_by_you(s.ex3_sign, live.stream_id, other), l09.signed_by_you(s.ex3_sign, live.stream_id, other)
    url = api.get(f"/streams/{live.stream_id}/live").json()["manifest_url"]
    copied = parse_qs(urlsplit(url).query)["sig"][0]
    wrong(l09.signed_by_you(lambda stream_id, exp: copied, live.stream_id, other), "refused your URL")
    wrong(l09.signed_by_you(lambda stream_id, exp: hmac.new(b"guess", f"{stream_id}:{exp}".encode(),
                                                            hashlib.sha256).hexdigest()[:32], live.stream_id, other),
          "refused your URL")
    wrong(l09.signed_by_you(lambda stream_id, exp: s.ex3_sign(live.stream_id, exp), live.stream_id, other),
          "another stream the same signature")
    wrong(l09.signed_by_you(lambda stream_id, exp: s.ex3_sign(stream_id, exp)[:31], live.stream_id, other),
          "refused your URL")
    wrong(l09.signed_by_you(lambda stream_id, exp: s.ex3_sign(stream_id, exp).encode(), live.stream_id, other),
          "bytes")
    api.post("/streams/end", json={"stream_id": other})


@pytest.fixture(scope="module")
def spark():
    from lab.widgets import lesson

    session = lesson.spark_session("test-exercises")
    yield session
    session.stop()


def test_03_build_it_an_idempotent_foreach_batch_in_a_real_query(spark) -> None:
    from lab.exercises import sandbox
    from lab.widgets import lesson

    topic = sandbox.topic("test-l03", 3)
    producer = lesson.producer("test-exercises")
    for index in range(5):
        value = f'{{"event_type": "live_chunk", "stream_id": "live-00000000dd", "chunk_index": {index}}}'
        producer.produce(topic, key=b"live-00000000dd", value=value.encode())
    assert producer.flush(30) == 0

    def inserts(batch_df, batch_id, collection):
        for row in batch_df.select("stream_id", "chunk_index").collect():
            collection.insert_one({"stream_id": row.stream_id, "chunk_index": row.chunk_index})

    def by_chunk_index(batch_df, batch_id, collection):
        for row in batch_df.select("stream_id", "chunk_index").collect():
            collection.replace_one({"_id": row.chunk_index}, {"chunk_index": row.chunk_index}, upsert=True)

    try:
        verdict = l03.replayed_into_catalog(solution("l03").write_chunks, spark, topic)
        assert verdict and "8 documents" in verdict.message, verdict
        wrong(l03.replayed_into_catalog(inserts, spark, topic), "the replay added them")
        wrong(l03.replayed_into_catalog(by_chunk_index, spark, topic), "chunk_index alone")
        wrong(l03.replayed_into_catalog(lambda df, batch_id, collection: 1 / 0, spark, topic), "ZeroDivisionError")
    finally:
        sandbox.reset()
