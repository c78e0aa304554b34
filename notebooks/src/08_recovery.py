# %% [markdown]
# # 08 · Recovery: crash things, lose nothing
#
# A pipeline earns trust when it is broken. In this lesson you crash the Spark live job while a batch is in
# flight, stop the Kafka broker under a producer, kill the VOD job in the middle of a transcode, and read a
# stream again from an old offset; then you prove that every chunk is in the catalog exactly once and the
# playlist never skipped or repeated a number.
#
# **Learning goals**
# - explain why a restarted Spark query neither loses nor duplicates chunks (checkpointed offsets +
#   idempotent writes keyed by `(stream_id, chunk_index)` + state that survives), and see it happen: the batch
#   that was run again, and the duplicates it skipped, counted;
# - see an idempotent producer ride out a broker outage: it queues, retries, and delivers after the restart;
# - see a VOD upload survive the death of its transcoder and still reach `ready`, every rendition correct;
# - replay a stream from an older offset with a consumer assigned to it.
#
# This lesson stops and starts services (in the container stack it prints the `docker compose` command to
# run in a terminal on your host, then waits for its effect). It is safe to interrupt: the first cell repairs
# the stack, every cell that breaks a service starts it again in a `finally`, and the background publisher
# stops by itself after a few minutes. Run it from the top.

# %% [markdown]
# ![a crash mid-batch, replayed](diagrams/08_recovery.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import json
import threading
import time

import m3u8
import pandas as pd
from confluent_kafka import Consumer, TopicPartition
from matplotlib.figure import Figure

from lab import catalog, events, media, storage, urls
from lab.config import ROOT, settings
from lab.exercises import l08
from lab.producer.replay import Replay, sample_segments
from lab.widgets import PlaylistViewer, StackHealth, instant, lesson

lesson.setup()

# %% [markdown]
# ## 0 · Repair first
#
# If an earlier run of this lesson was interrupted, a service may still be down: start whatever is not healthy.

# %%
repaired = lesson.ensure_healthy()
print("started again:", ", ".join(repaired) if repaired else "nothing, every service is healthy")

# %% [markdown]
# ## A stream that keeps going
#
# Pre-encoded real segments, two per second, from a background thread, through a producer whose statistics
# we sample every second (`statistics.interval.ms`: librdkafka reports its queue and its connections). The
# publisher is bounded: it stops by itself after `PUMP_SECONDS`, and the counting cell stops it in a `finally`.

# %%
PUMP_SECONDS = 900  # far more than the lesson needs on a laptop; it stops earlier, in the counting cell
stats = []
producer = lesson.producer("lesson-08", **{"statistics.interval.ms": 1000,
                                            "stats_cb": lambda raw: stats.append((time.time(), json.loads(raw)))})
replay = Replay(sample_segments(3, resolution="320x180"), api=lesson.api(), producer=producer)
stream = replay.start_stream("lesson 08: recovery")
stream_id = stream.stream_id
stop = threading.Event()
pump = lesson.Background(replay.run, [stream], 2.0, PUMP_SECONDS, stop=stop, name="lesson-08-pump")
viewer = PlaylistViewer(stream_id)
health = StackHealth(show_ui_map=False, interval=2.0)
lesson.wait_for(lambda: len(catalog.chunk_docs(catalog.LIVE, stream_id)) >= 6, "6 chunks recorded", 120)
print(stream_id, "is live")

# %%
viewer

# %%
health

# %% [markdown]
# ## 1 · Crash the Spark live job in the middle of a batch
#
# ### Your turn 1 · choose the moment
#
# Pick the chunk after which spark-live dies: set `KILL_AT_CHUNK` (from 8 to 40). The next cell waits until
# your stream has published that chunk, then until a live batch is *in flight* (planned in the checkpoint,
# `offsets/N`, but not committed, no `commits/N` yet), and kills the job right then.

# %%
KILL_AT_CHUNK = None  # your turn: an int from 8 to 40
l08.kill_moment(KILL_AT_CHUNK)

# %% [markdown]
# `kill_service` sends SIGKILL to the job's whole process group, as a crash or an out-of-memory kill would: no
# clean shutdown, the batch half-done. The encoder keeps publishing meanwhile: Kafka keeps the events, and
# the playlist simply stops moving (watch the viewer). The cell starts the job again in its `finally`, even
# if you interrupt it.

# %%
checkpoint = settings.lab_state_dir / "checkpoints" / "live"


def batch_ids(sub):
    return {int(p.name) for p in (checkpoint / sub).iterdir() if p.name.isdigit()} if checkpoint.exists() else set()


