"""Lesson 05 (live): the media sequence of a sliding window, predicted; what the recording will miss, predicted."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, checker, hint, passed, untouched


def media_sequence_after(verified: int, window: int) -> int:
    """#EXT-X-MEDIA-SEQUENCE once `verified` segments are in a live playlist that keeps the last `window`:
    the playlist number of the first segment still in the window."""
    return max(0, verified - window)


@checker
def predicted_media_sequence(predicted: Any, verified: int, window: int, seen: list[tuple[int, int]]) -> Verdict:
    """`seen`: (media sequence, entries) of the live versions the viewer saw, to show the prediction live."""
    if untouched(predicted):
        return hint(f"set PREDICTED_MEDIA_SEQUENCE to the #EXT-X-MEDIA-SEQUENCE you expect once {verified} "
                    f"segments are verified, with a window of {window}")
    if not isinstance(predicted, int):
        return hint("PREDICTED_MEDIA_SEQUENCE is an int")
    expected = media_sequence_after(verified, window)
    if predicted != expected:
        return hint(f"you said {predicted}. The window keeps the last {window} segments: how many of the first "
                    f"{verified} have slid out? That count is the number of the first one still in")
    witnessed = [ms for ms, entries in seen if ms + entries == verified]
    also = f"; the viewer saw that very version (MEDIA-SEQUENCE {witnessed[0]})" if witnessed else ""
    return passed(f"{expected}: segments 0..{expected - 1} slid out of a window of {window}{also}")


@checker
def predicted_missing(predicted: Any, recorded: list[int]) -> Verdict:
    if untouched(predicted):
        return hint("set PREDICTED_MISSING to the chunk numbers you expect the final recording to lack")
    if not isinstance(predicted, (list, tuple, set)) or not all(isinstance(i, int) for i in predicted):
        return hint("PREDICTED_MISSING is a list of ints")
    actual = sorted(set(range(max(recorded) + 1)) - set(recorded)) if recorded else []
    if sorted(predicted) != actual:
        return hint(f"you said {sorted(predicted)}; the recording lacks {actual}. One was never sent (the gap); "
                    "one was sent but its bytes did not match its checksum")
    return passed(f"the recording lacks exactly {actual}: the lost one and the corrupted one, nothing else")
