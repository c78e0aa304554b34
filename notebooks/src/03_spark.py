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

# %%
import inspect
import json
import shutil
import tempfile
from pathlib import Path

from pyspark.sql import functions as F

from lab.config import settings
from lab.producer.replay import Replay, sample_segments
from lab.streaming import live, session, vod
from lab.widgets import HTMLDisplay, lesson, topic_frame

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
# A fresh live stream and three chunk events, published the way the encoder does (segment to S3, event to
# Kafka). `Replay` (`lab/producer/live.py`) sends real pre-encoded segments, so we need not wait for ffmpeg.
# Before publishing, note where each partition of `live-chunks` ends: our query starts there.

# %%
start = topic_frame([settings.live_topic])
starting_offsets = {settings.live_topic: {str(r.partition): int(r.end) for r in start.itertuples()}}
replay = Replay(sample_segments(3, resolution="320x180"), api=lesson.api(),
                producer=lesson.producer("lesson-03"))
stream = replay.start_stream("lesson 03: read by a notebook query")
stream_id = stream.stream_id
for _ in range(3):
    replay.send(stream)
assert replay.producer.flush(30) == 0
print(f"published chunks 0-2 of {stream_id}")

# %% [markdown]
# ## readStream: Kafka as an unbounded table
#
# The Kafka source gives one row per record, with columns `key`, `value` (bytes), `topic`, `partition`,
# `offset`, `timestamp`. The value is our JSON event; we pull two fields out of it and keep only our stream.
# Nothing runs yet: this only describes the query.

# %%
raw = session.kafka_stream(spark, settings.live_topic, starting_offsets=json.dumps(starting_offsets))
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
# Run it again with the same checkpoint: there is nothing new, so no batch runs.

# %%
before = len(seen)
run_once()
print("new batches:", len(seen) - before)

# %% [markdown]
# Publish two more chunks, and run it once more: only the new ones are read, in a new batch.

# %%
for _ in range(2):
    replay.send(stream)
assert replay.producer.flush(30) == 0
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
# Their checkpoints are in the stack's state directory, one per query:

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
# End the stream, stop the notebook's SparkSession (its JVM would otherwise hold a gigabyte), and delete
# our checkpoint.

# %%
replay.end(stream)
spark.stop()
commits = sorted(p.name for p in (checkpoint / "commits").iterdir() if p.name.isdigit())
shutil.rmtree(checkpoint.parent)
print("stopped")

# %% [markdown]
# ## Check yourself

# %%
assert seen[0] == (0, [0, 1, 2]), seen
assert len(seen) == 2 and seen[1] == (1, [3, 4]), "the rerun read only the new events, in batch 1"
assert commits == ["0", "1"], "one commit per finished batch"
lesson.ok("a streaming query read 5 events in 2 batches over 3 runs: the checkpoint made each run resume "
          "where the last one stopped")

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
