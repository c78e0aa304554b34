"""Lesson 09 solutions."""

from urllib.parse import parse_qs, urlencode, urlsplit


def ex1_forged(url: str) -> str:
    """The same URL and signature, with an expiry a day later."""
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query["exp"] = str(int(query["exp"]) + 86_400)
    return parts._replace(query=urlencode(query)).geturl()


def ex2_cdn_url(vod_id: str, rung: str, index: int) -> str:
    from lab import storage
    from lab.config import settings

    return storage.cdn_url(settings.bucket_vod_variants, storage.variant_segment_key(vod_id, rung, index))


def ex3_sign(stream_id: str, exp: int) -> str:
    """The edge's signer: what lab/playback.py computes, with the secret the edge shares with the API."""
    import hashlib
    import hmac

    from lab.config import settings

    return hmac.new(settings.url_signing_secret.encode(), f"{stream_id}:{exp}".encode(), hashlib.sha256).hexdigest()[:32]
