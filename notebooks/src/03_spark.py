# %% [markdown]
# # 03 · Spark Structured Streaming: reading the chunk events
#
# Two Spark queries do the pipeline's work: the **VOD** query transcodes uploaded segments into the ABR
# ladder, the **live** query verifies live segments and rewrites each stream's rolling playlist. Both read
# Kafka with Structured Streaming. In this lesson you run a small query of your own, in the notebook, on the
# same topic.
#
# **Learning goals**
# - read a Kafka topic as an unbounded table with `readStream`;
# - process each micro-batch with your own Python function (`foreachBatch`);
# - choose a trigger (how often a batch runs) and see a checkpoint make a query resume exactly where it
#   stopped;
# - find the lab's two queries in the code, their checkpoints on disk, and their Spark UI.

# %% [markdown]
# ![a micro-batch and its checkpoint](diagrams/03_spark.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import inspect
import secrets
import shutil
import tempfile
from pathlib import Path

from pyspark.sql import functions as F

from lab import events, storage, topics
from lab.config import settings
from lab.exercises import l03
from lab.producer.replay import sample_segments
from lab.streaming import live, session, vod
from lab.widgets import HTMLDisplay, lesson

lesson.setup()

# %% [markdown]
# ## A SparkSession in the notebook
#
# `lesson.spark_session` uses the lab's own builder (`lab/streaming/session.py`: the Kafka connector jars,
# the settings) with one local core, so it stays out of the way of the stack's two Spark applications.
# Starting the JVM takes a few seconds.

# %%
spark = lesson.spark_session("lesson-03")
print("Spark", spark.version, "master", spark.sparkContext.master)

# %% [markdown]
# ## Some events to read
#
# Three chunk events of a made-up live stream, published the way the encoder does (segment to S3, event to
# Kafka), with real pre-encoded segments so we need not wait for ffmpeg.
#
# They go to a **topic of this lesson's own**, not to `live-chunks`: the lab's producer publishes live chunks
# all the time, so on `live-chunks` "nothing new arrived" would never be true for long, and this lesson wants
# to predict exactly what its query reads. (The lab's live query does not read this topic, so these chunks
# reach no playlist.)

# %%
TOPIC = lesson.private_topic("lesson-03")
stream_id = f"live-{secrets.token_hex(5)}"
segments = sample_segments(3, resolution="320x180")
producer = lesson.producer("lesson-03")


def publish_chunk(index):
    """Segment to S3 first, then its event: an event never names an object that is not there."""
    segment = segments[index % len(segments)]
    key = storage.live_chunk_key(stream_id, index)
    storage.put_segment(settings.bucket_live, key, segment.data, segment.sha256)
    event = events.LiveChunkEvent(
        stream_id=stream_id, chunk_index=index, sequence_number=index, object_key=key,
        checksum_sha256=segment.sha256, size_bytes=len(segment.data), duration_ms=segment.duration_ms,
        keyframe_aligned=segment.keyframe_aligned, audio_track_id=f"audio-{stream_id}",
        video_track_id=f"video-{stream_id}", published_at_ms=events.now_ms())
    topics.publish(producer, TOPIC, stream_id, events.encode(event))


for index in range(3):
    publish_chunk(index)
assert producer.flush(30) == 0, "Kafka acknowledged every event"
print(f"published chunks 0-2 of {stream_id} to our own topic")

# %% [markdown]
# ## readStream: Kafka as an unbounded table
#
# The Kafka source gives one row per record, with columns `key`, `value` (bytes), `topic`, `partition`,
# `offset`, `timestamp`. The value is our JSON event; we pull two fields out of it and keep only our stream.
# Nothing runs yet: this only describes the query.

# %%
raw = session.kafka_stream(spark, TOPIC, starting_offsets="earliest")
chunk_events = raw.select(
    F.col("key").cast("string").alias("stream_id"), "partition", "offset",
    F.get_json_object(F.col("value").cast("string"), "$.event_type").alias("event_type"),
    F.get_json_object(F.col("value").cast("string"), "$.chunk_index").cast("int").alias("chunk_index"),
    F.length("value").alias("bytes"),
).where(F.col("stream_id") == stream_id)
print("streaming:", chunk_events.isStreaming)
chunk_events.printSchema()

# %% [markdown]
# ## foreachBatch, a trigger and a checkpoint
#
# `foreachBatch` calls a Python function with each micro-batch as an ordinary DataFrame, plus its batch id:
# there you can write anywhere, any way. The lab's queries do exactly this (`vod.process_vod_batch`,
# `live.process_live_batch`). Ours only remembers what it saw.
#
# The **trigger** says when batches run: `processingTime="1 second"` (the VOD query), `"0 seconds"` (the
# live query: the next batch as soon as the previous one ends), `availableNow=True` (everything there is now,
# then stop: handy for a lesson, and for catch-up jobs).
#
# The **checkpoint** is a directory where Spark writes, before each batch, which offsets it will read
# (`offsets/N`) and, after it, that the batch is done (`commits/N`). A restarted query reads it back and
# carries on after the last committed batch: nothing skipped, nothing read twice.

