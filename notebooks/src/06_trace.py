# %% [markdown]
# # 06 · Trace one chunk through the pipeline
#
# Lessons 01–05 looked at each piece. Here you follow **one** live chunk, with an id you choose, from the
# encoder to a player, and time every hop on one clock (everything runs on this machine).
#
# **Learning goals**
# - name every hop a live chunk takes: upload → Kafka (partition, offset) → Spark batch → playlist in the
#   bucket → playlist line seen → player fetch (and the catalog document that records it all);
# - find the chunk at each hop with what you know about it (`stream_id`, `chunk_index`, the Kafka position);
# - read a timeline and say where the time goes.

# %% [markdown]
# ![the six hops of one chunk](diagrams/06_trace.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import time

import m3u8

from lab import catalog, events, media, storage, topics, urls
from lab.config import settings
from lab.exercises import l06
from lab.producer.replay import Replay, sample_segments
from lab.widgets import Hop, TopicBrowser, lesson, plot_trace, trace_frame

lesson.setup()

# %% [markdown]
# ## A stream, warmed up
#
# A live stream with two chunks already through the pipeline, so the chunk we trace is an ordinary one
# (the first batch of a stream also loads its state and opens connections).

# %%
api = lesson.api()
producer = lesson.producer("lesson-06")
replay = Replay(sample_segments(3, resolution="320x180"), api=api, producer=producer)
stream = replay.start_stream("lesson 06: one chunk traced")
stream_id = stream.stream_id
for _ in range(2):
    replay.send(stream)
producer.flush(30)
lesson.wait_for(lambda: catalog.chunk_docs(catalog.LIVE, stream_id).__len__() >= 2, "the warm-up chunks", 120)
print(stream_id, "is live with chunks 0 and 1 in its playlist")

# %% [markdown]
# ## The chunk, hop by hop
#
# Chunk **2** of this stream. We do the encoder's two steps ourselves, noting the time around each, then
# watch for the chunk downstream: the playlist in the bucket (polled every 20 ms, as an impatient player
# would), its catalog document (the Spark job's own timestamps), and finally a player's two requests.

# %%
INDEX = 2
segment = sample_segments(3, resolution="320x180")[INDEX]
key = storage.live_chunk_key(stream_id, INDEX)
uri = f"../../{settings.bucket_live}/{key}"
now = lambda: time.time() * 1000  # noqa: E731 (epoch ms, the unit every hop uses)

# 1. the segment's bytes to S3
t_upload = now()
storage.put_segment(settings.bucket_live, key, segment.data, segment.sha256)
t_uploaded = now()

# 2. the event to Kafka, and the broker's acknowledgement
event = events.LiveChunkEvent(
    stream_id=stream_id, chunk_index=INDEX, sequence_number=INDEX, object_key=key,
    checksum_sha256=segment.sha256, size_bytes=len(segment.data), duration_ms=segment.duration_ms,
    keyframe_aligned=segment.keyframe_aligned, audio_track_id=f"audio-{stream_id}",
    video_track_id=f"video-{stream_id}", published_at_ms=events.now_ms())
ack = {}
topics.publish(producer, settings.live_topic, stream_id, events.encode(event),
               lambda err, msg: ack.update(at=now(), err=err, partition=msg.partition(), offset=msg.offset()))
producer.flush(30)

# 3. the playlist line appears in the bucket
playlist_key = storage.live_playlist_key(stream_id)
lesson.wait_for(lambda: uri in (storage.get_text(settings.bucket_manifests, playlist_key) or ""),
                "the chunk in the playlist", timeout=120, every=0.02)
t_seen = now()

# 4. the catalog document the live query wrote
doc = lesson.wait_for(lambda: catalog.collection(catalog.LIVE).find_one(
    {"_id": catalog.doc_id(stream_id, INDEX)}), "the chunk document", timeout=60)

# 5. a player: the signed live playlist from the API, then the segment straight from S3
t_player = now()
signed = urls.fetch(api.get(f"/streams/{stream_id}/live").json()["manifest_url"])  # browser URLs, from inside
t_playlist = now()
segment_url = next(s.uri for s in m3u8.loads(signed.text).segments if f"/chunks/{INDEX}.ts" in s.uri)
fetched = urls.fetch(segment_url)
t_fetched = now()
print(f"chunk {INDEX}: Kafka partition {ack['partition']}, offset {ack['offset']}; Spark batch {doc['batch_id']}; "
      f"player got {fetched.status_code}")

# %% [markdown]
# The chunk document carries its own Kafka position and the Spark job's times, which is how you would find a
# chunk after the fact. The same record, read back from Kafka by key:

# %%
TopicBrowser(topic=settings.live_topic, n=3, key=stream_id)

