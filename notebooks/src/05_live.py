# %% [markdown]
# # 05 · Live: a rolling playlist, faults caught, and live becoming VOD
#
# A live encoder (ffmpeg, in real time: a moving test picture with a clock, and a tone) makes a 2-second
# segment, uploads it to S3 and publishes its event to Kafka; the Spark live query verifies each segment and
# rewrites the stream's playlist, a sliding window of the last `DVR_WINDOW_SIZE` segments. In this lesson the
# encoder of `lab/producer/encoder.py` (each segment sent by `lab/producer/stream.py`) runs inside the notebook, so you can break it on purpose.
#
# **Learning goals**
# - start a live stream and watch its playlist update: segments appended, the window sliding, the media
#   sequence number counting what slid out;
# - play it live, inline;
# - inject a gap (a sequence number that never arrives) and a corrupted segment, and see both caught: counted
#   in the metrics, and kept out of the playlist;
# - end the stream and watch live become VOD as RFC 8216 §6.2.1 allows: `#EXT-X-ENDLIST` on the live playlist,
#   the whole recording as a VOD playlist of its own, status `vod`.

# %% [markdown]
# ![a live chunk checked and windowed](diagrams/05_live.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import threading

import m3u8
import pandas as pd

from lab import catalog
from lab.config import settings
from lab.exercises import l05
from lab.producer.encoder import LiveEncoder
from lab.widgets import PlaylistViewer, chunks_frame, lesson, live_player, read_playlist
from lab.widgets.charts import value

lesson.setup()

# %% [markdown]
# ## Start the encoder
#
# `LiveEncoder.run_stream` does what the producer service does for each stream: `POST /streams/start`, then
# ffmpeg in real time, and for each finished segment: SHA-256, upload, event to Kafka. After `CHUNKS`
# segments it ends the stream with `POST /streams/end`. It runs in a background thread (`lesson.Background`),
# so the notebook stays free. 640x360 keeps the laptop's two cores for the pipeline.

# %%
CHUNKS = 15  # 30 s of video; the window holds DVR_WINDOW_SIZE of them
gaps_before = value("sum(live_chunk_gaps_total)")
bad_before = value('sum(chunk_checksum_failures_total{stream_type="live"})')
encoder = LiveEncoder(api=lesson.api(), producer=lesson.producer("lesson-05"), resolution="640x360", fps=25)
stop = threading.Event()
running = lesson.Background(encoder.run_stream, stop, chunks=CHUNKS, title="lesson 05: live", name="lesson-05")
stream_id = lesson.wait_for(lambda: encoder.stream_id, "the stream to start", timeout=60)
print(f"live stream {stream_id}: {CHUNKS} segments of {encoder.segment_seconds:g} s, "
      f"window of {settings.dvr_window_size}")

# %% [markdown]
# ## The rolling playlist
#
# The viewer re-reads the stream's playlist in the `manifests` bucket every second. Watch for:
# - new segments appended at the bottom (bright green), each a chunk the live query verified;
# - once the window is full, the oldest segment sliding out at the top and `#EXT-X-MEDIA-SEQUENCE` going up by
#   one: it is the number of the first segment in the window, so a player that reloads knows exactly which
#   segments it already has;
# - the strip of chunk numbers: in the window, slid out (still in the recording), missing, or kept out.

# %%
viewer = PlaylistViewer(stream_id)
viewer

# %% [markdown]
# ## Play it live
#
# The player loads the signed live playlist and reloads it every few seconds, like any HLS player. It starts
# a few segments behind the live edge.

# %%
live_player(stream_id)

# %% [markdown]
# ## Break it: a gap and a bad segment
#
# `inject_gap()` makes the encoder skip one sequence number before its next segment, as if a segment were
# lost on the way. `inject_corruption()` makes it upload bytes that differ from the ones it checksummed, as
# a bad disk or a truncated copy would. The live query must notice both.

# %%
lesson.wait_for(lambda: len(encoder.stream.published) >= 3, "3 segments", timeout=60)
encoder.inject_gap()
lesson.wait_for(lambda: len(encoder.stream.published) >= 5, "2 more segments", timeout=60)
encoder.inject_corruption()
lesson.wait_for(lambda: len(encoder.stream.published) >= 6, "the corrupted segment", timeout=60)
published = encoder.stream.published
missing = sorted(set(range(published[-1].sequence_number + 1)) - {c.sequence_number for c in published})
corrupted = [c.sequence_number for c in published if c.corrupted]
print(f"{len(missing)} sequence number skipped, {len(corrupted)} segment uploaded corrupted: which ones, you find out")

