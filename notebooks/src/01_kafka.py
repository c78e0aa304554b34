# %% [markdown]
# # 01 · Kafka: topics, partitions, keys, and one chunk event
#
# Kafka is the pipeline's spine: every segment the producers make is announced by one small event, and the
# Spark queries read those events. This lesson produces one event by hand and reads it back.
#
# **Learning goals**
# - name the lab's topics and their partitions, and say why the message key is the `stream_id`;
# - produce one chunk event and consume it back, by partition and offset;
# - read a consumer group's committed offsets and its lag;
# - explain why the segment bytes never ride Kafka (and see the limit that enforces it);
# - see a bad event land in the dead-letter topic instead of vanishing.

# %% [markdown]
# ![a keyed event on its partition](diagrams/01_kafka.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import json
import re

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import NewPartitions  # your turn 3 uses it

from lab import events, storage, topics
from lab.config import settings
from lab.exercises import l01
from lab.producer.replay import sample_segments
from lab.widgets import TopicBrowser, group_lag_frame, lesson, topic_frame
from lab.widgets.kafka import consumer_groups, last_messages

lesson.setup()

# %% [markdown]
# ## Topics and partitions
#
# Three topics (`lab/topics.py`): VOD segment events, live segment events, and the dead-letter topic where
# an event that cannot be processed goes, with its reason. A topic is split into *partitions*: each one is an
# ordered, append-only log, and the unit of parallelism (one reader per partition at a time).

# %%
for name, partitions in topics.topic_partitions().items():
    print(f"{name:<20} {partitions} partition(s)")

# %% [markdown]
# What the broker holds right now: per partition, the earliest offset still kept, the end offset (the next
# message's offset), and how many messages that is. Below it, the last messages of a topic: pick one.

# %%
browser = TopicBrowser(topic=settings.live_topic, n=3)
browser

# %% tags=["nbval-ignore-output"]
topic_frame(list(topics.topic_partitions()))

# %% [markdown]
# ## One chunk event, by hand
#
# A live chunk event describes a segment that is **already in S3**: upload first, publish second, so an event
# never names an object that is not there. We do what the live encoder (`lab/producer/encoder.py`) does for each
# segment, step by step. First a stream, through the control plane (lesson 02):

# %%
api = lesson.api()
stream_id = api.post("/streams/start", json={"title": "lesson 01: one chunk by hand"}).json()["stream_id"]
print("stream", stream_id)

# %% [markdown]
# A real 2-second MPEG-TS segment (made once by the encoder's ffmpeg command and cached), its SHA-256, and
# its upload to `live-streams/{stream_id}/chunks/0.ts`:

# %%
segment = sample_segments(1, resolution="320x180")[0]
key = storage.live_chunk_key(stream_id, 0)
storage.put_segment(settings.bucket_live, key, segment.data, segment.sha256)
print(f"uploaded {len(segment.data) / 1024:.0f} KiB to {settings.bucket_live}/{key}")

# %% [markdown]
# The event: a pydantic model from `lab/events.py`, the only place the JSON shapes live. It is validated
# when it is built, and again by Spark when it is read.

# %% tags=["nbval-ignore-output"]
event = events.LiveChunkEvent(
    stream_id=stream_id, chunk_index=0, sequence_number=0, object_key=key,
    checksum_sha256=segment.sha256, size_bytes=len(segment.data), duration_ms=segment.duration_ms,
    keyframe_aligned=segment.keyframe_aligned, audio_track_id=f"audio-{stream_id}",
    video_track_id=f"video-{stream_id}", published_at_ms=events.now_ms())
value = events.encode(event)
print(json.dumps(json.loads(value), indent=2))

# %% [markdown]
# Now produce it, keyed by `stream_id`. The producer is idempotent with `acks=all` (`topics.producer`): a retry
# after a broker hiccup never duplicates or reorders an event. The delivery report tells where it landed.
# We also publish chunk 1 of the same stream, to see what the key does.

# %%
producer = lesson.producer("lesson-01")
delivered = []


def on_delivery(err, msg):
    delivered.append((err, msg.partition(), msg.offset()))


topics.publish(producer, settings.live_topic, stream_id, value, on_delivery)
storage.put_segment(settings.bucket_live, storage.live_chunk_key(stream_id, 1), segment.data, segment.sha256)
second = event.model_copy(update={"chunk_index": 1, "sequence_number": 1,
                                  "object_key": storage.live_chunk_key(stream_id, 1),
                                  "published_at_ms": events.now_ms()})
