# %% [markdown]
# # 04 · VOD: from an upload to an adaptive-bitrate stream
#
# You upload a 12-second 720p clip. The API cuts it into keyframe-aligned segments and publishes one event per
# segment; the Spark VOD query transcodes every segment into every rendition of the ladder that is not
# above the source (720p, 480p, 360p here: never upscaled), on the executors, in parallel; then it writes
# one media playlist per rendition and a master playlist listing them.
#
# **Learning goals**
# - upload a clip and watch its status move `uploaded → processing → transcoding → ready`, with the time of
#   each step;
# - read the master playlist and one media playlist, and what each line means;
# - play the result inline, with the player switching renditions by itself;
# - compare the renditions: resolution, codec profile, and the bitrate measured from the segment sizes.

# %% [markdown]
# ![one segment through the ladder](diagrams/04_vod.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import tempfile
import time
from pathlib import Path

import m3u8
import pandas as pd
from matplotlib.figure import Figure

from lab import catalog, media, storage, urls
from lab.config import ROOT, settings
from lab.exercises import l04
from lab.widgets import BucketBrowser, CatalogBrowser, PlaylistViewer, chunks_frame, lesson, read_playlist, vod_player

lesson.setup()

# %% [markdown]
# ## Upload
#
# The same call as lesson 02 (`lab upload FILE --watch` does it from a terminal).

# %%
clip = ROOT / "data" / "sample-720p-12s.mp4"
api = lesson.api()
with open(clip, "rb") as f:
    answer = api.post("/vod/upload", data={"title": "lesson 04: the ABR ladder"},
                      files={"file": (clip.name, f, "video/mp4")}).json()
vod_id = answer["stream_id"]
print(f"{vod_id}: {answer['segments']} segments of about {settings.vod_segment_seconds:g} s, "
      f"rungs {', '.join(answer['rungs'])}")

# %% [markdown]
# ## Watch the status move
#
# The catalog browser below refreshes every 3 s while **live** is on: the stream document at the top (its
# `status_history` with the time of each step), the segment documents below (each one's rungs, and the
# executor process that transcoded it). Meanwhile the next cell polls the API and notes each status as it
# appears.

# %%
browser = CatalogBrowser(vod_id, auto=True)
browser

# %%
seen, began = [], time.monotonic()


def finished():
    """One poll: note the status if it is new; the document once the upload is ready or failed."""
    doc = api.get(f"/vod/{vod_id}/metadata").json()
    if not seen or seen[-1][0] != doc["status"]:
        seen.append((doc["status"], round(time.monotonic() - began, 1)))
    return doc if doc["status"] in ("ready", "failed") else None


try:
    doc = lesson.wait_for(finished, lambda: f"{vod_id} to be ready; statuses seen: {[s for s, _ in seen]} "
                          "(`lab status` and `lab logs spark-vod` in a terminal say why)", timeout=300, every=0.25)
    browser.refresh()
finally:
    browser.stop()
assert doc["status"] == "ready", f"the transcode failed: {doc.get('failure_reason')}"
print("the catalog recorded:", " → ".join(h["status"] for h in doc["status_history"]))

# %% tags=["nbval-ignore-output"]
print("this notebook's poll saw:", ", ".join(f"{status} after {t} s" for status, t in seen))

# %% [markdown]
# A poll every 250 ms can miss a step: `processing → transcoding` often takes a few milliseconds. The catalog
# keeps the exact time of each transition in `status_history`; the time between them is where
# the work happened: `uploaded → processing` is Kafka plus the wait for the next VOD batch, `transcoding →
# ready` is the ladder being made on the executors, then the playlists being written.

# %% tags=["nbval-ignore-output"]
history = pd.DataFrame(doc["status_history"])
history["at"] = pd.to_datetime(history["at"])
history["seconds since upload"] = (history["at"] - history["at"].iloc[0]).dt.total_seconds()
history["step took (s)"] = history["at"].diff().dt.total_seconds()
history

# %% tags=["nbval-ignore-output"]
chunks_frame(vod_id)[["chunk_index", "status", "duration_ms", "rungs", "executor", "encode_seconds"]]

# %% [markdown]
# ## The playlists
#
# The **master playlist** lists one variant per rendition, highest first: its `BANDWIDTH` (the peak segment
# bitrate) and `AVERAGE-BANDWIDTH` are computed from the real sizes of the transcoded segments, `CODECS`
# from the H.264 profile and level the encoder used. A player reads it first and picks a rendition that
# fits its bandwidth and screen.

# %%
PlaylistViewer(vod_id, auto=False)

# %% [markdown]
# Each variant is a **media playlist**: the segments of one rendition with their durations. Every rendition
# lists the same durations (the raw segments'), so a player switching rungs mid-stream stays on one
# timeline. The URIs are relative paths in the bucket layout, host-free: the API signs them per request
# (lesson 09).

# %% tags=["nbval-ignore-output"]
print(read_playlist(vod_id, storage.vod_media_playlist_key(vod_id, answer["rungs"][0]).split("/")[-1]))

# %% [markdown]
# And the files themselves, in `vod-variants/{stream_id}/{rung}/{index}.ts`, each with its SHA-256 kept as
# object metadata and a `Cache-Control` that says it never changes:

# %%
BucketBrowser(settings.bucket_vod_variants, f"{vod_id}/", limit=18)

# %% [markdown]
# ### Your turn 1 · trace one rendition through the transcode
#
# Follow segment 1 of the 480p rendition: where in S3 did the executor put it, and which SHA-256 did it record
# in the catalog? Find both in code (the key functions of `lab/storage.py`; the chunk documents,
# `catalog.chunk_docs(catalog.VOD, vod_id)`, hold each rendition's checksum under `variants`) and run the
# checker: it downloads the object and hashes it.

