"""Lesson 03 (Spark): a foreachBatch write made idempotent; which events a fresh checkpoint reads, predicted."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lab.exercises import Verdict, checker, hint, passed, untouched

STREAM = "live-00000000aa"


def _rows(indexes: range) -> list[dict[str, Any]]:
    return [{"stream_id": STREAM, "chunk_index": i, "event_type": "live_chunk"} for i in indexes]


@checker
def idempotent_write(write_batch: Any) -> Verdict:
    """`write_batch(batch_id, rows, store)` writes rows into the dict `store`. Spark may run a batch twice
    (after a crash between its writes and its commit): the store must end the same as after one run."""
    if untouched(write_batch) or not callable(write_batch):
        return hint("define write_batch(batch_id, rows, store) and run this cell")
    if len(inspect.signature(write_batch).parameters) != 3:
        return hint("write_batch takes three arguments: batch_id, rows, store")
    store: dict[Any, Any] = {}
    write_batch(0, _rows(range(3)), store)
    once = len(store)
    write_batch(0, _rows(range(3)), store)  # the replay of batch 0
    write_batch(1, _rows(range(3, 5)), store)
    values = list(store.values())
    if once != 3:
        return hint(f"one run of batch 0 (3 chunk events) left {once} entries in the store: write one per row")
    if len(values) != 5:
        return hint(f"after batch 0, its replay and batch 1 (5 distinct chunks) the store holds {len(values)} "
                    "entries: key each write by what identifies the chunk, (stream_id, chunk_index), not by "
                    "arrival")
    if sorted(v["chunk_index"] for v in values) != list(range(5)):
        return hint("the store must hold each chunk's row (the dict the batch gave you) as its value")
    return passed("a replayed batch rewrites the same 3 entries: the store ends as if each batch ran once")


@checker
def fresh_checkpoint_reads(predicted: Any, actual: list[int]) -> Verdict:
    if untouched(predicted):
        return hint("set PREDICTED to the list of chunk indexes you expect batch 0 of the new query to read")
    if not isinstance(predicted, (list, tuple)) or not all(isinstance(i, int) for i in predicted):
        return hint("PREDICTED is a list of ints, such as [3, 4]")
    if sorted(predicted) != sorted(actual):
        return hint(f"you said {sorted(predicted)}; batch 0 read {sorted(actual)}. A new checkpoint knows nothing: "
                    "where does the query start, then? (look at startingOffsets)")
    return passed(f"batch 0 read {sorted(actual)}: a new checkpoint starts from startingOffsets, so every event "
                  "since them is read again")


def run_twice(write_batch: Callable[[int, list, dict], None]) -> dict:
    """The store after batch 0, its replay and batch 1 (for the lesson to show)."""
    store: dict[Any, Any] = {}
    for batch_id, rows in ((0, _rows(range(3))), (0, _rows(range(3))), (1, _rows(range(3, 5)))):
        write_batch(batch_id, rows, store)
    return store
