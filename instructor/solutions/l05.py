"""Lesson 05 solutions."""


def ex2_media_sequence(verified: int, window: int) -> int:
    return max(0, verified - window)  # segments 0..verified-window-1 slid out; the first one in is numbered so


def ex1_missing(missing: list[int], corrupted: list[int]) -> list[int]:
    return sorted(missing + corrupted)  # never sent (the gap) + sent with bytes that fail their checksum
