"""Playback through signed URLs, with no public bucket.

Stored playlists are canonical and host-free: segment URIs are relative paths in the bucket layout
(`../../vod-variants/{id}/720p/3.ts`), so the same files work behind any CDN that mirrors the buckets.
A player gets a signed API URL for a playlist; when it fetches it, the API signs every URI in it per
request: playlists become signed API URLs again, segments become presigned S3 GETs, fetched straight
from the S3 server (bytes never pass through the API). The token is an HMAC of (stream_id, expiry).
Segment URIs are signed with a time derived from the token's expiry, so every poll of a live playlist with
one token gives the same URI for the same segment (storage.presigned_get_until).
"""

from __future__ import annotations

import hashlib
import hmac
import posixpath
import re
import time
from urllib.parse import urlencode

from lab import hls, storage
from lab.config import settings

PLAYLIST_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}\.m3u8$")


class SignatureError(PermissionError):
    pass


def _mac(stream_id: str, expires: int) -> str:
    msg = f"{stream_id}:{expires}".encode()
    return hmac.new(settings.url_signing_secret.encode(), msg, hashlib.sha256).hexdigest()[:32]


def sign(stream_id: str, ttl_s: int | None = None) -> tuple[int, str]:
    expires = int(time.time()) + (settings.signed_url_ttl_s if ttl_s is None else ttl_s)
    return expires, _mac(stream_id, expires)


def verify(stream_id: str, expires: int, sig: str) -> None:
    if expires < time.time():
        raise SignatureError("exp: the signed URL has expired; ask the API for a new one")
    # bytes: compare_digest raises TypeError on a str with non-ASCII characters (a 500 at the edge)
    if not hmac.compare_digest(_mac(stream_id, expires).encode(), sig.encode("utf-8", "surrogateescape")):
        raise SignatureError("sig: signature does not match this stream and expiry")


def playlist_url(stream_id: str, name: str, expires: int, sig: str, *, base: str | None = None) -> str:
    query = urlencode({"exp": expires, "sig": sig})
    return f"{(base or settings.api_public_base).rstrip('/')}/play/{stream_id}/{name}?{query}"


def signed_playlist_url(stream_id: str, name: str, ttl_s: int | None = None) -> tuple[str, int]:
    expires, sig = sign(stream_id, ttl_s)
    return playlist_url(stream_id, name, expires, sig), expires


def resolve(playlist_key: str, uri: str) -> tuple[str, str]:
    """A URI in a stored playlist -> (bucket, key), relative to the playlist's place in the bucket layout."""
    path = posixpath.normpath(posixpath.join(settings.bucket_manifests, posixpath.dirname(playlist_key), uri))
    bucket, _, key = path.partition("/")
    return bucket, key


def signed_playlist(stream_id: str, name: str, expires: int, sig: str) -> tuple[str, str] | None:
    """The stored playlist with every URI signed; None if it does not exist. Returns (text, cache_control)."""
    verify(stream_id, expires, sig)
    if not PLAYLIST_NAME.match(name):
        raise ValueError("name: not a playlist name")
    key = f"{stream_id}/{name}"
    text = storage.get_text(settings.bucket_manifests, key)
    if text is None:
        return None
    ttl = max(1, expires - int(time.time()))

    def sign_uri(uri: str) -> str:
        """Deterministic in (uri, token): a live playlist polled again keeps each segment's URI."""
        if uri.endswith(".m3u8"):
            return playlist_url(stream_id, posixpath.basename(uri), expires, sig)
        bucket, seg_key = resolve(key, uri)
        if not seg_key.startswith(f"{stream_id}/"):
            raise ValueError(f"playlist {key} points outside its stream: {uri}")
        return storage.presigned_get_until(bucket, seg_key, expires)

    live = "#EXT-X-ENDLIST" not in text and "#EXT-X-STREAM-INF" not in text
    cache = storage.LIVE_PLAYLIST if live else f"private, max-age={min(ttl, 300)}"
    return hls.rewrite_uris(text, sign_uri), cache