# %%
MY_KEY = None     # your turn: the S3 key of segment 1 at 480p
MY_SHA256 = None  # your turn: the checksum the catalog recorded for it
l04.rendition_traced(vod_id, "480p", 1, MY_KEY, MY_SHA256)

# %% [markdown]
# ## Play it
#
# The API's hls.js page with the signed master playlist. The bar under the video shows the rendition
# (`level`) it is playing: hls.js picks one from the master playlist, measures how fast segments arrive,
# and switches up or down at a segment boundary.

# %%
vod_player(vod_id)

# %% [markdown]
# ## Compare the renditions
#
# From the stream document: each rung's resolution, H.264 profile and level, and the bitrate measured from
# its segment sizes (bits / seconds), next to what the master playlist announces.

# %%
final = catalog.stream_doc(catalog.VOD, vod_id)
master = m3u8.loads(read_playlist(vod_id))
announced = {p.uri.removesuffix(".m3u8"): p.stream_info for p in master.playlists}
results = final["segment_results"]
rows = []
for rung in final["variants_generated"]:
    facts = final["renditions"][rung]
    sizes = [r["sizes"][rung] for r in results.values()]
    seconds = sum(r["duration_ms"] for r in results.values()) / 1000
    rows.append({"rung": rung, "resolution": f"{facts['width']}x{facts['height']}",
                 "profile": f"{facts['profile']} {facts['level']}", "segments": len(sizes),
                 "MB": round(sum(sizes) / 1e6, 2), "average kbit/s": round(sum(sizes) * 8 / seconds / 1000),
                 "BANDWIDTH kbit/s": round(announced[rung].bandwidth / 1000),
                 "AVERAGE-BANDWIDTH kbit/s": round(announced[rung].average_bandwidth / 1000)})
rungs = pd.DataFrame(rows)
print("renditions:", ", ".join(f"{r.rung} ({r.resolution})" for r in rungs.itertuples()))

# %% tags=["nbval-ignore-output"]
rungs

# %%
fig = Figure(figsize=(7, 2.6))
ax = fig.subplots()
ax.barh(rungs["rung"], rungs["average kbit/s"], color="#5c6bc0")
ax.invert_yaxis()
ax.set_xlabel("average bitrate (kbit/s), from the segment sizes")
ax.set_title(f"the ladder of a {final['source']['height']}p source")
fig.tight_layout()
fig

# %% [markdown]
# Roughly, each step down the ladder halves the bitrate: fewer pixels to describe. A viewer on a phone
# over 3G gets the 360p rung and keeps playing; one on fibre gets 720p.
#
# ### Your turn 2 · predict the ladder of a 480p upload
#
# The cell below makes a 4-second 854x480 clip with ffmpeg and uploads it. Before you run it: which rungs
# will the API announce for it, highest first? The ladder is `VOD_LADDER` in `.env`
# (`1080p,720p,480p,360p`). Write your answer in `PREDICTED_RUNGS` and run the cell.

# %%
PREDICTED_RUNGS = None  # your turn: a list such as ["720p", "360p"]
clip_480 = media.make_test_clip(Path(tempfile.mkdtemp(prefix="lesson-04-")) / "clip-480p.mp4", 4, 854, 480)
with open(clip_480, "rb") as f:
    answer_480 = api.post("/vod/upload", data={"title": "lesson 04: a 480p source"},
                          files={"file": (clip_480.name, f, "video/mp4")}).json()
print(f"{answer_480['stream_id']}: the API announced {answer_480['rungs']}")
l04.predicted_ladder(PREDICTED_RUNGS, answer_480["rungs"], 480)

# %% [markdown]
# ## Check yourself
#
# A real decoder (ffmpeg) plays the signed master playlist to the end, every rendition's playlist is
# listed, and every segment was transcoded with a checksum.

# %%
url = api.get(f"/vod/{vod_id}/manifest").json()["manifest_url"]
urls.decode_check(url)  # ffmpeg, from inside the stack: lab/urls.py
assert [h["status"] for h in final["status_history"]] == ["uploaded", "processing", "transcoding", "ready"]
assert [s for s, _ in seen][-1] == "ready"
assert list(rungs["rung"]) == ["720p", "480p", "360p"], "never upscaled, never skipped"
assert rungs["average kbit/s"].is_monotonic_decreasing, "smaller rungs cost fewer bits"
assert all(c["variants"][r]["sha256"] for c in catalog.chunk_docs(catalog.VOD, vod_id) for r in rungs["rung"])
lesson.ok(f"{vod_id} is ready: {len(rungs)} renditions x {answer['segments']} segments, and ffmpeg decodes "
          "the signed master playlist")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. Why is the ladder never upscaled?
# 2. Why do all renditions share segment durations, with a keyframe at each segment's start?
# 3. BANDWIDTH and AVERAGE-BANDWIDTH: which does a player rely on to avoid stalls, and why measure them from the real segment sizes?
# 4. What would go wrong if the playlists were written before every segment of every rung was uploaded?
# 5. A transcode task is retried on another executor after a first attempt died half-way. Why is that safe here?
# 6. Why did the notebook's poll miss `processing → transcoding` while the catalog recorded both?
# 7. Why does the bitrate roughly halve at each step down?
#
# ## Recap
#
# In this lesson:
# - an upload is cut into keyframe-aligned segments; each is transcoded to every rung at or below the source;
# - the master playlist lists the renditions with measured bandwidths; each media playlist lists one rung's segments;
# - every rendition is checksummed and keyed by `{stream_id}/{rung}/{index}.ts`.
#
# **Next:** [05 · Live](05_live.ipynb)