def in_flight():
    """(N,) for the newest planned batch when it has no commit yet (Spark writes offsets/N before the batch runs
    and commits/N after it), else None."""
    newest = max(batch_ids("offsets"), default=None)
    return (newest,) if newest is not None and newest not in batch_ids("commits") else None


kill_at = l08.kill_at(KILL_AT_CHUNK)
local_checkpoint = checkpoint.exists()  # in the container stack it is inside the spark-job container
lesson.wait_for(lambda: stream.next_sequence > kill_at, f"chunk {kill_at} to be published", timeout=180)
try:
    batch = lesson.wait_for(in_flight, "a live batch in flight", timeout=60, every=0.005)[0] if local_checkpoint else None
    planned_offsets = (checkpoint / "offsets" / str(batch)).read_text() if local_checkpoint else None
    old_pid = lesson.kill_service("spark-live")
    killed_at_chunk = stream.next_sequence
    # this stream's documents only: a batch number is only unique within one query's checkpoint
    first_attempt = (catalog.collection(catalog.LIVE).count_documents({"stream_id": stream_id, "batch_id": batch})
                     if local_checkpoint else 0)
    print(f"spark-live killed after chunk {kill_at}, with batch {batch} planned and not committed"
          if local_checkpoint else f"spark-live killed after chunk {kill_at} (its checkpoint is not on this machine)")
    lesson.wait_for(lambda: stream.next_sequence >= killed_at_chunk + 4, "4 more chunks published while it is down",
                    timeout=60)
finally:
    took = lesson.start_service("spark-live")
print(f"spark-live is back and healthy after {took:.0f} s (a JVM, a SparkSession, the Kafka connector)")

# %% tags=["nbval-ignore-output"]
print(f"killed pid {old_pid} with batch {batch} in flight; its first attempt had recorded {first_attempt} "
      f"chunk document(s) before it died; {stream.next_sequence - killed_at_chunk} chunks published since")

# %% [markdown]
# The new query reads its checkpoint: batch `N` was planned (`offsets/N`) and never committed, so Spark runs it
# again **with exactly the same offsets**: the same records. Its writes are idempotent. The chunks the first
# attempt already recorded are found (their documents have `_id`s derived from `(stream_id, chunk_index)`, and
# the stream's state says how far it got) and skipped as duplicates; the live query counts them in
# `live_duplicates_skipped_total`. The others get the same decisions as the first time, so the playlist it
# rewrites is the same. Then it catches up on what was published while it was down.

# %%
if local_checkpoint:
    lesson.wait_for(lambda: batch in batch_ids("commits"), f"batch {batch} to be committed by the new job", timeout=180)
    same_offsets = (checkpoint / "offsets" / str(batch)).read_text() == planned_offsets
behind = stream.next_sequence
lesson.wait_for(lambda: catalog.find_by_id(catalog.LIVE, catalog.doc_id(stream_id, behind)), "the job to catch up",
                timeout=180)


def duplicates_skipped():
    """The restarted job's count (a counter restarts at 0 with its process): None if no series exists."""
    frame = instant("sum(live_duplicates_skipped_total)")
    return None if frame.empty else int(frame["value"].sum())


skipped = duplicates_skipped()
if skipped is not None:
    lesson.wait_for(lambda: duplicates_skipped() >= first_attempt, "the duplicate counter to count the first attempt's "
                    "documents", timeout=60)
    skipped = duplicates_skipped()
if local_checkpoint:
    print(f"batch {batch} ran again with the same offsets: {same_offsets}")
print("caught up: every chunk published while it was down is recorded")

# %% tags=["nbval-ignore-output"]
if skipped is None:
    print("this live query exports no live_duplicates_skipped_total: the skips happened, uncounted")
else:
    print(f"duplicates the replay of batch {batch} skipped (live_duplicates_skipped_total): {skipped}; "
          f"documents its first attempt had written: {first_attempt}")

# %% [markdown]
# ## 2 · Stop the broker
#
# Now Kafka itself goes away (a clean stop, as in a rolling upgrade). The producer cannot deliver: it keeps the
# events in its queue and retries, in order; being idempotent, a retry never duplicates an event even if the
# broker had written it before the connection broke. Segments keep going to S3 meanwhile. The cell waits until
# events are queued, then starts the broker again (in a `finally`).

# %%
stats.clear()
t_stop = time.time()
try:
    lesson.stop_service("kafka")
    print("kafka stopped; healthy:", lesson.healthy("kafka"))
    queued = lesson.wait_for(lambda: len(producer), "events to queue up in the producer", timeout=60)
    print("events waiting in the producer's queue:", "some" if queued else "none")