# %% [markdown]
# ### Your turn 1 · from the catalog back to Kafka
#
# A day later, all you have is the stream id and the chunk number. Find the Kafka position of chunk **1** of
# this stream from its catalog document alone (`catalog.find_by_id(catalog.LIVE, catalog.doc_id(stream_id, 1))`
# and the fields you saw above), and set `MY_POSITION = (partition, offset)`. The checker reads the record
# at that position.

# %%
MY_POSITION = None  # your turn: (partition, offset) of chunk 1, from its catalog document
l06.found_in_kafka(MY_POSITION, stream_id, 1)

# %% [markdown]
# ## The timeline

# %%
ms = lambda dt: dt.timestamp() * 1000  # noqa: E731
hops = [
    Hop("1 encoder: segment → S3", t_upload, t_uploaded, f"{len(segment.data) // 1024} KiB"),
    Hop("2 event → Kafka (acks=all)", event.published_at_ms, ack["at"],
        f"partition {ack['partition']}, offset {ack['offset']}"),
    Hop("3 Kafka → Spark batch → playlist PUT", ack["at"], ms(doc["manifest_updated_at"]),
        f"batch {doc['batch_id']}"),
    Hop("4 playlist PUT → line seen by a poller", ms(doc["manifest_updated_at"]), t_seen, "GET every 20 ms"),
    Hop("5 player: signed playlist (API)", t_player, t_playlist, f"HTTP {signed.status_code}"),
    Hop("6 player: segment (presigned S3 GET)", t_playlist, t_fetched, f"HTTP {fetched.status_code}"),
]
plot_trace(hops, f"chunk {INDEX} of a live stream, publish to playback")

# %% tags=["nbval-ignore-output"]
trace_frame(hops)

# %% [markdown]
# How to read it:
# - **1 → 2**: the encoder uploads first and publishes second, so an event never names a missing object.
#   Waiting for `acks=all` costs a round trip to the broker.
# - **3** is the pipeline's latency: the next micro-batch picks the event up (the live query's trigger is
#   "as soon as the previous batch ends"), re-checks the segment's SHA-256 against the bytes in S3, and PUTs
#   the new playlist. `processing_latency_ms` in the chunk document is publish → playlist written.
# - **4** is what a player would notice: the line is visible as soon as the PUT returns. (The hops do not
#   overlap: each starts where the one before it ended, so the longest bar is where the time went.)
# - **5–6**: the API only signs the playlist; the segment's bytes come straight from S3.
#
# The catalog document has no hop of its own. The query writes the playlist first, then inserts the
# documents (a crash in between replays the batch into the same writes, lesson 08), but the document's
# `recorded_at` is stamped while the document is built, *before* the insert: it cannot say when the insert
# happened or how long it took. A hop drawn from it would measure nothing, so there is none.

# %%
print(f"publish → playlist written: {doc['processing_latency_ms']:.0f} ms (as the live query recorded it)")
print(f"publish → playable:         {t_seen - event.published_at_ms:.0f} ms")

# %% [markdown]
# ### Your turn 2 · where does the time go?
#
# Which hop of the timeline took longest? Set `SLOWEST` to its label, exactly as the table shows it (for
# example `"1 encoder: segment → S3"`). Then think about why (the questionnaire asks).

# %%
SLOWEST = None  # your turn: the label of the longest hop
l06.slowest_hop(SLOWEST, {h.name: h.duration_ms for h in hops})

# %% [markdown]
# ## Tidy up, and check yourself

# %%
replay.end(stream)
assert ack["err"] is None and (doc["kafka_partition"], doc["kafka_offset"]) == (ack["partition"], ack["offset"])
assert doc["checksum_ok"] and doc["in_playlist"] and doc["gap_before"] == 0
assert t_uploaded <= event.published_at_ms + 1, "uploaded before it was announced"
assert ms(doc["manifest_updated_at"]) >= event.published_at_ms, "the playlist came after the event"
assert fetched.status_code == 200 and media.sha256_bytes(fetched.content) == segment.sha256, "the player got our bytes"
lesson.ok(f"chunk {INDEX} traced through {len(hops)} hops: the bytes the player fetched are the bytes the encoder uploaded")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. Which hop dominates publish → playable, and what is it made of?
# 2. Why is the catalog document written after the playlist, and what does a crash in between cause?
# 3. Why could `recorded_at` not time the catalog insert, and how would you measure the insert honestly?
# 4. How would you find a chunk's Kafka record a day later?
# 5. Why does the player get the segment from S3 and not through the API?
# 6. All hops here share one clock. What changes when they run on different machines?
#
# ## Recap
#
# In this lesson:
# - one chunk's hops: S3 upload, Kafka, the Spark batch and playlist PUT, a reader seeing it, a player fetching it;
# - the catalog document keeps the chunk's Kafka position and the job's times;
# - most of the latency is the micro-batch; the bytes never pass through the API.
#
# **Next:** [07 · Observability](07_observability.ipynb)
