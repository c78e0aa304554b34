"""Signed playback URLs: tokens bind stream and expiry; stored relative URIs resolve in the bucket layout."""

from __future__ import annotations

import time

import pytest

from lab import playback
from lab.config import settings


def test_sign_and_verify():
    expires, sig = playback.sign("vod-0123456789ab", ttl_s=60)
    playback.verify("vod-0123456789ab", expires, sig)
    with pytest.raises(playback.SignatureError, match="sig"):
        playback.verify("vod-ba9876543210", expires, sig)
    with pytest.raises(playback.SignatureError, match="sig"):
        playback.verify("vod-0123456789ab", expires + 1, sig)


def test_expired_url_is_refused():
    expires = int(time.time()) - 1
    sig = playback._mac("vod-0123456789ab", expires)
    with pytest.raises(playback.SignatureError, match="exp"):
        playback.verify("vod-0123456789ab", expires, sig)


def test_relative_uris_resolve_to_bucket_and_key():
    assert playback.resolve("vod-0123456789ab/720p.m3u8", "../../vod-variants/vod-0123456789ab/720p/3.ts") == (
        settings.bucket_vod_variants, "vod-0123456789ab/720p/3.ts")
    assert playback.resolve("live-0123456789/live_manifest.m3u8", "../../live-streams/live-0123456789/chunks/9.ts") \
        == (settings.bucket_live, "live-0123456789/chunks/9.ts")


def test_playlist_url_carries_expiry_and_signature():
    url, expires = playback.signed_playlist_url("live-0123456789", "live_manifest.m3u8", ttl_s=30)
    assert url.startswith(f"{settings.api_public_base}/play/live-0123456789/live_manifest.m3u8?exp={expires}&sig=")
