# %% [markdown]
# # 09 · The read path: signed URLs, caching, CDN URLs, the content catalog
#
# Viewers never see a bucket. A player asks the API for a playlist URL; that URL is **signed** (it stops
# working at a given time, and cannot be changed without breaking the signature); the playlist it returns
# points at segments through **presigned S3 URLs**, so the bytes come straight from storage. Every object
# carries a `Cache-Control` that tells a CDN how long it may keep it.
#
# **Learning goals**
# - see a signed playlist URL accepted, and a forged, re-used or expired one refused with 403;
# - see the buckets refuse an unsigned request, and a presigned URL expire;
# - read the `Cache-Control` of each kind of object and say why it differs (segments immutable, the live
#   playlist a second or two);
# - derive a CDN URL from a `stream_id` alone, and read the content catalog (`GET /content/{id}`).

# %% [markdown]
# ![signed URLs in front of private buckets](diagrams/09_read_path.svg)
#
# *The part of the lab this lesson takes apart; in orange, one chunk's path, step by step.*

# %%
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import m3u8
import pandas as pd

from lab import playback, storage, urls  # urls.fetch: a browser URL, fetched from inside the stack
from lab.config import ROOT, settings
from lab.exercises import l09
from lab.producer.replay import Replay, sample_segments
from lab.widgets import lesson
from lab.widgets.player import play

lesson.setup()

# %% [markdown]
# ## Two streams to read
#
# A short VOD upload, and a live stream with three chunks (pre-encoded real segments).

# %%
api = lesson.api()
with open(ROOT / "data" / "sample-360p-8s.mp4", "rb") as f:
    vod_id = api.post("/vod/upload", data={"title": "lesson 09: read path"},
                      files={"file": ("sample-360p-8s.mp4", f, "video/mp4")}).json()["stream_id"]
replay = Replay(sample_segments(3, resolution="320x180"), api=api, producer=lesson.producer("lesson-09"))
stream = replay.start_stream("lesson 09: read path")
live_id = stream.stream_id
for _ in range(3):
    replay.send(stream)
replay.producer.flush(30)
live_key = storage.live_playlist_key(live_id)
lesson.wait_for(lambda: "chunks/2.ts" in (storage.get_text(settings.bucket_manifests, live_key) or ""),
                "3 chunks in the live playlist", timeout=120)
print("VOD", vod_id, "and live", live_id)

# %% [markdown]
# ## A signed playlist URL
#
# `GET /streams/{id}/live` answers with `manifest_url`: the API's `/play/{id}/{name}` with two query
# parameters, `exp` (the expiry, epoch seconds, `SIGNED_URL_TTL_S` from now) and `sig`, an HMAC-SHA256 of
# `stream_id:exp` with `URL_SIGNING_SECRET`, which only the API knows (`lab/playback.py`), **truncated to its
# first 128 bits** (32 hex digits of the 64 the full tag has). Truncating an HMAC is standard (RFC 2104, NIST
# SP 800-107, at least half the hash): a forger still needs about 2^128 guesses, and the URL stays shorter.

# %%
answer = api.get(f"/streams/{live_id}/live").json()
url = answer["manifest_url"]
query = parse_qs(urlsplit(url).query)
print("manifest_url:", url)
print(f"expires in about {int(query['exp'][0]) - time.time():.0f} s")
print(f"sig: {len(query['sig'][0])} hex digits = {4 * len(query['sig'][0])} bits of HMAC-SHA256's 256")
resp = urls.fetch(url)
print("GET it:", resp.status_code, resp.headers["content-type"])

# %% [markdown]
# What the player gets back: the stored playlist with every URI rewritten for this request. Each segment is
# now a presigned S3 URL (the `X-Amz-…` parameters): a URL that works, for a limited time, without any
# credentials, and only for that one object.

# %% tags=["nbval-ignore-output"]
print(resp.text[:900])

# %% [markdown]
# ## Forged, borrowed, expired: refused
#
# Change one character of the signature; use a valid signature of *another* stream; or sign a URL that lives
# one second and wait two. The API checks the HMAC (in constant time) and the expiry before it reads anything.

# %%
def with_query(u, **params):
    parts = urlsplit(u)
    merged = {k: v[0] for k, v in parse_qs(parts.query).items()} | params
    return parts._replace(query=urlencode(merged)).geturl()


sig = query["sig"][0]
forged = with_query(url, sig=sig[:-1] + ("0" if sig[-1] != "0" else "1"))
other = replay.start_stream("lesson 09: another stream")
borrowed = with_query(url.replace(live_id, other.stream_id))
short, _ = playback.signed_playlist_url(live_id, storage.LIVE_PLAYLIST_NAME, ttl_s=1)
short_exp = int(parse_qs(urlsplit(short).query)["exp"][0])
lesson.wait_for(lambda: time.time() > short_exp + 1, "the short URL to expire", timeout=30)
refusals = {}
for name, u in (("forged signature", forged), ("another stream's signature", borrowed), ("expired", short)):
    r = urls.fetch(u)
    refusals[name] = r.status_code
    print(f"{name:<27} {r.status_code} {r.json()['detail']}")
