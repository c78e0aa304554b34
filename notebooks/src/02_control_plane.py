# %% [markdown]
# # 02 · The control plane: the API from Python
#
# The API (`lab/api/`, FastAPI) is the pipeline's front desk: it accepts VOD uploads, starts and ends live
# streams, and hands out playback URLs. It is *not* on the path of live video: the encoder talks to S3 and
# Kafka directly.
#
# **Learning goals**
# - call the API from Python with `httpx`, with the API key the write endpoints need;
# - find every endpoint in the OpenAPI description (and its interactive page);
# - upload a video and follow its status to `ready`;
# - start and end a live stream, and see why its end travels through Kafka;
# - explain why live chunks bypass the API.

# %% [markdown]
# ![the control plane](diagrams/02_control_plane.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import httpx
import pandas as pd
from IPython.display import IFrame

from lab import urls
from lab.config import ROOT, settings
from lab.exercises import l02
from lab.widgets import lesson

lesson.setup()

# %% [markdown]
# ## A client
#
# `lesson.api()` is an `httpx.Client` with the API's base URL and the `X-API-Key` header (the key is
# `LAB_API_KEY` in `.env`). Reads need no key; writes do. First, the API's own health: it checks that the
# catalog, S3 and Kafka answer.

# %%
api = lesson.api()
print(settings.api_base)
health = api.get("/health").json()
print(health)

# %% [markdown]
# ## What the API offers
#
# FastAPI describes every route in an OpenAPI document, `GET /openapi.json`; the interactive page at
# `/docs` (Swagger UI) lets you try each one in the browser (click **Authorize** and paste the API key).

# %%
spec = api.get("/openapi.json").json()
routes = [{"method": method.upper(), "path": path, "summary": op.get("summary", ""),
           "needs API key": bool(op.get("security"))}
          for path, ops in spec["paths"].items() for method, op in ops.items()]
pd.DataFrame(routes)

# %%
docs_url = f"{settings.api_public_base}/docs"
print("open in a new tab:", docs_url)
IFrame(docs_url, width="100%", height=420)

# %% [markdown]
# ## Writes need the key
#
# A request without the header is refused with 401, a wrong key with 403; every refusal says which field
# was wrong in `detail`.

# %%
sample = ROOT / "data" / "sample-360p-8s.mp4"
anonymous = httpx.post(f"{settings.api_base}/vod/upload", data={"title": "no key"},
                       files={"file": (sample.name, b"...", "video/mp4")})
wrong = httpx.post(f"{settings.api_base}/vod/upload", headers={"X-API-Key": "guess"}, data={"title": "x"},
                   files={"file": (sample.name, b"...", "video/mp4")})
not_video = api.post("/vod/upload", data={"title": "not a video"},
                     files={"file": ("notes.txt", b"this is not a video", "text/plain")})
for name, resp in (("no key", anonymous), ("wrong key", wrong), ("not a video", not_video)):
    print(f"{name:<12} {resp.status_code} {resp.json()['detail']}")

# %% [markdown]
# ### Your turn 1 · read the refusal, fix the request
#
# The upload below is refused. Run it, read the `detail` the checker shows (it names the field), fix the
# request in the cell, and run both cells again until the checker answers ✓. Change only what the refusals
# point at: the sample file is a good video.

# %%
with open(ROOT / "data" / "sample-360p-8s.mp4", "rb") as f:
    attempt = api.post("/vod/upload", data={"name": "lesson 02: my fixed upload"},
                       files={"video": ("sample-360p-8s.mp4", f, "video/mp4")})

# %%
l02.upload_fixed(attempt)

# %% [markdown]
# ## Upload a video
#
# `POST /vod/upload` is a multipart form: the file and a title. The API probes the file, cuts it into
# keyframe-aligned segments, stores them in `vod-raw`, creates the catalog document and publishes one Kafka
# event per segment, then answers `202 Accepted` at once: the transcoding happens later, in Spark.

# %%
with open(sample, "rb") as f:
    resp = api.post("/vod/upload", data={"title": "lesson 02: my first upload"},
                    files={"file": (sample.name, f, "video/mp4")})
print(resp.status_code)
upload = resp.json()
vod_id = upload["stream_id"]
upload

# %% [markdown]
# Its status moves `uploaded → processing → transcoding → ready` as the Spark VOD query works (lesson 04
# watches that closely). Poll `GET /vod/{id}/metadata`:

# %%
def vod_status():
    doc = api.get(f"/vod/{vod_id}/metadata").json()
    return doc if doc["status"] in ("ready", "failed") else None


doc = lesson.wait_for(vod_status, f"{vod_id} to be ready", timeout=300, every=1)
print(vod_id, "is", doc["status"])
print(" → ".join(h["status"] for h in doc["status_history"]))

# %% tags=["nbval-ignore-output"]
pd.DataFrame(doc["status_history"])

# %% [markdown]
# Once ready, `GET /vod/{id}/manifest` gives a **signed** playlist URL (valid for `SIGNED_URL_TTL_S`; lesson
# 09 explains the signatures) and the URL a CDN in front of the buckets would serve:

# %%
manifest = api.get(f"/vod/{vod_id}/manifest").json()
print("player URL:", manifest["manifest_url"])
print("CDN URL:   ", manifest["cdn_url"])
print("playlist answers:", urls.fetch(manifest["manifest_url"]).status_code)  # a browser URL, fetched from inside

# %% [markdown]
# ## A live stream: start and end
#
# `POST /streams/start` creates the stream's catalog document (status `live`) and an empty live playlist,
# so a player can open it before the first chunk. The encoder then sends its chunks straight to S3 and Kafka
# (lesson 05).

# %%
started = api.post("/streams/start", json={"title": "lesson 02: a live stream"})
print(started.status_code)
live_id = started.json()["stream_id"]
started.json()

# %%
live = api.get(f"/streams/{live_id}/live").json()
print("status:", live["status"])
print("player URL:", live["manifest_url"])

# %% [markdown]
# `POST /streams/end` does not touch the playlist. It publishes an **end marker** event to `live-chunks` with
# the stream's key, so it lands in the stream's own partition, *after* every chunk the encoder published
# before it. The Spark live query, reading that partition in order, processes every chunk first, then the
# marker: it writes the final playlist (`#EXT-X-ENDLIST`) and sets status `vod`. An API that appended
# `ENDLIST` itself would race the chunks still in flight.

# %%
ended = api.post("/streams/end", json={"stream_id": live_id})
print(ended.status_code, ended.json())


def live_status():
    doc = api.get(f"/streams/{live_id}/metadata").json()
    return doc if doc["status"] == "vod" else None


live_doc = lesson.wait_for(live_status, f"{live_id} to become vod", timeout=120)
print(" → ".join(h["status"] for h in live_doc["status_history"]))
again = api.post("/streams/end", json={"stream_id": live_id})
print("ending it again:", again.status_code, again.json()["detail"])

# %% [markdown]
# ### Your turn 2 · predict, then see
#
# Before running anything: what status code does the API answer to each of these three requests? Fill in
# `PREDICTIONS`, then run the checker: it makes the three requests and compares.

# %%
PREDICTIONS = {
    "metadata of an unknown VOD id": None,         # GET /vod/vod-000000000000/metadata
    "start a stream without the API key": None,    # POST /streams/start, no X-API-Key header
    "end a stream that does not exist": None,      # POST /streams/end {"stream_id": "live-0000000000"}
}
l02.predicted_codes(PREDICTIONS, api)

# %% [markdown]
# ## Why live chunks bypass the API
#
# A live encoder makes a segment every two seconds, per stream, for hours. If every segment went through the
# API, the API would have to receive the bytes (a megabyte or more each), store them and publish the event:
# a second network hop for every byte, one more service in the latency budget of every chunk, and one more
# thing that must scale with the number of streams. So the encoder uploads the bytes to S3 and publishes the
# event to Kafka itself (`lab/producer/stream.py`), with an idempotent producer. The API keeps the
# *control* operations, which are rare: start, end, playback URLs. Its `GET /metrics` shows that no chunk
# passes through it:

# %% tags=["nbval-ignore-output"]
metrics_text = api.get("/metrics").text
routes_seen = sorted({line.split('route="')[1].split('"')[0]
                      for line in metrics_text.splitlines() if line.startswith("api_requests_total{")})
print("routes called since the API started:")
print("\n".join(routes_seen))

# %% [markdown]
# ## Check yourself

# %%
assert health["status"] == "ok"
assert (anonymous.status_code, wrong.status_code) == (401, 403)
assert 400 <= not_video.status_code < 500 and not_video.json()["detail"].startswith("file:")
assert [h["status"] for h in doc["status_history"]] == ["uploaded", "processing", "transcoding", "ready"]
assert [h["status"] for h in live_doc["status_history"]] == ["live", "vod"]
assert again.status_code == 409
assert not any("chunk" in route for route in routes_seen), "no chunk goes through the API"
lesson.ok(f"uploaded {upload['segments']} segments and watched them become ready; started and ended a live "
          "stream through the control plane")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. Why does `POST /vod/upload` answer 202 Accepted rather than 200 or 201?
# 2. Why does the end of a live stream travel through Kafka instead of the API writing `#EXT-X-ENDLIST` itself?
# 3. What is the difference between 401 and 403 here?
# 4. Why does every refusal name the field in `detail`?
# 5. Why do live chunks bypass the API?
# 6. Ending a stream twice answers 409. What does a client learn from that, that a 200 would hide?
# 7. Reads of the API need no key. What protects the video itself?
#
# ## Recap
#
# In this lesson:
# - the API takes uploads (202, transcoded later), starts and ends live streams, and signs playback URLs;
# - writes need `X-API-Key`; every refusal names the field in `detail`;
# - the end of a live stream is an event in the stream's own partition, after its chunks;
# - live chunks never pass through the API.
#
# **Next:** [03 · Spark Structured Streaming](03_spark.ipynb)
