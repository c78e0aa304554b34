"""Lesson 08 (recovery): the moment of the crash chosen by the learner; the proof that nothing was lost."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, checker, hint, passed, untouched

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
]


@checker
def kill_moment(kill_at: Any) -> Verdict:
    if untouched(kill_at):
        return hint(f"set KILL_AT_CHUNK to the chunk after which spark-live dies ({KILL_RANGE.start}-"
                    f"{KILL_RANGE.stop - 1}); until then the lesson uses {DEFAULT_KILL_AT}")
    if not isinstance(kill_at, int) or kill_at not in KILL_RANGE:
        return hint(f"KILL_AT_CHUNK is an int from {KILL_RANGE.start} to {KILL_RANGE.stop - 1}")
    return passed(f"spark-live will be killed once chunk {kill_at} is published")


def kill_at(value: Any) -> int:
    return value if isinstance(value, int) and value in KILL_RANGE else DEFAULT_KILL_AT


@checker
def proof(nothing_lost: Any, indexes: list[int], last: int) -> Verdict:
    """`nothing_lost(indexes, last)` must say whether chunks 0..last are each recorded exactly once."""
    if untouched(nothing_lost) or not callable(nothing_lost):
        return hint("define nothing_lost(indexes, last) -> bool and run this cell")
    for what, case, case_last, expected in CASES:
        said = nothing_lost(list(case), case_last)
        if not isinstance(said, bool):
            return hint(f"nothing_lost must return True or False, it returned {said!r}")
        if said != expected:
            return hint(f"for {what} ({case}, last {case_last}) your function says {said}: it should say "
                        f"{expected}. Compare the sorted indexes with range(last + 1)")
    verdict = nothing_lost(list(indexes), last)
    if not verdict:
        return hint(f"your function passes every test case, and says this stream lost or duplicated a chunk: "
                    f"look at the chunk documents (indexes 0..{last}) and tell the instructor")
    return passed(f"your proof holds on {len(CASES)} test cases, and on this stream: chunks 0-{last}, each once, "
                  "across a crash and a broker restart")


def reference(indexes: list[int], last: int) -> bool:
    return sorted(indexes) == list(range(last + 1))