replay.end(other)

# %% [markdown]
# ### Your turn 1 · forge a URL
#
# A viewer whose link expires tomorrow would like it to last a week. Make `FORGED`: the same URL as `url` with
# the same `sig`, but `exp` pushed a day later (`with_query` above helps). Predict what the API answers, then run
# the checker: it sends your URL.

# %%
FORGED = None  # your turn: with_query(url, exp=...)
l09.forged_refused(FORGED, url)

# %% [markdown]
# ## The buckets are private
#
# The segment URIs point straight at S3. Without a signature, or with an expired one, S3 itself refuses:
# there is no public bucket to scrape.

# %%
segment_key = storage.live_chunk_key(live_id, 0)
unsigned = urls.fetch(f"{settings.s3_public_url}/{settings.bucket_live}/{segment_key}")
fresh = storage.presigned_get(settings.bucket_live, segment_key, 3)  # valid for 3 s
signed_at = time.time()
ok_now = urls.fetch(fresh)
lesson.wait_for(lambda: time.time() > signed_at + 4.5, "the presigned URL to expire", timeout=30)
expired = urls.fetch(fresh)
print("unsigned:                ", unsigned.status_code)
print("presigned, fresh:        ", ok_now.status_code, f"({len(ok_now.content) // 1024} KiB of MPEG-TS)")
print("presigned, after expiry: ", expired.status_code)

# %% [markdown]
# ## Cache-Control per object type
#
# A CDN in front of the buckets caches each object for as long as its `Cache-Control` allows. A segment
# never changes once written (its key includes its index, its bytes have a checksum), so it is cached for a
# year, `immutable`. A live playlist changes every two seconds, so it may be kept 2 s by a browser and 1 s by
# a CDN (`s-maxage`): any longer and viewers fall behind the live edge. When the stream ends, its final
# playlist never changes again: immutable. The API's signed copies follow the same rule while live; once the
# stream is finished they are `private` (their presigned segment URLs belong to one viewer) for at most 5
# minutes.

# %%
vod_doc = lesson.wait_for(lambda: (d := api.get(f"/vod/{vod_id}/metadata").json())["status"] == "ready" and d,
                          f"{vod_id} to be ready", timeout=300)


def cache_control(bucket, key):
    return storage.s3().head_object(Bucket=bucket, Key=key).get("CacheControl")


rows = [
    ("live segment", settings.bucket_live, segment_key),
    ("live playlist, while live", settings.bucket_manifests, live_key),
    ("VOD segment (360p)", settings.bucket_vod_variants, storage.variant_segment_key(vod_id, "360p", 0)),
    ("VOD media playlist", settings.bucket_manifests, storage.vod_media_playlist_key(vod_id, "360p")),
    ("VOD master playlist", settings.bucket_manifests, storage.vod_master_key(vod_id)),
]
table = [{"object": name, "bucket": bucket, "Cache-Control": cache_control(bucket, key)}
         for name, bucket, key in rows]
table.append({"object": "signed live playlist (API)", "bucket": "-",
              "Cache-Control": urls.fetch(url).headers["cache-control"]})

replay.end(stream)
lesson.wait_for(lambda: api.get(f"/streams/{live_id}/metadata").json()["status"] == "vod", "vod", timeout=120)
table.append({"object": "live playlist, after the end", "bucket": settings.bucket_manifests,
              "Cache-Control": cache_control(settings.bucket_manifests, live_key)})
table.append({"object": "signed playlist of a finished stream (API)", "bucket": "-",
              "Cache-Control": urls.fetch(url).headers["cache-control"]})
cache_table = pd.DataFrame(table)
cache_table

# %% [markdown]
# ## CDN URLs from the stream_id alone
#
# Keys are built only from `stream_id`, rendition and chunk index (`lab/storage.py`), so anyone who knows a
# stream's id can compute where every one of its objects lives, without asking the catalog. That is what lets
# a CDN (`CDN_BASE_URL`) mirror the buckets and serve them at the edge.

# %%
derived = {
    "master playlist": storage.cdn_url(settings.bucket_manifests, storage.vod_master_key(vod_id)),
    "360p rendition playlist": storage.cdn_url(settings.bucket_manifests,
                                               storage.vod_media_playlist_key(vod_id, "360p")),
    "segment 3 at 360p": storage.cdn_url(settings.bucket_vod_variants,
                                         storage.variant_segment_key(vod_id, "360p", 3)),
    "live playlist": storage.cdn_url(settings.bucket_manifests, storage.live_playlist_key(live_id)),
    "live chunk 42": storage.cdn_url(settings.bucket_live, storage.live_chunk_key(live_id, 42)),
}
for name, u in derived.items():
    print(f"{name:<24} {u}")

