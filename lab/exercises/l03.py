"""Lesson 03 (Spark): a foreachBatch write made idempotent; which events a fresh checkpoint reads, predicted."""

from __future__ import annotations

import inspect
import secrets
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


OTHER_STREAM = "live-00000000cc"  # a second stream on the learner's topic, with the same chunk indexes


def _publish_other_stream(topic: str) -> None:
    from lab import topics

    producer = topics.producer(**{"client.id": "lab-exercises-l03"})
    for index in range(3):
        value = f'{{"event_type": "live_chunk", "stream_id": "{OTHER_STREAM}", "chunk_index": {index}}}'
        topics.publish(producer, topic, OTHER_STREAM, value.encode())
    if producer.flush(30):
        raise ConnectionError("Kafka did not acknowledge the second stream's events within 30 s")


@checker
def replayed_into_catalog(write_chunks: Any, spark: Any, topic: str) -> Verdict:
    """Build it: `write_chunks(batch_df, batch_id, collection)` is the foreachBatch body of a real query over the
    learner's topic, writing into a catalog collection of the learner's own (`mine_chunks_…`). The checker runs
    the query, removes its last batch's commit (a crash after the writes, before the commit), runs it again so
    Spark replays that batch into the same function, and counts the documents in the real collection."""
    import shutil
    import tempfile
    from pathlib import Path

    import pandas as pd
    from pyspark.errors import StreamingQueryException
    from pyspark.sql import functions as F

    from lab import catalog
    from lab.exercises import first_line, sandbox
    from lab.streaming import session

    if untouched(write_chunks):
        return hint("write write_chunks(batch_df, batch_id, collection) and run this cell")
    if not callable(write_chunks) or len(inspect.signature(write_chunks).parameters) != 3:
        return hint("write_chunks is a function of three arguments: batch_df, batch_id, collection")
    _publish_other_stream(topic)
    rows = session.kafka_stream(spark, topic, starting_offsets="earliest").select(
        F.col("key").cast("string").alias("stream_id"), "offset",
        F.get_json_object(F.col("value").cast("string"), "$.chunk_index").cast("int").alias("chunk_index"))
    name = sandbox.collection_name("chunks")
    collection = catalog.collection(name)
    calls: list[int] = []
    chunks: set[tuple[str, int]] = set()

    errors: list[BaseException] = []

    def body(batch_df, batch_id):
        calls.append(batch_id)
        chunks.update((r.stream_id, r.chunk_index) for r in batch_df.select("stream_id", "chunk_index").collect())
        try:
            write_chunks(batch_df, batch_id, collection)
        except Exception as exc:  # kept for the hint: Spark's own error wraps it in a JVM traceback
            errors.append(exc)
            raise

    checkpoint = Path(tempfile.mkdtemp(prefix="mine-checkpoint-"))
    try:
        for run in ("the first run", "the run after the crash"):
            query = (rows.writeStream.queryName(f"mine_{secrets.token_hex(3)}")
                     .option("checkpointLocation", str(checkpoint))
                     .trigger(availableNow=True).foreachBatch(body).start())
            try:  # a query that failed raises here (pyspark's awaitTermination), not only in exception()
                query.awaitTermination(300)
            except StreamingQueryException:
                pass
            if query.exception() is not None:
                why = first_line(errors[0]) if errors else first_line(query.exception())[:300]
                return hint(f"your write_chunks raised {why} in {run}: fix it and run the cell again")
            if run == "the first run":
                first = collection.count_documents({})
                commits = [p for p in (checkpoint / "commits").iterdir() if p.name.isdigit()]
                last = max(int(p.name) for p in commits)
                (checkpoint / "commits" / str(last)).unlink()  # the crash: writes done, commit never written
                (checkpoint / "commits" / f".{last}.crc").unlink(missing_ok=True)
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    if calls.count(last) != 2:
        return hint(f"Spark ran batch {last} {calls.count(last)} time(s) after its commit was removed: tell the "
                    "instructor")
    docs = list(collection.find({}, {"_id": 0}).sort([("stream_id", 1), ("chunk_index", 1)]))  # stable table
    table = pd.DataFrame(docs).head(20) if docs else None
    if first < len(chunks):
        return hint(f"after the first run your collection holds {first} documents for {len(chunks)} distinct "
                    "chunks of two streams (both have chunks 0, 1, 2): a key of chunk_index alone makes one "
                    "overwrite the other", table)
    if len(docs) != len(chunks):
        return hint(f"your collection held {first} documents after the first run and {len(docs)} after Spark "
                    f"replayed batch {last}: the replay added them (an event delivered twice adds one too). "
                    "Write each chunk under an _id made of what identifies it (stream_id and chunk_index), "
                    "with replace_one(..., upsert=True), so a replay rewrites it", table)
    return passed(f"Spark replayed batch {last} into your write_chunks and your collection still holds "
                  f"{len(docs)} documents, one per chunk of each stream: your write is idempotent, in a real "
                  "query", table)