# %%
checkpoint = Path(tempfile.mkdtemp(prefix="lesson-03-")) / "checkpoint"
seen = []


def remember(batch_df, batch_id):
    rows = sorted(batch_df.collect(), key=lambda r: r.chunk_index)
    seen.append((batch_id, [r.chunk_index for r in rows]))


def run_once():
    """Start the query, let it process what is available now, and wait for it to stop."""
    query = (chunk_events.writeStream.queryName("lesson03")
             .option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True)
             .foreachBatch(remember)
             .start())
    query.awaitTermination(180)
    return query


first = run_once()
for batch_id, chunks in seen:
    print(f"batch {batch_id}: chunk events {chunks}")

# %% [markdown]
# What the query reported about its batches (`recentProgress`, the same numbers the Spark UI shows):

# %% tags=["nbval-ignore-output"]
[{k: p[k] for k in ("batchId", "numInputRows", "inputRowsPerSecond", "durationMs")} for p in first.recentProgress]

# %% [markdown]
# Run it again with the same checkpoint: nothing new was published to our topic, so no batch runs.

# %%
before = len(seen)
run_once()
rerun_batches = len(seen) - before
print("new batches:", rerun_batches)

# %% [markdown]
# Publish two more chunks, and run it once more: only the new ones are read, in a new batch.

# %%
for index in (3, 4):
    publish_chunk(index)
assert producer.flush(30) == 0
run_once()
for batch_id, chunks in seen[before:]:
    print(f"batch {batch_id}: chunk events {chunks}")

# %% [markdown]
# Here is the checkpoint: one `offsets` file per planned batch, one `commits` file per finished one.
# The last offsets file holds the end offset of every partition for that batch.

# %%
for sub in ("offsets", "commits"):
    print(f"{sub}/", sorted(p.name for p in (checkpoint / sub).iterdir() if not p.name.startswith(".")))

# %% tags=["nbval-ignore-output"]
last = max((checkpoint / "offsets").iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else -1)
print(last.read_text().splitlines()[-1])

# %% [markdown]
# ### Your turn 1 · predict what a new checkpoint reads
#
# Suppose the checkpoint were lost (deleted by mistake, or a new query name). The query below is the same
# one with a **new, empty** checkpoint. Which chunk indexes will its batch 0 read? Write your prediction in
# `PREDICTED`, then run the cell: it runs the query and the checker compares. (Hint: where does a query with
# no checkpoint start? Look at `startingOffsets` above.)

# %%
PREDICTED = None  # your turn: a list of chunk indexes, e.g. [3, 4]
fresh_seen = []  # a new, empty checkpoint on every run of this cell
fresh = (chunk_events.writeStream.queryName("lesson03_fresh")
         .option("checkpointLocation", tempfile.mkdtemp(dir=checkpoint.parent, prefix="fresh-checkpoint-"))
         .trigger(availableNow=True)
         .foreachBatch(lambda df, batch_id: fresh_seen.append((batch_id, sorted(r.chunk_index for r in df.collect()))))
         .start())
fresh.awaitTermination(180)
l03.fresh_checkpoint_reads(PREDICTED, dict(fresh_seen).get(0, []), published=[0, 1, 2, 3, 4])

# %% [markdown]
# ## The lab's two queries
#
# Both are in `lab/streaming/`, and both start the same way: read a topic, name the query, give it a
# checkpoint and a trigger, hand each batch to a Python function. The live query:

# %% tags=["nbval-ignore-output"]
print(inspect.getsource(live.start))

# %%
print("live trigger:", live.trigger_options())
print("VOD trigger: ", vod.trigger_options())

# %% [markdown]
# Inside the batch function the rows are collected on the driver (they are ~500-byte events, a few per
# second), validated with the pydantic models of `lab/events.py` (invalid ones go to the dead-letter topic),
# then:
# - **VOD** spreads the segments over every executor core, one Spark task per segment
#   (`sc.parallelize(tasks, numSlices=len(tasks))`): each task downloads a raw segment, checks its SHA-256,
#   transcodes the whole ladder with one ffmpeg, and uploads the renditions;
# - **live** checks each segment's SHA-256, detects gaps in the sequence numbers, writes one playlist per
#   stream, and records the chunks in the catalog with inserts keyed by `(stream_id, chunk_index)`, so a
#   batch replayed after a crash rewrites the same documents instead of duplicating them (lesson 08).
#
# ### Your turn 2 · make a `foreachBatch` write idempotent
#
# Spark runs a batch again, with the same rows, when it crashed after the batch's writes but before its
# commit. `write_batch` below writes each row of a batch into `store` (a dict standing in for the catalog),
# as a batch function would. As written, a replayed batch leaves duplicates. Change it so that the store ends
# the same whether a batch ran once or twice, and run the cell: the checker runs batch 0, batch 0 again,
# batch 1, then batch 2 with one chunk redelivered (at a new Kafka offset, as a producer's retry would be).
# The rows come from two streams, and both have a chunk 0, 1, 2…