topics.publish(producer, settings.live_topic, stream_id, events.encode(second), on_delivery)
assert producer.flush(30) == 0, "Kafka did not acknowledge within 30 s"
for n, (err, partition, offset) in enumerate(delivered):
    print(f"chunk {n}: error={err}, partition {partition}, offset {offset}")
partition, offset = delivered[0][1], delivered[0][2]

# %% [markdown]
# Both chunks went to the **same partition**: the partition is a hash of the key, so every event of a stream
# lands in one partition, in the order it was produced. That is what lets the live query see chunk 1 after
# chunk 0, and the end marker (lesson 02) after the last chunk. Events of other streams spread over the other
# partitions, so six partitions can be read by six tasks at once.
#
# ### Your turn 1 · a key for a partition
#
# The producer's client library (librdkafka) picks the partition as a hash of the key: CRC-32 of its bytes
# (`zlib.crc32`), modulo the number of partitions (Kafka's Java client uses another hash, murmur2, so the two
# clients put one key on different partitions). Write that hash as a function, use it to find a key (say a
# made-up stream id) that lands on partition `TARGET`, set `MY_KEY` to it and run the checker: it produces one
# record with your key to a topic of its own and reads where Kafka really put it.

# %%
TARGET = (partition + 1) % settings.live_topic_partitions
print(f"find a key for partition {TARGET} of {settings.live_topic_partitions}")
MY_KEY = None  # your turn: e.g. a loop over f"live-{i:010d}" with your hash

# %%
l01.key_for_partition(MY_KEY, TARGET, settings.live_topic_partitions)

# %% [markdown]
# ## Consume it back
#
# A consumer in its own group, *assigned* the partition at the offset the delivery report gave (no waiting
# for a group rebalance), reads the event and commits its position.

# %%
group = f"lesson-01-{stream_id}"
consumer = Consumer({"bootstrap.servers": settings.kafka_servers, "group.id": group,
                     "enable.auto.commit": False, "log_level": 0})
consumer.assign([TopicPartition(settings.live_topic, partition, offset)])
msg = lesson.wait_for(lambda: consumer.poll(1.0), "the message", timeout=60)
read_back = events.decode(msg.value())
print(f"read {msg.topic()} partition {msg.partition()} offset {msg.offset()}, key {msg.key().decode()}")
print(f"event_type={read_back.event_type}, chunk_index={read_back.chunk_index}, "
      f"{len(msg.value())} bytes of JSON")
_ = consumer.commit(message=msg, asynchronous=False)

# %% [markdown]
# ## Consumer groups and lag
#
# A group's *committed offset* is where it will resume; *lag* is how far behind the end of the partition
# that is. We committed after chunk 0, so our group lags by the events after it in that partition (chunk 1,
# and whatever other streams published there since).

# %% tags=["nbval-ignore-output"]
lag = group_lag_frame(group, settings.live_topic)
lag[lag["committed"].notna()]

# %%
lag_ours = int(lag.loc[lag["partition"] == partition, "lag"].iloc[0])
print(f"our group lags by {lag_ours} message(s) on partition {partition}")
print("our group is known to the broker:", group in consumer_groups())
consumer.close()

# %% [markdown]
# The lab's Spark queries do **not** show up as consumer groups: Spark's Kafka source assigns partitions
# itself and keeps its offsets in its *checkpoint* (lesson 03), so a restarted query resumes exactly where its
# last finished batch ended. Their lag is a metric instead (`kafka_consumer_lag`, lesson 07).
#
# ## Why bytes never ride Kafka
#
# Compare the event with the segment it describes:

# %%
print(f"event:   {len(value)} bytes of JSON")
print(f"segment: {len(segment.data)} bytes of video ({len(segment.data) // len(value)} times larger)")
print(f"limit:   {settings.kafka_message_max_bytes} bytes per message (KAFKA_MESSAGE_MAX_BYTES)")

# %% [markdown]
# A 2 s segment at 720p is about a megabyte; a 4K one is tens of megabytes. Pushed through Kafka they would
# be copied to every replica, kept for the topic's whole retention, and read by every consumer whether it
# needs them or not, while a broker is tuned for many small records. S3 is built for large immutable
# objects, and a CDN can serve them from there. So the event carries the key and the checksum, and the bytes
# go to S3. The topic's `max.message.bytes` and the producer's `message.max.bytes` enforce it; try it:

# %%
try:
    producer.produce(settings.live_topic, key=stream_id.encode(), value=b"x" * (2 * 1024 * 1024))
    print("accepted?!")
except KafkaException as exc:
    print("refused before it left this process:", exc.args[0].name())

