"""S3 object storage: buckets, the deterministic key layout, signed URLs and Cache-Control.

Only boto3 and the S3 API are used, so the embedded SeaweedFS, MinIO, AWS S3 or R2 work by changing
S3_ENDPOINT in `.env`. Buckets are private: players get presigned URLs, never a public bucket.
"""

from __future__ import annotations

import datetime
from functools import cache, lru_cache
from urllib.parse import quote

import boto3
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.client import BaseClient
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from lab.config import settings

# Cache-Control per object type (the reference's CDN table).
IMMUTABLE = "public, max-age=31536000, immutable"
LIVE_PLAYLIST = "max-age=2, s-maxage=1"

VOD_MASTER = "vod_manifest.m3u8"
LIVE_PLAYLIST_NAME = "live_manifest.m3u8"
RECORDING_NAME = "recording.m3u8"  # a live stream's recording: a VOD playlist of its own (RFC 8216 6.2.1)


# --- the key layout: built only from stream_id, rendition and chunk index ---------------------------

def raw_segment_key(stream_id: str, index: int) -> str:
    return f"{stream_id}/raw/{index}.ts"


def variant_segment_key(stream_id: str, rung: str, index: int) -> str:
    return f"{stream_id}/{rung}/{index}.ts"


def live_chunk_key(stream_id: str, index: int) -> str:
    return f"{stream_id}/chunks/{index}.ts"


def vod_master_key(stream_id: str) -> str:
    return f"{stream_id}/{VOD_MASTER}"


def vod_media_playlist_key(stream_id: str, rung: str) -> str:
    return f"{stream_id}/{rung}.m3u8"


def live_playlist_key(stream_id: str) -> str:
    return f"{stream_id}/{LIVE_PLAYLIST_NAME}"


def recording_playlist_key(stream_id: str) -> str:
    return f"{stream_id}/{RECORDING_NAME}"


def cdn_url(bucket: str, key: str) -> str:
    """The URL a CDN in front of the bucket would serve: derivable from stream_id without a lookup."""
    return f"{settings.cdn_base_url.rstrip('/')}/{bucket}/{key}"


# --- clients ---------------------------------------------------------------------------------------

def _client(endpoint: str) -> BaseClient:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key,
        region_name=settings.s3_region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"},
                      retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=32),
    )


@cache
def s3() -> BaseClient:
    """Client for reads and writes inside the stack."""
    return _client(settings.s3_url)


@cache
def s3_public() -> BaseClient:
    """Client used only to sign URLs with the host players reach (the signature covers the host)."""
    return _client(settings.s3_public_url)


def ensure_buckets() -> list[str]:
    """Create the four private buckets and allow browser players (CORS GET) to fetch from them; returns
    the buckets it created."""
    client = s3()
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = [b for b in settings.buckets if b not in existing]
    for bucket in settings.buckets:
        if bucket in created:
            client.create_bucket(Bucket=bucket)
        client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
            {"AllowedOrigins": ["*"], "AllowedMethods": ["GET", "HEAD"], "AllowedHeaders": ["*"],
             "ExposeHeaders": ["Content-Length", "Content-Range", "ETag"], "MaxAgeSeconds": 3600}]})
    return created


def put(bucket: str, key: str, body: bytes, *, content_type: str, cache_control: str,
        metadata: dict[str, str] | None = None) -> None:
    s3().put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type,
                    CacheControl=cache_control, Metadata=metadata or {})


def put_segment(bucket: str, key: str, body: bytes, sha256: str) -> None:
    """Segments are write-once: immutable, with their checksum kept as user metadata."""
    put(bucket, key, body, content_type="video/mp2t", cache_control=IMMUTABLE, metadata={"sha256": sha256})


def put_playlist(bucket: str, key: str, text: str, *, cache_control: str) -> None:
    put(bucket, key, text.encode(), content_type="application/vnd.apple.mpegurl", cache_control=cache_control)


def get_bytes(bucket: str, key: str) -> bytes:
    return s3().get_object(Bucket=bucket, Key=key)["Body"].read()


def get_text(bucket: str, key: str) -> str | None:
    try:
        return get_bytes(bucket, key).decode()
    except ClientError as exc:
        if exc.response["Error"]["Code"] in ("NoSuchKey", "404"):
            return None
        raise


def presigned_get(bucket: str, key: str, ttl_s: int | None = None) -> str:
    return s3_public().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=ttl_s or settings.signed_url_ttl_s)


# --- presigned GETs with a given signing time ----------------------------------------------------
SIGV4_MAX_EXPIRES = 7 * 24 * 3600  # the longest X-Amz-Expires SigV4 allows


class _SignedAtAuth(S3SigV4QueryAuth):
    """botocore's S3 query-string signer with the signing time given instead of read from the clock.

    `SigV4Auth.add_auth` stamps `request.context['timestamp']` from `get_current_datetime()` and has no
    parameter for it, so this override sets the timestamp and then runs the same steps (botocore 1.44,
    auth.py); canonical request, string to sign, signature and URL are botocore's own."""

    def __init__(self, credentials: Credentials, region: str, expires: int, signed_at: datetime.datetime):
        super().__init__(credentials, "s3", region, expires)
        self._signed_at = signed_at

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self._signed_at.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        string_to_sign = self.string_to_sign(request, self.canonical_request(request))
        self._inject_signature_to_request(request, self.signature(string_to_sign, request))


@lru_cache(maxsize=16384)
def presigned_get_until(bucket: str, key: str, expires_at: int) -> str:
    """A presigned GET (players' S3 host) valid until `expires_at`, the same URL on every call.

    The signing time is derived from the expiry (expires_at - 7 days, X-Amz-Expires 7 days), not read from
    the clock: a live playlist re-signed at each poll then keeps every segment's URI (RFC 8216 6.2.1 lets a
    server only append, drop from the head, and add ENDLIST), and repeated polls cost a cache hit."""
    signed_at = datetime.datetime.fromtimestamp(expires_at - SIGV4_MAX_EXPIRES, datetime.UTC).replace(tzinfo=None)
    request = AWSRequest(method="GET", url=f"{settings.s3_public_url.rstrip('/')}/{bucket}/{quote(key, safe='/~')}")
    auth = _SignedAtAuth(Credentials(settings.s3_access_key, settings.s3_secret_key), settings.s3_region,
                         SIGV4_MAX_EXPIRES, signed_at)
    auth.add_auth(request)
    return request.url


def list_keys(bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def delete_prefix(bucket: str, prefix: str) -> None:
    keys = list_keys(bucket, prefix)
    for start in range(0, len(keys), 1000):
        s3().delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})
