# %% [markdown]
# # 08 · Recovery: crash things, lose nothing
#
# A pipeline earns trust when it is broken. In this lesson you crash the Spark live job in the middle of a
# stream, stop the Kafka broker under a producer, and read a stream again from an old offset, then prove
# that every chunk is in the catalog exactly once and the playlist never skipped or repeated a number.
#
# **Learning goals**
# - explain why a restarted Spark query neither loses nor duplicates chunks (checkpointed offsets +
#   idempotent writes keyed by `(stream_id, chunk_index)` + state in the catalog);
# - see an idempotent producer ride out a broker outage: it queues, retries, and delivers after the restart;
# - replay a stream from an older offset with a consumer assigned to it.
#
# This lesson stops and starts services of the embedded stack (in the container stack, use `docker compose
# stop/start` instead). Its last cell makes sure every service is healthy again.

# %%
import json
import threading
import time

import m3u8
import pandas as pd
from confluent_kafka import Consumer, TopicPartition
from matplotlib.figure import Figure

from lab import catalog, events, storage
from lab.config import settings
from lab.producer.replay import Replay, sample_segments
from lab.widgets import PlaylistViewer, StackHealth, lesson

lesson.setup()

# %% [markdown]
# ## A stream that keeps going
#
# Pre-encoded real segments, two per second, from a background thread, through a producer whose statistics
# we sample every second (`statistics.interval.ms`: librdkafka reports its queue and its connections).

# %%
stats = []
producer = lesson.producer("lesson-08", **{"statistics.interval.ms": 1000,
                                            "stats_cb": lambda raw: stats.append((time.time(), json.loads(raw)))})
replay = Replay(sample_segments(3, resolution="320x180"), api=lesson.api(), producer=producer)
stream = replay.start_stream("lesson 08: recovery")
stream_id = stream.stream_id
stop = threading.Event()
pump = lesson.Background(replay.run, [stream], 2.0, 600.0, stop=stop, name="lesson-08-pump")
viewer = PlaylistViewer(stream_id)
health = StackHealth(show_ui_map=False, interval=2.0)
lesson.wait_for(lambda: len(catalog.chunk_docs(catalog.LIVE, stream_id)) >= 6, "6 chunks recorded", 120)
print(stream_id, "is live")

# %%
viewer

# %%
health

# %% [markdown]
# ## 1 · Crash the Spark live job
#
# `kill_service` sends SIGKILL to the job's whole process group, as a crash or an out-of-memory kill would: no
# clean shutdown, a batch possibly half-written. The encoder keeps publishing meanwhile: Kafka keeps the
# events, and the playlist simply stops moving (watch the viewer).

# %%
killed_at_chunk = stream.next_sequence
old_pid = lesson.kill_service("spark-live")
print("spark-live killed; healthy now:", lesson.healthy("spark-live"))
time.sleep(4)

# %% tags=["nbval-ignore-output"]
print(f"killed pid {old_pid} around chunk {killed_at_chunk}; "
      f"{stream.next_sequence - killed_at_chunk} chunks published since")

# %% [markdown]
# Start it again. The new query reads its checkpoint: the offsets of the last batch it *planned*
# (`offsets/N`) and whether that batch *committed* (`commits/N`). A batch planned but not committed is run
# again with exactly the same offsets. Its writes are idempotent: chunk documents are inserted with `_id`s
# derived from `(stream_id, chunk_index)` (a second insert is a duplicate key, skipped), the stream's state
# (last sequence number, DVR window, playlist numbers) is read back from the catalog, and the playlist is
# rewritten from that state. Then it catches up on what was published while it was down.

# %%
took = lesson.start_service("spark-live")
print(f"spark-live is back and healthy after {took:.0f} s (a JVM, a SparkSession, the Kafka connector)")
behind = stream.next_sequence
lesson.wait_for(lambda: catalog.collection(catalog.LIVE).find_one({"_id": catalog.doc_id(stream_id, behind)}),
                "the job to catch up", timeout=180)
print("caught up: every chunk published while it was down is recorded")

# %% [markdown]
# ## 2 · Stop the broker
#
# Now Kafka itself goes away for a few seconds (a clean stop, as in a rolling upgrade). The producer cannot
# deliver: it keeps the events in its queue and retries, in order; being idempotent, a retry never
# duplicates an event even if the broker had written it before the connection broke. Segments keep going to
# S3 meanwhile.

# %%
stats.clear()
t_stop = time.time()
lesson.stop_service("kafka")
print("kafka stopped; healthy:", lesson.healthy("kafka"))
time.sleep(6)
queued = len(producer)
print("events waiting in the producer's queue:", "some" if queued else "none")
took = lesson.start_service("kafka")
t_back = time.time()
print(f"kafka is back after {took:.0f} s")
lesson.wait_for(lambda: len(producer) == 0 or producer.flush(0) == 0, "the queue to drain", timeout=120)
time.sleep(3)

# %% [markdown]
# The producer's queue, from its own statistics: it fills while the broker is away and drains in one go when
# it is back.

# %%
fig = Figure(figsize=(8, 2.6))
ax = fig.subplots()
ax.plot([at - t_stop for at, s in stats], [s["msg_cnt"] for _, s in stats], marker=".")
ax.axvspan(0, t_back - t_stop, color="#ef5350", alpha=0.15, label="broker stopped")
ax.set_xlabel("seconds since the broker was stopped")
ax.set_ylabel("events queued")
ax.legend(loc="upper right")
fig.tight_layout()
fig

# %% tags=["nbval-ignore-output"]
print(f"peak queue: {max(s['msg_cnt'] for _, s in stats)} events; "
      f"events delivered by this producer in all: {stats[-1][1]['txmsgs']}")

