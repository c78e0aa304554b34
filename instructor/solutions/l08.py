"""Lesson 08 solutions."""

KILL_AT_CHUNK = 12  # any chunk from 8 to 40


def nothing_lost(indexes, last):
    """Each chunk 0..last recorded exactly once: the sorted indexes are exactly that range."""
    return sorted(indexes) == list(range(last + 1))