# %% [markdown]
# ### Your turn 1 · predict what the recording will miss
#
# When the stream ends, its whole recording becomes one VOD playlist. Which chunk numbers will it lack?
# Find the skipped and the corrupted segment's numbers (the encoder's `encoder.stream.published` lists what it
# sent, with a `corrupted` flag; the chunk table below shows what the live query made of it), decide which of
# them a recording can hold, and write your answer in `PREDICTED_MISSING` now; the checker runs once the
# recording exists, further down.

# %%
PREDICTED_MISSING = None  # your turn: a list of chunk numbers

# %% [markdown]
# The live query checks the sequence numbers (a jump means segments never arrived) and re-computes each
# segment's SHA-256 from the bytes in S3. Both are counted in its `/metrics`, which Prometheus scrapes:
# `live_chunk_gaps_total` and `chunk_checksum_failures_total{stream_type="live"}`.

# %%
gaps = lesson.wait_for(lambda: value("sum(live_chunk_gaps_total)") - gaps_before, "the gap counter", 120)
bad = lesson.wait_for(lambda: value('sum(chunk_checksum_failures_total{stream_type="live"})') - bad_before,
                      "the checksum failure counter", 120)
print(f"gap counter: +{gaps:g}; checksum failure counter: +{bad:g}")

# %% [markdown]
# The chunk documents say what happened to each one: the chunk after the gap has `gap_before = 1`; the bad one
# has `checksum_ok = False`, `in_playlist = False` and the reason. A corrupted segment takes no `playlist_seq`,
# so the playlist's numbering stays continuous.

# %% tags=["nbval-ignore-output"]
chunks_frame(stream_id)[["chunk_index", "in_playlist", "playlist_seq", "checksum_ok", "gap_before", "reason",
                         "kafka_partition", "processing_latency_ms"]]

# %% [markdown]
# ## The window slides
#
# The encoder keeps going; once more than `DVR_WINDOW_SIZE` segments are verified, each new one pushes the
# oldest out of the window.

# %%
lesson.wait_for(lambda: any(v.media_sequence > 0 and not v.ended for v in viewer.versions),
                "the window to slide", timeout=120)
print("the window is full and sliding: MEDIA-SEQUENCE rose above 0")

# %% [markdown]
# ### Your turn 2 · predict the media sequence
#
# The window keeps the last `DVR_WINDOW_SIZE` verified segments. Once 12 segments of a stream are verified,
# what is the playlist's `#EXT-X-MEDIA-SEQUENCE`? Predict it, then run the cell: the checker also looks for that
# version among the ones the viewer above saw. (To change the window for real: set `DVR_WINDOW_SIZE` in `.env`
# and restart only spark-live, from a cell: `lesson.stop_service("spark-live")`, then
# `lesson.start_service("spark-live")`. Not `lab down`: it stops every service, this notebook's JupyterLab and
# kernel included. The viewer then slides by your size.)

# %%
PREDICTED_MEDIA_SEQUENCE = None  # your turn: an int
l05.predicted_media_sequence(PREDICTED_MEDIA_SEQUENCE, 12,
                             [(v.media_sequence, v.entries) for v in viewer.versions if not v.ended])

# %% [markdown]
# ## Live becomes VOD
#
# After its last segment the encoder calls `POST /streams/end`. The end marker reaches the live query after
# every chunk of the stream (same partition). What may the query do to the live playlist now? RFC 8216
# §6.2.1 allows a server exactly four changes to a Media Playlist a player may be polling: **append** segments,
# **remove segments from the head**, **increment** `MEDIA-SEQUENCE` (by the number removed), and finally add
# `#EXT-X-ENDLIST`. Rewinding `MEDIA-SEQUENCE` to 0 and putting the slid-out segments back is none of them: a
# player that keeps polling would see sequence numbers go backwards, and is entitled to break.
#
# So the live playlist keeps its last window and only gains `#EXT-X-ENDLIST`. The whole recording is a separate
# VOD playlist at its own URL, `recording.m3u8` (`MEDIA-SEQUENCE` 0, `PLAYLIST-TYPE:VOD`, immutable), written
# first; then status `vod`, and the stream document (`recording_path`), `GET /streams/{id}/live`
# (`recording_url`) and `GET /content/{id}` say where the recording is. The viewer above stops refreshing once
# it sees `ENDLIST`; the player below plays the recording from the start.

# %%
stream_id_done = running.join(timeout=180)
doc = lesson.wait_for(lambda: (d := catalog.stream_doc(catalog.LIVE, stream_id)) and d["status"] == "vod" and d,
                      "status vod", timeout=120)
