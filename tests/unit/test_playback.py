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


def test_segment_presigns_are_deterministic_for_a_token_and_botocore_s_own(monkeypatch):
    """Same (bucket, key, expiry) -> the same URL, whatever the clock; and it is exactly the URL botocore's
    generate_presigned_url makes when its clock reads the derived signing time (X-Amz-Expires 7 days)."""
    import datetime

    from botocore import auth

    from lab import storage

    expires = 2_000_000_000
    first = storage.presigned_get_until("live-streams", "live-0123456789/chunks/7.ts", expires)
    storage.presigned_get_until.cache_clear()
    assert storage.presigned_get_until("live-streams", "live-0123456789/chunks/7.ts", expires) == first
    signed_at = datetime.datetime.fromtimestamp(expires - storage.SIGV4_MAX_EXPIRES, datetime.UTC)
    monkeypatch.setattr(auth, "get_current_datetime", lambda remove_tzinfo=True: signed_at.replace(tzinfo=None))
    botocore_url = storage.s3_public().generate_presigned_url(
        "get_object", Params={"Bucket": "live-streams", "Key": "live-0123456789/chunks/7.ts"},
        ExpiresIn=storage.SIGV4_MAX_EXPIRES)
    assert first == botocore_url
    assert "X-Amz-Expires=604800" in first and f"X-Amz-Date={signed_at:%Y%m%dT%H%M%SZ}" in first


def test_verify_compares_any_signature_text_without_raising():
    expires, _ = playback.sign("vod-0123456789ab", ttl_s=60)
    for sig in ("é" * 32, "\x00" * 32, "\udcff" * 32, "a" * 5000):
        with pytest.raises(playback.SignatureError, match="sig"):
            playback.verify("vod-0123456789ab", expires, sig)
