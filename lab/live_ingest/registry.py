"""The open live streams: one small document per stream that has started and not yet ended (`live_open`).

Why a collection of its own: FerretDB answers every filter but an `_id` lookup with a scan (DESIGN.md), so
nothing that runs every few seconds may read `live_metadata`, which grows all day. `live_open` holds only the
streams that are live now; the reaper deletes an entry once the stream's status is `vod`, so the collection
stays as small as the number of live streams and the reaper's scan of it stays cheap.

An entry: `_id` = stream_id, the ingest `key` and path, `seen_at` (the publisher's last sign of life, written
by `LiveStream`'s heartbeat), `end_wanted` (a reason, once an end was asked for and not yet published) and
`end_published_at`. The key never leaves this collection except in the answer to `POST /streams/start`:
the stream document that `GET /streams/{id}/metadata` returns does not carry it.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from lab import catalog

OPEN = "live_open"
INGESTS = ("encoder", "rtmp", "srt", "browser")


def new_key() -> str:
    """32 URL-safe characters: a path segment for RTMP, and within SRT's passphrase bounds (10-79)."""
    return secrets.token_urlsafe(24)


def open_stream(stream_id: str, key: str, ingest: str) -> None:
    catalog.collection(OPEN).update_one(
        {"_id": stream_id},
        {"$setOnInsert": {"stream_id": stream_id, "key": key, "ingest": ingest, "opened_at": catalog.now()}},
        upsert=True)


def heartbeat(stream_ids: list[str]) -> None:
    """These streams' publishers are alive (no upsert: an entry the reaper already closed stays closed). One
    write for all of them; the `$in` filter scans this small collection only."""
    catalog.collection(OPEN).update_many({"_id": {"$in": stream_ids}}, {"$set": {"seen_at": catalog.now()}})


def claim(stream_id: str, publisher: str) -> bool:
    """The stream's one publisher arrived; False if another already had (a filter beyond `_id`: a scan of
    this small collection only)."""
    result = catalog.collection(OPEN).update_one(
        {"_id": stream_id, "publisher_at": {"$exists": False}},
        {"$set": {"publisher_at": catalog.now(), "publisher": publisher}})
    return result.modified_count == 1


def want_end(stream_id: str, reason: str) -> None:
    """Record that the stream must end: the reaper publishes the end marker if nobody else manages to."""
    catalog.collection(OPEN).update_one({"_id": stream_id},
                                        {"$set": {"end_wanted": reason, "end_wanted_at": catalog.now()}})


def end_published(stream_id: str) -> None:
    catalog.collection(OPEN).update_one({"_id": stream_id}, {"$set": {"end_published_at": catalog.now()}})


def close(stream_id: str) -> None:
    catalog.collection(OPEN).delete_one({"_id": stream_id})


def entry(stream_id: str) -> dict[str, Any] | None:
    return catalog.find_by_id(OPEN, stream_id)


def open_streams() -> list[dict[str, Any]]:
    """Every open stream (a scan of a collection as small as the number of live streams)."""
    return list(catalog.collection(OPEN).find({}))


def key_matches(stream_id: str, key: str | None) -> bool:
    """True if `key` is the open stream's ingest key (compared in constant time)."""
    found = entry(stream_id)
    return bool(found and key and hmac.compare_digest(found["key"].encode(), key.encode()))