lesson.wait_for(lambda: viewer.refresh() and viewer.ended, "ENDLIST in the viewer", timeout=30)
last_live = m3u8.loads(read_playlist(stream_id))
final = m3u8.loads(read_playlist(stream_id, "recording.m3u8"))
recorded = [int(s.uri.rsplit("/", 1)[1].removesuffix(".ts")) for s in final.segments]
print("status:", " → ".join(h["status"] for h in doc["status_history"]), "· recording:", doc["recording_path"])
print(f"live playlist at the end: MEDIA-SEQUENCE {last_live.media_sequence}, {len(last_live.segments)} segments, "
      f"ENDLIST {last_live.is_endlist}")
print(f"recording: {len(recorded)} segments, MEDIA-SEQUENCE {final.media_sequence}, "
      f"PLAYLIST-TYPE {final.playlist_type}, ENDLIST {final.is_endlist}")
print(f"missing from it: {sorted(set(range(max(recorded) + 1)) - set(recorded))}")

# %%
l05.predicted_missing(PREDICTED_MISSING, recorded, missing, corrupted)  # your turn 1, checked

# %%
live_player(stream_id)

# %% [markdown]
# The versions of the playlist the viewer saw, from the empty one `POST /streams/start` wrote to the final one:

# %% tags=["nbval-ignore-output"]
pd.DataFrame([{"media sequence": v.media_sequence, "first chunk": v.first_chunk, "last chunk": v.last_chunk,
               "entries": v.entries, "ENDLIST": v.ended} for v in viewer.versions]).astype(
    {"first chunk": "Int64", "last chunk": "Int64"})  # an empty playlist has no chunk: <NA>, not NaN

# %% [markdown] tags=["live-state"]
# ## Where live state lives
#
# To decide what happens to a chunk, the live query must remember, per stream: the next sequence number it
# expects (to see a gap), the DVR window (to rewrite the playlist), the playlist sequence counter (the next
# `playlist_seq`), and whether the stream has ended. That state must survive a crash of the job, and it must be
# read on every batch, so *where* it lives decides what a batch costs. The lab has three designs for it:
#
# | design | where the work runs | where the state lives | per batch and stream |
# |---|---|---|---|
# | `LIVE_ENGINE=driver` | the batch is collected to the driver, which does everything | a new version in the catalog's `live_state` per batch (insert-only; the newest 10 per stream kept), cached in driver memory | 1 insert; the catalog read once per stream after a restart |
# | `LIVE_ENGINE=executors` | the Spark task that reads the stream's Kafka partition (the key is `stream_id`, so a stream never spans two tasks: no shuffle) | one small S3 object, `manifests/{id}/live-state.json`, with the Kafka offset of the last event it applied | 1 GET + 1 PUT, whatever the catalog's size |
# | `LIVE_ENGINE=statestore`: Spark's own state store (`transformWithStateInPandas`, RocksDB) | a task after a shuffle of the batch by `stream_id` | the checkpoint's RocksDB state store, versioned with each batch | a shuffle, and round trips between the Python task and the JVM's state server |
#
# And the floor: `plain`, the executor engine's function in a plain Kafka consumer loop, no Spark.
# `lab bench live` runs them side by side on the same published chunks, so both see the same load. Measured on a
# quiet 2-core machine (only the lab running), 10 streams × 0.5 chunks/s for 30 s:
#
# | spark-live engine | 1-minute load | spark p50 | spark p99 | plain beside it, p50 / p99 | spark-live's CPU | plain's CPU |
# |---|---|---|---|---|---|---|
# | driver | 0.8 → 3.1 | 715 ms | 1235 ms | 212 / 1018 ms | ~60 % of a core | ~6 % |
# | executors | 2.0 → 5.1 | 1025 ms | 3801 ms | 162 / 1080 ms | ~45 % | ~6 % |
# | statestore (a bench app beside spark-live, driver) | 6.7 → 9.5 | 2899 ms | 6338 ms | 256 / 641 ms | ~32 % | ~6 % |
#
# The same I/O costs plain ~75 ms a batch and a few percent of a core; Spark adds its micro-batch (planning,
# offsets written to the checkpoint before and after, a task per Kafka partition), and most of a chunk's time is
# waiting for the batch that picks it up. Measure your own machine: `lab bench live --streams 10` prints the same
# table with the load average and where the CPU went.
#
# What the executor design buys is not speed on one machine but
# that the work spreads over a cluster's executors and that a batch never reads the catalog, however big it
# grows.

