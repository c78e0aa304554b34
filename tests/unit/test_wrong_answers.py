"""Banks of plausible wrong answers, each past its checker: every loophole found in the lessons, wrong types
(a str for an int, a bool, a numpy bool, a pydantic model), off-by-one answers, and answers copied from a
nearby cell. Each must get a hint that names what is wrong (the part of it listed here), never a ✓, never the
checker's own failure. The checkers that need the stack have their banks in tests/integration/test_exercises.py.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import numpy as np
import pytest

from lab import events
from lab.exercises import Verdict, l01, l02, l03, l04, l05, l06, l07, l08, l09
from tests.unit.test_exercises import LIVE, URL, VOD

EVENT = events.LiveChunkEvent(
    stream_id=LIVE, chunk_index=0, sequence_number=0, object_key=f"{LIVE}/chunks/0.ts", checksum_sha256="ab" * 32,
    size_bytes=1000, duration_ms=2000, keyframe_aligned=True, audio_track_id=f"audio-{LIVE}",
    video_track_id=f"video-{LIVE}", published_at_ms=events.now_ms())


def response(status: int, method: str = "POST", path: str = "/vod/upload", body: dict | None = None) -> httpx.Response:
    return httpx.Response(status, json=body or {"detail": "file: Field required"},
                          request=httpx.Request(method, f"http://127.0.0.1:1{path}"))


def keyed_by_chunk_index(batch_id, rows, store):
    for row in rows:
        store[row["chunk_index"]] = row  # the collision across streams the hint warns about


def keyed_by_offset(batch_id, rows, store):
    for row in rows:
        store[(row["stream_id"], row["kafka_offset"])] = row


def keyed_by_batch(batch_id, rows, store):
    for n, row in enumerate(rows):
        store[(batch_id, n)] = row


def keyed_by_row_text(batch_id, rows, store):
    for row in rows:
        store[str(row)] = row


def new_store(batch_id, rows, store):
    store = {(r["stream_id"], r["chunk_index"]): r for r in rows}  # noqa: F841 (rebinding, not writing)


def values_are_indexes(batch_id, rows, store):
    for row in rows:
        store[(row["stream_id"], row["chunk_index"])] = row["chunk_index"]


HOPS = {"1 encoder: segment → S3": 12.0, "2 event → Kafka (acks=all)": 8.0,
        "3 Kafka → Spark batch → playlist PUT": 240.0, "4 playlist PUT → line seen by a poller": 15.0}
SEEN = [(0, 3), (0, 10), (1, 10), (2, 10)]  # (MEDIA-SEQUENCE, entries) of live versions, a window of 10
ONE = [0, 1, 2, 3, 4]

# (exercise, wrong answer, its verdict, a part of the hint it must get)
BANK: list[tuple[str, str, Callable[[], Verdict], str]] = [
    ("01.1", "an int", lambda: l01.key_for_partition(5, 1, 6), "not an int"),
    ("01.1", "a bool", lambda: l01.key_for_partition(True, 1, 6), "not a bool"),
    ("01.1", "bytes", lambda: l01.key_for_partition(b"live-0000000001", 1, 6), "bytes"),
    ("01.1", "an empty str", lambda: l01.key_for_partition("", 1, 6), "non-empty"),
    ("01.2", "the bad event unchanged", lambda: l01.fixed_event({"event_type": "live_chunk"}, LIVE), "reason"),
    ("01.2", "the lesson's event, a pydantic model", lambda: l01.fixed_event(EVENT, LIVE), "pydantic model"),
    ("01.2", "the lesson's valid event copied as a dict",
     lambda: l01.fixed_event(EVENT.model_dump(), LIVE), "already published"),
    ("01.2", "the lesson's event as JSON", lambda: l01.fixed_event(events.encode(EVENT), LIVE), "already published"),
    ("01.2", "another stream's event", lambda: l01.fixed_event(EVENT.model_dump(), "live-9999999999"),
     "lesson's stream"),
    ("01.2", "a list", lambda: l01.fixed_event([1, 2], LIVE), "a list"),
    ("01.2", "a new chunk, the object key of chunk 0",
     lambda: l01.fixed_event(EVENT.model_dump() | {"chunk_index": 2, "sequence_number": 2}, LIVE), "object_key"),
    ("02.1", "the string '202'", lambda: l02.upload_fixed("202"), "a str"),
    ("02.1", "the int 202", lambda: l02.upload_fixed(202), "an int"),
    ("02.1", "the refused attempt", lambda: l02.upload_fixed(response(422)), "names the"),
    ("02.1", "a bare httpx without the key", lambda: l02.upload_fixed(response(401)), "it sends the key"),
    ("02.1", "a 202 from another request",
     lambda: l02.upload_fixed(response(202, "POST", "/streams/start", {"stream_id": LIVE})), "POST /streams/start"),
    ("02.1", "a GET answered 200", lambda: l02.upload_fixed(response(200, "GET", "/health", {})), "GET /health"),
    ("02.2", "strings for ints", lambda: l02.predicted_codes(dict.fromkeys(l02.REQUESTS, "404"), None),
     "the string '404'"),
    ("02.2", "a bool", lambda: l02.predicted_codes(dict.fromkeys(l02.REQUESTS, True), None), "a bool"),
    ("02.2", "a numpy bool", lambda: l02.predicted_codes(dict.fromkeys(l02.REQUESTS, np.True_), None), "numpy bool"),
    ("02.2", "a float", lambda: l02.predicted_codes(dict.fromkeys(l02.REQUESTS, 404.0), None), "a float"),
    ("02.2", "a key renamed", lambda: l02.predicted_codes({"x": 404}, None), "the same three"),
    ("02.2", "a list", lambda: l02.predicted_codes([404, 401, 404], None), "the same three"),
    ("03.2", "keyed on chunk_index alone", lambda: l03.idempotent_write(keyed_by_chunk_index), "chunk_index alone"),
    ("03.2", "keyed on the Kafka offset", lambda: l03.idempotent_write(keyed_by_offset), "not by arrival"),
    ("03.2", "keyed on the batch", lambda: l03.idempotent_write(keyed_by_batch), "not by arrival"),
    ("03.2", "keyed on the row's text", lambda: l03.idempotent_write(keyed_by_row_text), "redelivered"),
    ("03.2", "a new store, not the one given", lambda: l03.idempotent_write(new_store), "store is empty"),
    ("03.2", "the index as value", lambda: l03.idempotent_write(values_are_indexes), "as its value"),
    ("03.2", "two arguments", lambda: l03.idempotent_write(lambda batch_id, rows: None), "three arguments"),
    ("03.2", "it raises", lambda: l03.idempotent_write(lambda b, rows, store: rows[99]), "raised IndexError"),
    ("03.2", "a str", lambda: l03.idempotent_write("store[key] = row"), "as a function"),
    ("03.1", "only the new chunks", lambda: l03.fresh_checkpoint_reads([3, 4], ONE, ONE), "startingOffsets"),
    ("03.1", "off by one at the end", lambda: l03.fresh_checkpoint_reads([0, 1, 2, 3], ONE, ONE), "startingOffsets"),
    ("03.1", "off by one, from 1", lambda: l03.fresh_checkpoint_reads([1, 2, 3, 4, 5], ONE, ONE), "startingOffsets"),
    ("03.1", "nothing, copied from the rerun", lambda: l03.fresh_checkpoint_reads([], ONE, ONE), "startingOffsets"),
    ("03.1", "[] while the checkpoint was reused", lambda: l03.fresh_checkpoint_reads([], [], ONE), "not new"),
    ("03.1", "strs", lambda: l03.fresh_checkpoint_reads(["0", "1"], ONE, ONE), "a str"),
    ("03.1", "bools", lambda: l03.fresh_checkpoint_reads([True, False], ONE, ONE), "a bool"),
    ("03.1", "a str", lambda: l03.fresh_checkpoint_reads("[0, 1, 2, 3, 4]", ONE, ONE), "a str"),
    ("03.1", "a set", lambda: l03.fresh_checkpoint_reads({0, 1, 2, 3, 4}, ONE, ONE), "a set"),
    ("04.1", "a wrong key", lambda: l04.rendition_traced(VOD, "360p", 1, "vod-variants/x.ts", "ab"),
     "{stream_id}/{rung}/{index}.ts"),
    ("04.1", "bytes for the checksum", lambda: l04.rendition_traced(VOD, "360p", 1, f"{VOD}/360p/1.ts", b"ab"),
     "bytes"),
    ("04.1", "an int for the key", lambda: l04.rendition_traced(VOD, "360p", 1, 1, "ab"), "an int"),
    ("04.2", "the 720p upload's ladder, copied", lambda: l04.predicted_ladder(["720p", "480p", "360p"],
                                                                               ["480p", "360p"], 480), "upscale"),
    ("04.2", "lowest first", lambda: l04.predicted_ladder(["360p", "480p"], ["480p", "360p"], 480), "highest first"),
    ("04.2", "one rung short", lambda: l04.predicted_ladder(["480p"], ["480p", "360p"], 480), "at or below"),
    ("04.2", "a str", lambda: l04.predicted_ladder("480p, 360p", ["480p", "360p"], 480), "one str"),
    ("04.2", "ints", lambda: l04.predicted_ladder([480, 360], ["480p", "360p"], 480), "an int"),
    ("05.2", "True", lambda: l05.predicted_media_sequence(True, 12, SEEN), "a bool"),
    ("05.2", "a numpy bool", lambda: l05.predicted_media_sequence(np.True_, 12, SEEN), "numpy bool"),
    ("05.2", "a str", lambda: l05.predicted_media_sequence("2", 12, SEEN), "the string '2'"),
    ("05.2", "the verified count", lambda: l05.predicted_media_sequence(12, 12, SEEN), "slid out"),
    ("05.2", "off by one", lambda: l05.predicted_media_sequence(3, 12, SEEN), "one off"),
    ("05.2", "the window", lambda: l05.predicted_media_sequence(10, 12, SEEN), "slid out"),
    ("05.2", "a float", lambda: l05.predicted_media_sequence(2.0, 12, SEEN), "a float"),
    ("05.1", "only the gap", lambda: l05.predicted_missing([3], [0, 1, 2, 4, 6, 7], [3], [5]), "checksum"),
    ("05.1", "only the corrupted one", lambda: l05.predicted_missing([5], [0, 1, 2, 4, 6, 7], [3], [5]), "skip"),
    ("05.1", "bools", lambda: l05.predicted_missing([True], [0, 2], [1], []), "a bool"),
    ("05.1", "a str", lambda: l05.predicted_missing("3, 5", [0, 1, 2, 4, 6, 7], [3], [5]), "a str"),
    ("05.1", "off by one", lambda: l05.predicted_missing([4, 6], [0, 1, 2, 4, 6, 7], [3], [5]), "lacks [3, 5]"),
    ("06.1", "a str", lambda: l06.found_in_kafka("0/12", LIVE, 1), "a str"),
    ("06.1", "bools", lambda: l06.found_in_kafka((True, True), LIVE, 1), "a bool"),
    ("06.1", "numpy bools", lambda: l06.found_in_kafka((np.False_, 5), LIVE, 1), "numpy bool"),
    ("06.1", "strs", lambda: l06.found_in_kafka(("0", "12"), LIVE, 1), "a str"),
    ("06.1", "a dict", lambda: l06.found_in_kafka({"partition": 0, "offset": 12}, LIVE, 1), "a dict"),
    ("06.1", "the pair the wrong way round", lambda: l06.found_in_kafka((1200, 3), LIVE, 1), "wrong way round"),
    ("06.1", "negative", lambda: l06.found_in_kafka((0, -1), LIVE, 1), ">= 0"),
    ("06.2", "the longest but one", lambda: l06.slowest_hop("1 encoder: segment → S3", HOPS), "took longer"),
    ("06.2", "a hop's number", lambda: l06.slowest_hop("3", HOPS), "did you mean"),
    ("06.2", "an int", lambda: l06.slowest_hop(3, HOPS), "an int"),
    ("07.1", "an int", lambda: l07.live_rate(42), "an int"),
    ("07.1", "a float", lambda: l07.live_rate(0.0), "a float"),
    ("07.2", "a bool", lambda: l07.gaps_10m(True), "a bool"),
    ("08.1", "a str", lambda: l08.kill_moment("12"), "the string '12'"),
    ("08.1", "a bool", lambda: l08.kill_moment(True), "a bool"),
    ("08.1", "too early", lambda: l08.kill_moment(3), "from 8 to 40"),
    ("08.1", "off by one past the end", lambda: l08.kill_moment(41), "from 8 to 40"),
    ("08.2", "always True", lambda: l08.proof(lambda indexes, last: True, [0, 1, 2], 2), "chunk 3 lost"),
    ("08.2", "the length only", lambda: l08.proof(lambda i, last: len(i) == last + 1, ONE, 4), "one lost and one"),
    ("08.2", "the sum only", lambda: l08.proof(lambda i, last: sum(i) == sum(range(last + 1)), ONE, 4),
     "should say False"),
    ("08.2", "distinct and the right count",
     lambda: l08.proof(lambda i, last: len(set(i)) == len(i) == last + 1, ONE, 4), "never published"),
    ("08.2", "a set compared", lambda: l08.proof(lambda i, last: set(i) == set(range(last + 1)), ONE, 4),
     "twice"),
    ("08.2", "returns None", lambda: l08.proof(lambda i, last: None, [0], 0), "True or False"),
    ("08.2", "returns the str 'True'", lambda: l08.proof(lambda i, last: "True", [0], 0), "a str"),
    ("08.2", "returns a list", lambda: l08.proof(lambda i, last: sorted(i), [0], 0), "a list"),
    ("08.2", "raises", lambda: l08.proof(lambda i, last: i[last + 1], [0], 0), "raised IndexError"),
    ("08.2", "not a function", lambda: l08.proof(True, [0], 0), "a bool"),
    ("09.1", "exp pushed to 0, refused as expired",
     lambda: l09.forged_refused(URL.replace("exp=1900000000", "exp=0"), URL), "earlier"),
    ("09.1", "exp not a number", lambda: l09.forged_refused(URL.replace("exp=1900000000", "exp=soon"), URL),
     "seconds since 1970"),
    ("09.1", "a new sig", lambda: l09.forged_refused(URL.replace("sig=00ff", "sig=11"), URL), "keep the original sig"),
    ("09.1", "the url unchanged, copied", lambda: l09.forged_refused(URL, URL), "change exp"),
    ("09.1", "an httpx.URL", lambda: l09.forged_refused(httpx.URL(URL), URL), "a URL"),
    ("09.2", "another bucket", lambda: l09.cdn_url_derived("http://cdn/x.ts", VOD, "360p", 2),
     "{stream_id}/{rung}/{index}.ts"),
    ("09.2", "a tuple", lambda: l09.cdn_url_derived(("bucket", "key"), VOD, "360p", 2), "a tuple"),
]


@pytest.mark.parametrize(("exercise", "what", "verdict", "says"), BANK, ids=[f"{e} {w}" for e, w, _, _ in BANK])
def test_a_wrong_answer_gets_its_own_hint(exercise: str, what: str, verdict: Callable[[], Verdict], says: str) -> None:
    got = verdict()
    assert isinstance(got, Verdict) and not got.ok, f"{exercise} accepted {what}: {got!r}"
    assert not got.broken and "failed with" not in got.message, got.message
    assert says in got.message, got.message


def test_every_checker_has_a_bank() -> None:
    """Numbered as in the lessons (a module defines its checkers in the lesson's order)."""
    from lab.exercises import progress
    from tests.integration.test_exercises import BANKED

    banked = {e for e, *_ in BANK} | BANKED
    numbered = {f"{lesson[1:]}.{n + 1}" for lesson, names in progress.EXERCISES.items() for n in range(len(names))}
    assert len(numbered) >= 18 and numbered <= banked, sorted(numbered - banked)