# %%
def write_batch(batch_id, rows, store):
    for row in rows:
        store[len(store)] = row  # your turn: a replay must rewrite, not add


l03.idempotent_write(write_batch)

# %% [markdown]
# ### Your turn 3 · build it: an idempotent `foreachBatch`, in a real query
#
# Now the same idea in a real query, against a real catalog. `write_chunks(batch_df, batch_id, collection)`
# is the `foreachBatch` body of a query the checker runs over our topic (to which it adds three chunks of a
# second stream, with the same chunk numbers); `collection` is a MongoDB collection of your own
# (`mine_chunks_…`: nothing else reads it). The checker runs the query, deletes the last batch's commit file
# (as a crash between the writes and the commit would leave it), runs it again so Spark replays that batch
# into your function, and counts the documents. As written, each replay adds documents. Make it idempotent:
# the table under the verdict shows what the collection holds. `lab sandbox reset` deletes your collections.

# %%
def write_chunks(batch_df, batch_id, collection):
    for row in batch_df.select("stream_id", "chunk_index").collect():
        collection.insert_one({"stream_id": row.stream_id, "chunk_index": row.chunk_index})  # your turn


l03.replayed_into_catalog(write_chunks, spark, TOPIC)

# %% [markdown]
# The lab's queries keep their checkpoints in the stack's state directory, one per query:

# %% tags=["nbval-ignore-output"]
for query in ("vod", "live"):
    offsets = settings.lab_state_dir / "checkpoints" / query / "offsets"
    if offsets.exists():
        batches = sorted(int(p.name) for p in offsets.iterdir() if p.name.isdigit())
        print(f"{query}: {len(batches)} batch(es) planned so far, the last is batch {batches[-1]}")
    else:
        print(f"{query}: no checkpoint here (in the container stack it lives in the spark-job container)")

# %% [markdown]
# Each query runs as its own Spark application in the embedded stack (a long VOD transcode never delays a
# live batch), each with its web UI: the **Structured Streaming** tab shows every batch's input rate,
# processing rate and duration; **Jobs** and **Stages** show the VOD transcodes as tasks on executors.

# %%
ui = {"VOD query": settings.spark_vod_ui_port, "live query": settings.spark_live_ui_port}
HTMLDisplay("".join(f'<p><a href="http://{settings.lab_public_host}:{port}/StreamingQuery/" target="_blank">'
                    f"Spark UI of the {name}</a> (port {port})</p>" for name, port in ui.items()),
            "links to the Spark UIs")

# %% [markdown]
# ## Tidy up
#
# Stop the notebook's SparkSession (its JVM would otherwise hold a gigabyte), delete our checkpoints, our
# topic and our segments.

# %%
spark.stop()
commits = sorted(p.name for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
shutil.rmtree(checkpoint.parent)
lesson.delete_topic(TOPIC)
storage.delete_prefix(settings.bucket_live, f"{stream_id}/")
print("stopped")

# %% [markdown]
# ## Check yourself

# %%
first_batch_id, first_chunks = seen[0]
after = [chunk for _, chunks in seen[before:] for chunk in chunks]
assert first_chunks == [0, 1, 2], f"the first run read the three events published before it: {seen}"
assert rerun_batches == 0, "with nothing new on our topic, the rerun ran no batch"
assert after == [3, 4], f"the third run read only the events published since: {after}"
assert commits == [str(batch_id) for batch_id, _ in seen], "one commit per finished batch"
lesson.ok(f"a streaming query read {sum(len(c) for _, c in seen)} events in {len(seen)} batches over 3 runs: "
          "the checkpoint made each run resume where the last one stopped")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. What is a micro-batch, and what decides when the next one runs?
# 2. What does a checkpoint store, and what happens after a crash between `offsets/N` and `commits/N`?
# 3. Spark promises exactly-once. Why must a `foreachBatch` write still be idempotent?
# 4. You delete a query's checkpoint and start it again. What does it read first, and what is the risk?
# 5. Why did this lesson's query read a topic of its own instead of `live-chunks`?
# 6. When would you choose `availableNow=True` over `processingTime="1 second"`?
# 7. Why does the VOD query make one Spark task per segment?
#
# ## Recap
#
# In this lesson:
# - `readStream` makes Kafka an unbounded table; `foreachBatch` hands each micro-batch to your function;
# - the trigger says when batches run; the checkpoint says where a restarted query resumes;
# - a replayed batch repeats its writes, so they must be idempotent;
# - the lab's two queries are built the same way, each with its checkpoint and Spark UI.
#
# **Next:** [04 · VOD](04_vod.ipynb)
