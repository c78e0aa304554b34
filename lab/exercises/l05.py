"""Lesson 05 (live): the media sequence of a sliding window, predicted; what the recording will miss, predicted.
Both are judged against what the real playlists said, not against a formula kept here."""

from __future__ import annotations

from typing import Any

from lab.exercises import Verdict, checker, hint, int_list, is_int, not_an_int, not_an_int_list, passed, untouched


@checker
def predicted_missing(predicted: Any, recorded: list[int], gaps: list[int], corrupted: list[int]) -> Verdict:
    """`recorded`: the chunk numbers of the final recording's playlist; `gaps` and `corrupted`: what the encoder
    really skipped and corrupted (for the hint)."""
    if untouched(predicted):
        return hint("set PREDICTED_MISSING to the chunk numbers you expect the final recording to lack")
    if not int_list(predicted):
        return not_an_int_list("PREDICTED_MISSING", predicted, "[3, 7]")
    actual = sorted(set(range(max(recorded) + 1)) - set(recorded)) if recorded else []
    said = sorted(predicted)
    if said == actual:
        return passed(f"the recording lacks exactly {actual}: the lost one and the corrupted one, nothing else")
    if said == sorted(gaps) and corrupted:
        return hint(f"{said} were never sent, right; but a segment whose bytes fail their checksum is never put in "
                    "a playlist either. Which one was uploaded corrupted?")
    if said == sorted(corrupted) and gaps:
        return hint(f"{said} failed its checksum, right; and which sequence number did the encoder skip (the gap)?")
    return hint(f"you said {said}; the recording lacks {actual}. One was never sent (the gap); one was sent but "
                "its bytes did not match its checksum: find both in the chunk table above")



@checker
def predicted_media_sequence(predicted: Any, verified: int, seen: list[tuple[int, int]]) -> Verdict:
    """`seen`: (media sequence, entries) of the live playlist versions the viewer read. A version that lists
    `entries` segments after MEDIA-SEQUENCE `ms` is the one written when `ms + entries` were verified."""
    if untouched(predicted):
        return hint(f"set PREDICTED_MEDIA_SEQUENCE to the #EXT-X-MEDIA-SEQUENCE you expect once {verified} "
                    "segments are verified")
    if not is_int(predicted):
        return not_an_int("PREDICTED_MEDIA_SEQUENCE", predicted, "3")
    full = max((entries for ms, entries in seen if ms > 0), default=None)
    if full is None:
        return hint("the viewer has not seen the window slide yet: run the cell above (it waits for that), "
                    "then this one")
    expected = max(0, verified - full)  # the real window's size, as the playlist showed it
    if predicted == verified:
        return hint(f"{verified} is how many segments were verified; MEDIA-SEQUENCE is the number of the first one "
                    "still in the playlist. How many slid out?")
    if predicted in (expected - 1, expected + 1):
        return hint(f"{predicted} is one off. Segments are numbered from 0: if the first k slid out, the first "
                    "one still in is number k")
    if predicted != expected:
        return hint(f"you said {predicted}. The window keeps the last {full} segments (count the lines of a "
                    f"version the viewer saw): how many of the first {verified} have slid out?")
    witnessed = [ms for ms, entries in seen if ms + entries == verified]
    also = f"; the viewer saw that very version (MEDIA-SEQUENCE {witnessed[0]})" if witnessed else ""
    return passed(f"{expected}: segments 0..{expected - 1} slid out of a window of {full}{also}")