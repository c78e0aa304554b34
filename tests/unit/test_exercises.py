"""The exercise checkers without a stack: every untouched exercise gets a hint (never an exception), wrong
answers get a specific hint, and the solutions that need no service pass. The rest is in
tests/integration/test_exercises.py."""

from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest

from lab.config import ROOT
from lab.exercises import Verdict, checker, l01, l02, l03, l04, l05, l06, l07, l08, l09

SOLUTIONS = ROOT / "instructor" / "solutions"


def solution(lesson: str) -> ModuleType:
    path = SOLUTIONS / f"{lesson}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VOD = "vod-0123456789ab"
LIVE = "live-0123456789"
URL = "http://localhost:8000/play/live-0123456789/live.m3u8?exp=1900000000&sig=00ff"

# Each exercise as the lesson leaves it for the learner: the answer still None.
UNTOUCHED = {
    "01 key for a partition": lambda: l01.key_for_partition(None, 1, 6),
    "01 fixed event": lambda: l01.fixed_event(None, LIVE),
    "02 fixed upload": lambda: l02.upload_fixed(None),
    "02 predicted codes": lambda: l02.predicted_codes(dict.fromkeys(l02.REQUESTS), api=None),
    "03 idempotent write": lambda: l03.idempotent_write(None),
    "03 fresh checkpoint": lambda: l03.fresh_checkpoint_reads(None, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4]),
    "04 ladder": lambda: l04.predicted_ladder(None, ["480p", "360p"], 480),
    "04 trace": lambda: l04.rendition_traced(VOD, "360p", 1, None, None),
    "05 media sequence": lambda: l05.predicted_media_sequence(None, 12, []),
    "05 missing": lambda: l05.predicted_missing(None, [0, 1, 2, 4], [3], []),
    "06 position": lambda: l06.found_in_kafka(None, LIVE, 1),
    "06 slowest": lambda: l06.slowest_hop(None, {"a": 1.0, "b": 2.0}),
    "07 live rate": lambda: l07.live_rate(None),
    "07 gaps": lambda: l07.gaps_10m(None),
    "08 kill moment": lambda: l08.kill_moment(None),
    "08 proof": lambda: l08.proof(None, [0, 1], 1),
    "09 forged": lambda: l09.forged_refused(None, URL),
    "09 cdn url": lambda: l09.cdn_url_derived(None, VOD, "360p", 2),
}


@pytest.mark.parametrize("exercise", sorted(UNTOUCHED))
def test_an_untouched_exercise_gets_a_hint_not_a_crash(exercise: str) -> None:
    verdict = UNTOUCHED[exercise]()
    assert isinstance(verdict, Verdict) and not verdict
    assert repr(verdict).startswith("hint: ") and "failed with" not in verdict.message
    assert repr(verdict) == repr(UNTOUCHED[exercise]()), "the hint is stable: nbval compares it"
    assert "hint:" in verdict._repr_html_()


def test_a_checker_that_breaks_says_so_and_a_service_away_is_named() -> None:
    @checker
    def broken(_answer: object) -> Verdict:
        raise KeyError("stream_id")

    @checker
    def away(_answer: object) -> Verdict:
        raise ConnectionError("[Errno 111] Connection refused")

    verdict = broken(1)
    assert not verdict and verdict.broken and "KeyError" in verdict.message and "failed with" not in verdict.message
    verdict = away(1)
    assert not verdict and not verdict.broken and "lab status" in verdict.message


def test_01_a_bad_event_gets_its_reason() -> None:
    verdict = l01.fixed_event({"event_type": "live_chunk"}, LIVE)
    assert not verdict and "Field required" in verdict.message
    assert l01.fixed_event({"event_type": "live_end", "stream_id": LIVE}, LIVE).ok is False


def test_01_the_key_search_finds_a_key_for_every_partition() -> None:
    s = solution("l01")
    for target in range(6):
        assert s.partition_of(s.ex1_key_for_partition(target, 6), 6) == target


def test_03_appending_is_not_idempotent_and_the_solution_is() -> None:
    def append(batch_id, rows, store):
        for row in rows:
            store[len(store)] = row

    verdict = l03.idempotent_write(append)
    assert not verdict and "(stream_id, chunk_index)" in verdict.message
    assert l03.idempotent_write(solution("l03").write_batch)
    assert l03.fresh_checkpoint_reads(solution("l03").PREDICTED, [0, 1, 2, 3, 4], [0, 1, 2, 3, 4])


def test_04_ladder_prediction_against_the_ladder_rule() -> None:
    from lab.media.ladder import ladder_for

    answered = [r.name for r in ladder_for(480, ["1080p", "720p", "480p", "360p"])]
    assert l04.predicted_ladder(solution("l04").PREDICTED_RUNGS, answered, 480)


def test_05_predictions() -> None:
    s = solution("l05")
    seen = [(0, 3), (1, 10), (2, 10)]
    assert l05.predicted_media_sequence(s.ex2_media_sequence(12, 10), 12, seen)
    assert "the viewer saw" in l05.predicted_media_sequence(2, 12, seen).message
    assert l05.predicted_missing(s.ex1_missing([3], [5]), [0, 1, 2, 4, 6, 7], [3], [5])


def test_06_slowest_hop() -> None:
    durations = {"1 encoder: segment → S3": 12.0, "3 Kafka → Spark batch → playlist PUT": 240.0}
    assert l06.slowest_hop(solution("l06").ex2_slowest(durations), durations)


def test_08_proofs() -> None:
    s = solution("l08")
    assert l08.kill_moment(s.KILL_AT_CHUNK) and l08.kill_at(s.KILL_AT_CHUNK) == s.KILL_AT_CHUNK
    assert l08.kill_at(None) == l08.DEFAULT_KILL_AT
    assert l08.proof(s.nothing_lost, [0, 1, 2], 2)


def test_09_checks_that_need_no_service() -> None:
    s = solution("l09")
    assert l09.cdn_url_derived(s.ex2_cdn_url(VOD, "360p", 2), VOD, "360p", 2)
    forged = s.ex1_forged(URL)
    assert "exp=1900086400" in forged and "sig=00ff" in forged


def test_no_checker_keeps_an_answer_under_a_public_name() -> None:
    """The names the issue found (l07.QUESTIONS with its PromQL, l05.media_sequence_after, l08.reference,
    l01.predicted_partition) are gone, and l07 keeps hashes only."""
    assert not hasattr(l05, "media_sequence_after") and not hasattr(l08, "reference")
    assert not hasattr(l01, "predicted_partition")
    text = repr(l07.QUESTIONS)
    assert "chunks_processed_total" not in text and "live_chunk_gaps_total" not in text and "[1m]" not in text