# %%
from lab import storage
from lab.streaming import live_io, live_task
from lab.streaming.live_logic import state_doc_id

print("this lab's live query runs LIVE_ENGINE =", settings.live_engine)
outputs = live_task.Outputs()
state_object = storage.get_text(settings.bucket_manifests, outputs.state_key(stream_id))
newest_version = live_io.read_known(stream_id).state.version
state_doc = catalog.find_by_id(catalog.LIVE_STATE, state_doc_id(stream_id, newest_version))
print("state object in S3:", "yes" if state_object else "none (the driver engine keeps its state in the catalog)")
print("state versions in the catalog's live_state:", "yes" if state_doc else "none")

# %% [markdown]
# The stream of this lesson has ended. Its last state says so, and it holds exactly what the decisions need:

# %% tags=["nbval-ignore-output"]
shown = ["status", "last_sequence", "verified_count", "missing_total", "rejected_total", "target_duration"]
last = live_task.Stored.from_json(stream_id, state_object).state if state_object else \
    live_io.read_known(stream_id).state
print({field: getattr(last, field) for field in shown})
print("DVR window (chunk: playlist_seq):", {e.chunk_index: e.playlist_seq for e in last.window})

# %% [markdown]
# How a restarted job gets this state back: it runs the same code as any batch, and nothing in it was kept in
# memory. The executor engine's task reads the object by key (`read_stored`: one GET; the Kafka offset inside
# tells a replayed batch which events are already applied). The driver engine reads the stream document,
# then walks the `live_state` versions forward to the newest (`read_known`). Run both now, as a job that
# just restarted would, and compare with what was recorded last:

# %%
if state_object:  # (read_stored on a stream without an object would create one: only where there is one)
    recovered = live_task.read_stored(outputs, stream_id)
    print("executor engine, one GET: the same state:", recovered.state == last,
          "| knows the last Kafka event it applied:", recovered.offset >= 0)
recovered = live_io.read_known(stream_id).state
print("driver engine, from the catalog: the same window and counters:",
      (recovered.window, recovered.last_sequence, recovered.verified_count)
      == (last.window, last.last_sequence, last.verified_count))

# %% [markdown]
# Lesson 08 kills the job for real. The integration test
# `test_job_killed_between_the_playlist_and_the_state_write_restarts_to_the_same_result` kills it at the worst
# moment, after a batch's playlist write and before its state write (`live_task.fault_point`): the restarted
# job replays the batch from Spark's offset log, finds the old state, makes the same decisions, rewrites the
# same playlist, skips the documents already inserted, and only then writes the state.

# %% [markdown]
# ## Check yourself

# %%
live_versions = [v for v in viewer.versions if not v.ended and v.entries]
assert stream_id_done == stream_id
assert gaps >= 1 and bad >= 1, "both faults were counted"
assert max(v.entries for v in live_versions) == settings.dvr_window_size, "the window never grew past its size"
assert max(v.media_sequence for v in live_versions) > 0, "the window slid"
assert final.is_endlist and final.media_sequence == 0 and doc["status"] == "vod"
assert last_live.is_endlist and last_live.media_sequence == max(v.media_sequence for v in viewer.versions), \
    "RFC 8216 6.2.1: the live playlist only gained ENDLIST; its media sequence never went back"
assert not set(missing + corrupted) & set(recorded), "neither the lost nor the bad segment is in the recording"
assert len(recorded) == CHUNKS - len(corrupted), "every good segment is in the recording"
lesson.ok(f"the live window slid, the gap and the bad segment were caught and kept out, and the {len(recorded)} "
          "good segments became a VOD recording")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. What does `#EXT-X-MEDIA-SEQUENCE` tell a player, and what goes wrong if it is off by one?
# 2. Why does a corrupted segment take no playlist number?
# 3. Why keep a window instead of listing every segment while live?
# 4. A gap is detected when the next chunk arrives. Why not wait for the missing one?
# 5. What guarantees that the final recording holds every chunk sent before the end?
# 6. Why is the final playlist cacheable as immutable and the live one for a second only?
# 7. How would you make the window hold one minute of video?
#
# ## Recap
#
# In this lesson:
# - the live query verifies each segment and rewrites a sliding window playlist; MEDIA-SEQUENCE counts what slid out;
# - a gap and a corrupted segment are counted and kept out of the playlist;
# - the end marker turns live into VOD: the live playlist only gains `#EXT-X-ENDLIST` (§6.2.1), the whole
#   recording is its own VOD playlist, status `vod`.
#
# **Next:** [06 · Trace one chunk](06_trace.ipynb)