# %% [markdown]
# ## End the stream and count
#
# Stop the encoder, end the stream, and check the result against what the encoder says it published.

# %%
stop.set()
pump.join(timeout=60)
assert producer.flush(60) == 0, "every event was delivered"
replay.end(stream)
last = stream.next_sequence - 1
doc = lesson.wait_for(lambda: (d := catalog.stream_doc(catalog.LIVE, stream_id)) and d["status"] == "vod" and d,
                      "status vod", timeout=180)
docs = catalog.chunk_docs(catalog.LIVE, stream_id)
indexes = [d["chunk_index"] for d in docs]
print("as many documents as chunks published:", len(docs) == last + 1 == len(set(indexes)))
print("every chunk exactly once:", indexes == list(range(last + 1)))
print("all verified, none seen as a gap:", all(d["in_playlist"] and d["gap_before"] == 0 for d in docs))
print("playlist numbers continuous:", [d["playlist_seq"] for d in docs] == list(range(last + 1)))

# %% [markdown]
# And the playlist: every version the viewer saw gave each segment one media sequence number, which never
# changed from one version to the next (a player reloading it would never skip or repeat a segment), and the
# final one lists every chunk.

# %%
numbers, consistent = {}, True
for version in viewer.versions:
    if not version.ended:
        for offset, chunk in enumerate(version.chunks):
            consistent &= numbers.setdefault(chunk, version.media_sequence + offset) == version.media_sequence + offset
final = m3u8.loads(storage.get_text(settings.bucket_manifests, storage.live_playlist_key(stream_id)))
recorded = [int(s.uri.rsplit("/", 1)[1].removesuffix(".ts")) for s in final.segments]
print("media sequence numbers consistent across the versions seen:", consistent)
print(f"final playlist: ENDLIST {final.is_endlist}, every chunk once: {recorded == list(range(last + 1))}")

# %% [markdown]
# ## 3 · Replay from an offset
#
# Kafka keeps events for the topic's retention (24 h here) whatever has read them. A consumer *assigned* to
# a partition at an older offset reads the stream again from there: this is how a new consumer backfills,
# or how a fixed bug reprocesses a day. (A Spark query is rewound the same way: a new checkpoint with
# `startingOffsets` set to those offsets.) Where did chunk 0 of our stream land?

# %%
first = catalog.collection(catalog.LIVE).find_one({"_id": catalog.doc_id(stream_id, 0)})
partition, offset = first["kafka_partition"], first["kafka_offset"]
print(f"chunk 0 is at partition {partition}, offset {offset}")
consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": f"lesson-08-{stream_id}",
                     "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 0})
consumer.assign([TopicPartition(settings.live_topic, partition, offset)])
replayed = []
while True:
    msg = consumer.poll(5.0)
    if msg is None or (msg.error() and msg.error().code() == msg.error()._PARTITION_EOF):
        break
    if msg.key() and msg.key().decode() == stream_id:
        event = events.decode(msg.value())
        replayed.append({"offset": msg.offset(), "event_type": event.event_type,
                         "chunk_index": getattr(event, "chunk_index", None)})
consumer.close()
replayed = pd.DataFrame(replayed)
chunk_events = replayed[replayed["event_type"] == "live_chunk"]
print("read back every chunk event, in order:", list(chunk_events["chunk_index"]) == list(range(last + 1)))
print("and the end marker last:", replayed["event_type"].iloc[-1] == "live_end")

# %% tags=["nbval-ignore-output"]
replayed.tail()

# %% [markdown]
# ## Leave the stack healthy
#
# Other lessons (and the tests) run on this stack after this one: anything not healthy is started again.

# %%
from lab.stack.services import all_services  # noqa: E402

restarted = []
for name in settings.services:
    if name in all_services() and not lesson.healthy(name):
        lesson.start_service(name)
        restarted.append(name)
health.refresh()
viewer.refresh()
health.stop()
viewer.stop()
print("restarted:", restarted or "nothing, all healthy")

# %% [markdown]
# ## Check yourself

# %%
assert indexes == list(range(last + 1)), "a chunk was lost or duplicated"
assert all(d["in_playlist"] and d["gap_before"] == 0 for d in docs), "a false gap or a lost segment"
assert [d["playlist_seq"] for d in docs] == list(range(last + 1))
assert consistent and final.is_endlist and recorded == list(range(last + 1))
assert doc["missing_total"] == 0 and doc["recorded_chunks"] == last + 1
assert queued > 0, "events waited in the producer while the broker was down"
assert list(chunk_events["chunk_index"]) == list(range(last + 1))
assert all(lesson.healthy(n) for n in settings.services if n in all_services()), "a service is not healthy"
lesson.ok("every chunk survived a Spark crash and a broker restart: recorded exactly once, the playlist "
          "continuous, and the stream replayable from its first offset")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. In one sentence: which three mechanisms together give exactly-once chunks here?
# 2. Why count the duplicates a replay skipped with a metric instead of ignoring them silently?
# 3. Where were the events while the broker was stopped?
# 4. What could a non-idempotent producer have done during that outage?
# 5. Kafka keeps events 24 h here. What happens to a query that comes back after 25 h?
# 6. Why does a VOD upload still reach `ready` when spark-vod dies in the middle of a transcode?
# 7. Why does this lesson stop its background publisher in a `finally`?
#
# ## Recap
#
# In this lesson:
# - a killed query runs its uncommitted batch again; idempotent writes skip the duplicates, and a metric counts them;
# - an idempotent producer rides out a broker outage: it queues, retries and delivers in order;
# - a VOD transcode killed half-way is finished by the restarted query, nothing duplicated;
# - any stream can be read again from an offset while the topic keeps it.
#
# **Next:** [09 · The read path](09_read_path.ipynb)
