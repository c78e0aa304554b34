"""The metadata catalog (MongoDB wire protocol: FerretDB embedded, MongoDB 7 in containers).

Two collections keep the reference's contract, each with a unique index on (stream_id, chunk_index):
- `vod_metadata`: one stream document (chunk_index = STREAM_DOC) carrying the status and timestamps,
  plus one document per segment;
- `live_metadata`: likewise, one stream document plus one per live chunk.
Every write is an idempotent upsert on that natural key, so a replayed Spark batch rewrites, never duplicates.
Only features both FerretDB and MongoDB 7 support are used (no change streams, no transactions).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any

from pymongo import ASCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from lab.config import settings

STREAM_DOC = -1  # chunk_index of a stream's own document: it sorts before every chunk

VOD = "vod_metadata"
LIVE = "live_metadata"
LIVE_STATE = "live_state"  # the live query's own state: one insert-only document per stream per batch

VOD_STATUSES = ("uploaded", "processing", "transcoding", "ready", "failed")
LIVE_STATUSES = ("live", "vod")


def now() -> datetime:
    return datetime.now(UTC)


@cache
def client() -> MongoClient:
    return MongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True, uuidRepresentation="standard")


def db() -> Database:
    return client()[settings.mongo_db]


def collection(name: str) -> Collection:
    return db()[name]


def ensure_indexes() -> None:
    for name in (VOD, LIVE):
        coll = collection(name)
        coll.create_index([("stream_id", ASCENDING), ("chunk_index", ASCENDING)], unique=True,
                          name="stream_chunk_unique")
        coll.create_index([("status", ASCENDING)], name="status")


def doc_id(stream_id: str, chunk_index: int) -> str:
    """A document's `_id`, derived from its natural key. Why: FerretDB v1.24's SQLite backend pushes a filter
    down to SQL only when it is an equality on `_id` alone (`internal/backends/sqlite/collection.go`, Query);
    any other filter (even `_id` plus one more field) reads and decodes every document of the collection in
    Go: measured 6 s at 5000 documents on a busy 2-core machine. The pushed-down `_id` query is still a
    scan, only a cheap one in SQLite: it compares `_ferretdb_sjson->'$._id'`, while the `_id_` index is on
    `_ferretdb_sjson->"_id"` (`metadata/registry.go`), an expression SQLite does not match to it. Measured:
    0.5 ms for the first document, ~65 ms for the last of 3500, ~100 ms for a miss."""
    return f"{stream_id}/{chunk_index}"


def stream_doc_id(stream_id: str) -> str:
    return doc_id(stream_id, STREAM_DOC)


def find_by_id(name: str, _id: str, projection: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The one lookup FerretDB pushes down to SQLite (see doc_id)."""
    return collection(name).find_one({"_id": _id}, projection)


def upsert(name: str, stream_id: str, chunk_index: int, fields: dict[str, Any],
           on_insert: dict[str, Any] | None = None) -> None:
    """Idempotent write keyed by (stream_id, chunk_index), through its `_id` (a new document takes it)."""
    update: dict[str, Any] = {"$set": fields, "$setOnInsert": {"stream_id": stream_id, "chunk_index": chunk_index,
                                                               **(on_insert or {})}}
    collection(name).update_one({"_id": doc_id(stream_id, chunk_index)}, update, upsert=True)


def stream_doc(name: str, stream_id: str) -> dict[str, Any] | None:
    return find_by_id(name, stream_doc_id(stream_id), {"_id": 0})


def chunk_docs(name: str, stream_id: str, **filters: Any) -> list[dict[str, Any]]:
    query = {"stream_id": stream_id, "chunk_index": {"$gte": 0}, **filters}
    return list(collection(name).find(query, {"_id": 0}).sort("chunk_index", ASCENDING))