finally:
    took = lesson.start_service("kafka")
t_back = time.time()
print(f"kafka is back after {took:.0f} s")
_ = lesson.wait_for(lambda: producer.flush(1) == 0, "the queue to drain", timeout=120)  # flush serves the stats too

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
# Stop the encoder (in a `finally`: whatever happens, it stops), end the stream, and check the result
# against what the encoder says it published.

# %%
try:
    pump_error = pump.error  # None: it ran until now, or until PUMP_SECONDS
finally:
    stop.set()
    pump.join(timeout=60)
assert producer.flush(60) == 0, "every event was delivered"
replay.end(stream)
last = stream.next_sequence - 1
# spark-live may still be restarting after the broker came back (its Kafka source failed meanwhile).
doc = lesson.wait_for(lambda: (d := catalog.stream_doc(catalog.LIVE, stream_id)) and d["status"] == "vod" and d,
                      "status vod (`lab status`: is spark-live healthy?)", timeout=600, every=1)
docs = catalog.chunk_docs(catalog.LIVE, stream_id)
indexes = [d["chunk_index"] for d in docs]
print("as many documents as chunks published:", len(docs) == last + 1 == len(set(indexes)))
print("all verified, none seen as a gap:", all(d["in_playlist"] and d["gap_before"] == 0 for d in docs))
print("playlist numbers continuous:", [d["playlist_seq"] for d in docs] == list(range(last + 1)))

# %% [markdown]
# ### Your turn 2 · prove it
#
# Write `nothing_lost(indexes, last)`: True when the chunk documents' indexes hold every chunk from 0 to `last`
# exactly once (none lost, none twice, none extra), whatever their order. The checker tries it on made-up
# cases first, then on this stream.

# %%
def nothing_lost(indexes, last):
    return True  # your turn


l08.proof(nothing_lost, indexes, last)

# %% [markdown]
# And the playlist: every version the viewer saw gave each segment one media sequence number, which never
# changed from one version to the next (a player reloading it would never skip or repeat a segment), and the
# recording (`recording.m3u8`, the VOD playlist written at the end) lists every chunk.

# %%
numbers, consistent = {}, True
for version in viewer.versions:
    if not version.ended:
        for offset, chunk in enumerate(version.chunks):
            consistent &= numbers.setdefault(chunk, version.media_sequence + offset) == version.media_sequence + offset
final = m3u8.loads(storage.get_text(settings.bucket_manifests, storage.recording_playlist_key(stream_id)))
recorded = [int(s.uri.rsplit("/", 1)[1].removesuffix(".ts")) for s in final.segments]
print("media sequence numbers consistent across the versions seen:", consistent)
print(f"recording: ENDLIST {final.is_endlist}, every chunk once: {recorded == list(range(last + 1))}")

# %% [markdown]
# ## 3 · Kill the VOD job in the middle of a transcode
#
# An upload of the 480p sample (two rungs). As soon as its status says `transcoding` (the first segment's
# task has started on an executor), spark-vod is killed, then started again in a `finally`. The batch never
# committed, so the new job runs it again: each segment's ladder is transcoded again and uploaded to the same
# keys, and the status moves on to `ready`.

# %%
api = lesson.api()
with open(ROOT / "data" / "sample-480p-10s.mp4", "rb") as f:
    vod = api.post("/vod/upload", data={"title": "lesson 08: killed mid-transcode"},
                   files={"file": ("sample-480p-10s.mp4", f, "video/mp4")}).json()
vod_id = vod["stream_id"]
try:
    lesson.wait_for(lambda: api.get(f"/vod/{vod_id}/metadata").json()["status"] in ("transcoding", "ready"),
                    f"{vod_id} to start transcoding", timeout=300, every=0.1)
    status_at_kill = api.get(f"/vod/{vod_id}/metadata").json()["status"]
    lesson.kill_service("spark-vod")
finally:
    lesson.start_service("spark-vod")
vod_doc = lesson.wait_for(lambda: (d := api.get(f"/vod/{vod_id}/metadata").json())["status"] in ("ready", "failed")
                          and d, f"{vod_id} to be ready after the restart", timeout=600, every=1)
print(f"killed while {status_at_kill}; now {vod_doc['status']}")
print(" → ".join(h["status"] for h in vod_doc["status_history"]))

# %% [markdown]
# Every rendition correct, nothing duplicated: one chunk document per segment, one object per segment and
# rung, each object's bytes hashing to the checksum its document recorded, and ffmpeg decodes the signed master
# playlist to the end.

