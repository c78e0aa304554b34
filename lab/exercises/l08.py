"""Lesson 08 (recovery): the moment of the crash chosen by the learner; the proof that nothing was lost."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, call, checker, hint, is_bool, is_int, kind, not_an_int, passed, untouched

DEFAULT_KILL_AT = 10  # the chunk the lesson kills at while KILL_AT_CHUNK is untouched
KILL_RANGE = range(8, 41)

# (description, indexes recorded, last index published, nothing lost and nothing duplicated?)
CASES = [
    ("every chunk once", [0, 1, 2, 3, 4], 4, True),
    ("chunk 3 lost", [0, 1, 2, 4], 4, False),
    ("chunk 2 twice", [0, 1, 2, 2, 3, 4], 4, False),
    ("the last chunk lost", [0, 1, 2, 3], 4, False),
    ("out of order but complete", [1, 0, 2, 4, 3], 4, True),
    ("a chunk that was never published", [0, 1, 2, 3, 4, 5], 4, False),
    ("one lost and one duplicated", [0, 1, 2, 2, 4], 4, False),
    ("chunk 1 lost, chunk 3 twice: the same sum", [0, 2, 3, 3, 4], 4, False),
    ("two lost, two extra: the same length and sum", [0, 0, 4, 3, 3], 4, False),
    ("nothing recorded", [], 4, False),
    ("a stream of one chunk", [0], 0, True),
    ("chunks 0 and 4 lost, -1 and 5 never published: the same count and sum, all distinct", [-1, 1, 2, 3, 5], 4,
     False),
]


@checker
def kill_moment(kill_at: Any) -> Verdict:
    if untouched(kill_at):
        return hint(f"set KILL_AT_CHUNK to the chunk after which spark-live dies ({KILL_RANGE.start}-"
                    f"{KILL_RANGE.stop - 1}); until then the lesson uses {DEFAULT_KILL_AT}")
    if not is_int(kill_at):
        return not_an_int("KILL_AT_CHUNK", kill_at, str(DEFAULT_KILL_AT + 2))
    if kill_at not in KILL_RANGE:
        return hint(f"KILL_AT_CHUNK is an int from {KILL_RANGE.start} to {KILL_RANGE.stop - 1}, not {kill_at}: "
                    "before 8 the job is still warming up, after 40 the stream has ended")
    return passed(f"spark-live will be killed once chunk {kill_at} is published")


def kill_at(value: Any) -> int:
    return int(value) if is_int(value) and value in KILL_RANGE else DEFAULT_KILL_AT


@checker
def proof(nothing_lost: Any, indexes: list[int], last: int) -> Verdict:
    """`nothing_lost(indexes, last)` must say whether chunks 0..last are each recorded exactly once."""
    if untouched(nothing_lost):
        return hint("define nothing_lost(indexes, last) -> bool and run this cell")
    if not callable(nothing_lost):
        return hint(f"nothing_lost is {kind(nothing_lost)}: define it as a function, def nothing_lost(indexes, last)")
    for what, case, case_last, expected in CASES:
        said, broke = call(nothing_lost, list(case), case_last, name="nothing_lost", case=f"{what} ({case})")
        if broke is not None:
            return broke
        if not is_bool(said):
            return hint(f"nothing_lost must return True or False, it returned {said!r} ({kind(said)}) for {what}")
        if bool(said) != expected:
            return hint(f"for {what} ({case}, last {case_last}) your function says {said}: it should say "
                        f"{expected}. Compare the sorted indexes with range(last + 1)")
    verdict, broke = call(nothing_lost, list(indexes), last, name="nothing_lost", case="this stream's chunks")
    if broke is not None:
        return broke
    if not verdict:
        return hint(f"your function passes every test case, and says this stream lost or duplicated a chunk: "
                    f"look at the chunk documents (indexes 0..{last}) and tell the instructor")
    return passed(f"your proof holds on {len(CASES)} test cases, and on this stream: chunks 0-{last}, each once, "
                  "across a crash and a broker restart")

