"""Lesson 03 (Spark): a foreachBatch write made idempotent; which events a fresh checkpoint reads, predicted."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lab.exercises import Verdict, call, checker, hint, int_list, not_an_int_list, passed, untouched

STREAMS = ("live-00000000aa", "live-00000000bb")  # two streams with the same chunk indexes: keys must not collide


def _rows(indexes: range, offset: int = 0) -> list[dict[str, Any]]:
    """The rows of one micro-batch: chunks of both streams, each with the Kafka offset it was read at."""
    return [{"stream_id": s, "chunk_index": i, "event_type": "live_chunk", "kafka_offset": offset + 2 * i + n}
            for i in indexes for n, s in enumerate(STREAMS)]


# (what happens, batch id, rows): a run of batch 0, its replay after a crash before its commit, batch 1, and the
# producer's retry of chunk 3 redelivered in batch 2 at a new offset (an at-least-once source does that)
RUNS = [("batch 0", 0, _rows(range(3))), ("the replay of batch 0", 0, _rows(range(3))),
        ("batch 1", 1, _rows(range(3, 5))), ("chunk 3 redelivered in batch 2", 2, _rows(range(3, 4), 100))]
DISTINCT = 10  # chunks 0-4 of two streams


@checker
def fresh_checkpoint_reads(predicted: Any, actual: list[int], published: list[int]) -> Verdict:
    """`actual`: the chunk indexes batch 0 of the query with a new checkpoint read; `published`: every chunk
    index the lesson published to its topic."""
    if untouched(predicted):
        return hint("set PREDICTED to the list of chunk indexes you expect batch 0 of the new query to read")
    if not int_list(predicted):
        return not_an_int_list("PREDICTED", predicted, "[3, 4]")
    if sorted(actual) != sorted(published):
        return hint(f"batch 0 of the new query read {sorted(actual)}, not all of {sorted(published)}: its "
                    "checkpoint was not new. Run the cell again: it makes a new checkpoint on each run")
    if sorted(predicted) != sorted(actual):
        return hint(f"you said {sorted(predicted)}; batch 0 read {sorted(actual)}. A new checkpoint knows nothing: "
                    "where does the query start, then? (look at startingOffsets)")
    return passed(f"batch 0 read {sorted(actual)}: a new checkpoint starts from startingOffsets, so every event "
                  "since them is read again")


@checker
def idempotent_write(write_batch: Any) -> Verdict:
    """`write_batch(batch_id, rows, store)` writes rows into the dict `store`. Spark may run a batch twice
    (after a crash between its writes and its commit), and a source may deliver an event twice: the store
    must end with one entry per chunk of each stream."""
    if untouched(write_batch):
        return hint("define write_batch(batch_id, rows, store) and run this cell")
    if not callable(write_batch):
        return hint(f"write_batch is {type(write_batch).__name__}: define it as a function (def write_batch(...))")
    if len(inspect.signature(write_batch).parameters) != 3:
        return hint("write_batch takes three arguments: batch_id, rows, store")
    store: dict[Any, Any] = {}
    for what, batch_id, rows in RUNS:
        _, broke = call(write_batch, batch_id, [dict(r) for r in rows], store, name="write_batch", case=what)
        if broke is not None:
            return broke
        if what == "batch 0" and len(store) != len(rows):
            if not store:
                return hint("after batch 0 the store is empty: write into the `store` you are given "
                            "(store[key] = row), do not make a new one")
            if len(store) < len(rows):
                return hint(f"one run of batch 0 ({len(rows)} chunk events of two streams) left {len(store)} "
                            "entries: both streams have a chunk 0, 1 and 2, so a key of chunk_index alone makes one "
                            "overwrite the other. Key by (stream_id, chunk_index)")
            return hint(f"one run of batch 0 ({len(rows)} chunk events of two streams) left {len(store)} "
                        "entries: one per row, keyed by what identifies the chunk")
    values = list(store.values())
    if len(values) < DISTINCT:
        return hint(f"the store holds {len(values)} entries for {DISTINCT} distinct chunks: two streams both have a "
                    "chunk 0, 1, 2…, so a key of chunk_index alone makes one overwrite the other. Key by "
                    "(stream_id, chunk_index)")
    if len(values) > DISTINCT:
        return hint(f"after batch 0, its replay, batch 1 and a redelivered chunk the store holds {len(values)} "
                    f"entries for {DISTINCT} distinct chunks: a replayed or redelivered row must land on the same "
                    "key. Key by what identifies the chunk, (stream_id, chunk_index), not by arrival, batch or "
                    "offset")
    if not all(isinstance(v, dict) for v in values) or sorted(
            (v.get("stream_id"), v.get("chunk_index")) for v in values) != sorted(
            (s, i) for s in STREAMS for i in range(5)):
        return hint("the store must hold each chunk's row (the dict the batch gave you) as its value")
    return passed("a replayed batch and a redelivered event rewrite the same entries: the store ends with one "
                  f"entry per chunk of each stream ({DISTINCT}), as if each event arrived once")


def run_twice(write_batch: Callable[[int, list, dict], None]) -> dict:
    """The store after every run of RUNS (for the lesson to show)."""
    store: dict[Any, Any] = {}
    for _, batch_id, rows in RUNS:
        write_batch(batch_id, [dict(r) for r in rows], store)
    return store