# %%
vod_chunks = catalog.chunk_docs(catalog.VOD, vod_id)
rungs = vod["rungs"]
objects = {rung: storage.list_keys(settings.bucket_vod_variants, f"{vod_id}/{rung}/") for rung in rungs}
mismatched = [(c["chunk_index"], rung) for c in vod_chunks for rung in rungs
              if media.sha256_bytes(storage.get_bytes(settings.bucket_vod_variants,
                                                      storage.variant_segment_key(vod_id, rung, c["chunk_index"])))
              != c["variants"][rung]["sha256"]]
urls.decode_check(api.get(f"/vod/{vod_id}/manifest").json()["manifest_url"])
print(f"{len(vod_chunks)} chunk documents for {vod['segments']} segments; objects per rung:",
      {rung: len(keys) for rung, keys in objects.items()})
print("renditions whose bytes differ from their recorded checksum:", mismatched or "none")
print("ffmpeg decoded the signed master playlist to the end")

# %% [markdown]
# ## 4 · Replay from an offset
#
# Kafka keeps events for the topic's retention (24 h here) whatever has read them. A consumer *assigned* to
# a partition at an older offset reads the stream again from there: this is how a new consumer backfills,
# or how a fixed bug reprocesses a day. (A Spark query is rewound the same way: a new checkpoint with
# `startingOffsets` set to those offsets.) Where did chunk 0 of our stream land?

# %%
first = catalog.find_by_id(catalog.LIVE, catalog.doc_id(stream_id, 0))
partition, offset = first["kafka_partition"], first["kafka_offset"]
print(f"chunk 0 is at partition {partition}, offset {offset}")
consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": f"lesson-08-{stream_id}",
                     "enable.auto.commit": False, "enable.partition.eof": True, "log_level": 0})
consumer.assign([TopicPartition(settings.live_topic, partition, offset)])
replayed = []
try:
    while True:
        msg = consumer.poll(10.0)
        if msg is None or (msg.error() and msg.error().code() == msg.error()._PARTITION_EOF):
            break
        if msg.key() and msg.key().decode() == stream_id:
            event = events.decode(msg.value())
            replayed.append({"offset": msg.offset(), "event_type": event.event_type,
                             "chunk_index": getattr(event, "chunk_index", None)})
finally:
    consumer.close()
replayed = pd.DataFrame(replayed).astype({"chunk_index": "Int64"})  # the end marker has none: <NA>, not 67.0
chunk_events = replayed[replayed["event_type"] == "live_chunk"]
print("read back every chunk event, in order:", list(chunk_events["chunk_index"]) == list(range(last + 1)))
print("and the end marker last:", replayed["event_type"].iloc[-1] == "live_end")

# %% tags=["nbval-ignore-output"]
replayed.tail()

# %% [markdown]
# ## Leave the stack healthy
#
# Other lessons (and the tests) run on this stack after this one: anything not healthy is started again, and
# the widgets stop refreshing.

# %%
try:
    restarted = lesson.ensure_healthy()
    health.refresh()
    viewer.refresh()
finally:
    health.stop()
    viewer.stop()
print("restarted:", restarted or "nothing, all healthy")

# %% [markdown]
# ## Check yourself

# %%
assert sorted(indexes) == list(range(last + 1)), "a chunk was lost or duplicated"
assert all(d["in_playlist"] and d["gap_before"] == 0 for d in docs), "a false gap or a lost segment"
assert [d["playlist_seq"] for d in docs] == list(range(last + 1))
assert consistent and final.is_endlist and recorded == list(range(last + 1))
assert doc["missing_total"] == 0 and doc["recorded_chunks"] == last + 1
assert not local_checkpoint or same_offsets, f"batch {batch} was run again with the offsets planned before the crash"
assert skipped is None or skipped >= first_attempt, "every chunk the first attempt recorded was skipped, counted"
assert queued > 0, "events waited in the producer while the broker was down"
assert vod_doc["status"] == "ready" and len(vod_chunks) == vod["segments"], "the VOD upload survived its transcoder"
assert all(len(keys) == vod["segments"] for keys in objects.values()) and not mismatched, "every rendition, once"
assert list(chunk_events["chunk_index"]) == list(range(last + 1))
assert not lesson.ensure_healthy(), "every service was healthy at the end"
lesson.ok("a Spark crash mid-batch (run again, duplicates skipped), a broker restart and a transcoder killed "
          "mid-transcode: every chunk recorded exactly once, the playlist continuous, the upload ready")

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