# %% [markdown]
# ### Your turn 2 · a CDN URL from the id alone
#
# Without looking at the catalog: what is the CDN URL of segment **2** of the **360p** rendition of `vod_id`?
# Build it with the functions used above and set `MY_CDN_URL`.

# %%
MY_CDN_URL = None  # your turn
l09.cdn_url_derived(MY_CDN_URL, vod_id, "360p", 2)

# %% [markdown]
# ### Your turn 3 · build it: an edge that signs
#
# A CDN in front of private buckets has two jobs: cache the objects, and decide who may fetch them. It cannot
# ask the API for every viewer, so the CDN's edge holds the same secret and signs (or checks) URLs itself. Be
# that edge: write `sign(stream_id, exp)`, the HMAC-SHA256 of `f"{stream_id}:{exp}"` keyed with
# `settings.url_signing_secret` (here the kernel has it, as an edge would; `hmac` and `hashlib` are in the
# standard library), as hex, its first 32 digits. The checker signs the live stream's playlist for two expiries
# with your code and has the real API play both, and checks that another stream gets another signature.
# Once it says ✓, the player below plays a URL only your code signed.

# %%
def sign(stream_id, exp):
    ...  # your turn: return the first 32 hex digits of the HMAC-SHA256 of f"{stream_id}:{exp}"


verdict = l09.signed_by_you(sign, live_id, other.stream_id)
verdict

# %%
edge_exp = int(time.time()) + 600
if verdict:
    display(play(playback.playlist_url(live_id, storage.LIVE_PLAYLIST_NAME, edge_exp, sign(live_id, edge_exp)),
                 label="signed by your edge"))
else:
    print("once the checker says ✓, the URL your sign made plays here")

# %% [markdown]
# ## The content catalog
#
# `GET /content/{id}` is the view a front end lists: title, type, status, renditions, and the CDN URL of the
# playlist. It answers for both kinds of stream, and 404 for an unknown id.

# %%
vod_content = api.get(f"/content/{vod_id}").json()
live_content = api.get(f"/content/{live_id}").json()
missing = api.get("/content/vod-000000000000")
for content in (vod_content, live_content):
    print({k: content.get(k) for k in ("stream_id", "title", "stream_type", "status", "variants", "manifest_url")})
print("unknown id:", missing.status_code, missing.json()["detail"])

# %% [markdown]
# ## Check yourself

# %%
assert resp.status_code == 200 and "#EXTM3U" in resp.text
assert all(seg.uri.startswith(settings.s3_public_url) and "X-Amz-Signature" in seg.uri
           for seg in m3u8.loads(resp.text).segments), "segments are presigned S3 URLs"
assert set(refusals.values()) == {403}
assert (unsigned.status_code, ok_now.status_code, expired.status_code) == (403, 200, 403)
cc = dict(zip(cache_table["object"], cache_table["Cache-Control"], strict=True))
assert "immutable" in cc["live segment"] and "immutable" in cc["VOD segment (360p)"]
assert cc["live playlist, while live"] == storage.LIVE_PLAYLIST and "immutable" in cc["live playlist, after the end"]
assert vod_content["manifest_url"] == derived["master playlist"]
assert live_content["manifest_url"] == derived["live playlist"]
assert missing.status_code == 404
lesson.ok("signed URLs accepted, forged or expired ones refused, private buckets, Cache-Control per object "
          "type, and CDN URLs derived from the stream_id match the content catalog")

# %% [markdown]
# ## Questionnaire
#
# Answer in your own words, alone or with a neighbour (a markdown cell of your own is a good place);
# the questions need the lesson's ideas, not its cells. The instructor has the answers.
#
# 1. Why does the signature cover `stream_id:exp`, not only the stream id?
# 2. The signature is HMAC-SHA256 truncated to 128 bits. Why is that still safe, and what does truncating buy?
# 3. Why compare signatures in constant time?
# 4. What would a 60 s `max-age` on the live playlist do to viewers?
# 5. Why can a CDN URL be derived from the stream id alone, and what does that buy?
# 6. What does a presigned S3 URL grant, to whom, and for how long?
# 7. Why are the API's signed copies of a finished stream `private`?
#
# ## Recap
#
# In this lesson:
# - playback URLs are HMAC-signed with an expiry; forged, borrowed and expired ones get 403;
# - buckets are private: segments are reached through presigned URLs only;
# - Cache-Control follows what can change: segments and finished playlists immutable, the live playlist a second;
# - CDN URLs and the content catalog derive from the stream id alone.
#
# **That was the last lesson.** Back to the start: [00 · Welcome](00_welcome.ipynb); the README's architecture section follows one chunk through the code, module by module.