# %% [markdown]
# ## A bad event is never lost
#
# What if a producer publishes something that is not a valid event? The live query validates every record
# (`events.decode`); one that fails goes to the dead-letter topic with the reason and where it came from.

# %%
bad = []
producer.produce(settings.live_topic, key=stream_id.encode(), value=b'{"event_type": "live_chunk"}',
                 on_delivery=lambda err, msg: bad.append((msg.partition(), msg.offset())))
producer.flush(30)
bad_partition, bad_offset = bad[0]


def dead_letter():
    for m in last_messages(settings.dead_letter_topic, 20):
        v = m["value"]
        if v.get("source_partition") == bad_partition and v.get("source_offset") == bad_offset:
            return v
    return None


letter = lesson.wait_for(dead_letter, "the dead letter", timeout=120)
print("reason:", letter["reason"])
print("from:  ", letter["source_topic"], "partition", letter["source_partition"], "offset",
      letter["source_offset"])

# %% [markdown]
# ### Your turn 2 · fix the bad event
#
# The reason names the first field the event lacks. Make `FIXED` an event the live query accepts, for chunk 2
# of our stream: add the field the checker's hint names, run the checker, and repeat until it answers ✓ (the
# event above, `event`, is a valid one to compare with, but chunks 0 and 1 are taken). An event describes a
# segment already in S3, so upload chunk 2's segment first (`storage.put_segment`, as above). Once the event is
# valid, the checker publishes it to `live-chunks` and waits for the live query to record your chunk. This is
# how you read a dead letter in production: its reason says what to fix in the producer.

# %%
FIXED = None  # your turn: start from {"event_type": "live_chunk"} and add fields
l01.fixed_event(FIXED, stream_id)

# %% [markdown]
# ### Your turn 3 · build it: grow a topic of your own
#
# A topic that needs more parallelism gets more partitions; Kafka never takes any away. Write `grow`, which
# adds partitions to a topic (the AdminClient's `create_partitions` with `NewPartitions(topic, new_total)`;
# it returns futures). The checker runs *your* code on a topic of your own (`mine-grow-…`, deleted afterwards,
# so a broken `grow` touches nothing else), from 3 partitions to 6, and produces the same 12 keys before and
# after. Before you run it, predict with your hash from Your turn 1 which of `KEYS` will land on another
# partition, in `MOVED`. The table under the verdict shows where Kafka put each key.

# %%
KEYS = l01.GROW_KEYS


def grow(admin, topic, partitions):
    ...  # your turn: admin.create_partitions([NewPartitions(topic, partitions)]), and wait for it


MOVED = None  # your turn: the set of keys you expect to move from 3 to 6 partitions
l01.grown(grow, MOVED)

# %% [markdown]
# Finally, tidy up: end the stream (lesson 02 explains how) and delete our consumer group.

# %%
print("end the stream:", api.post("/streams/end", json={"stream_id": stream_id}).status_code)
admin = topics.admin(quiet=True)
admin.delete_consumer_groups([group], request_timeout=30)[group].result()
print("our group is still known to the broker:", group in consumer_groups())

# %% [markdown]
# ## Check yourself

# %%
assert delivered[0][1] == delivered[1][1], "a stream's events must share one partition"
assert delivered[1][2] > delivered[0][2], "offsets grow within a partition"
assert read_back == event, "what we read is what we produced"
assert lag_ours >= 1, "chunk 1 is after our committed offset"
assert re.match(r"^\w+: ", letter["reason"]), f"the reason names the field: {letter['reason']}"
lesson.ok(f"one event produced to partition {partition} and read back; the bad one is in "
          f"{settings.dead_letter_topic} with its reason")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. Why is the message key the `stream_id`, and not the chunk index?
# 2. `live-chunks` has 6 partitions. How many consumers of one group read it in parallel, and what does a 7th do?
# 3. Why does the encoder upload the segment before it publishes the event, and not the other way round?
# 4. A consumer group's lag grows steadily. Give two causes and what you would check for each.
# 5. What does an idempotent producer protect against, and what not?
# 6. Why does a bad event go to a dead-letter topic, rather than being dropped or stopping the query?
# 7. Why would a 20 MB segment be a poor Kafka message even with the limits raised?
#
# ## Recap
#
# In this lesson:
# - a topic is split into partitions, ordered logs; the key (`stream_id`) picks the partition, so a stream stays in order;
# - a consumer reads by partition and offset, and a group's committed offset and lag say where it is;
# - events carry metadata only: bytes go to S3, and the message size limit enforces it;
# - an invalid event lands in the dead-letter topic with its reason.
#
# **Next:** [02 · The control plane](02_control_plane.ipynb)
