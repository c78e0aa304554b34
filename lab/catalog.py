"""The metadata catalog (MongoDB wire protocol: FerretDB embedded, MongoDB 7 in containers).

Collections:
- `vod_metadata`: one stream document (chunk_index = STREAM_DOC) carrying the status and timestamps, plus one
  document per segment;
- `live_metadata`: likewise, one stream document plus one per live chunk;
- `live_state`: the live query's own state, one insert-only document per stream per batch, the newest
  STATE_VERSIONS_KEPT per stream kept (live_io.ViewWriter prunes the rest);
- `streams`: a small index of stream ids with their collection and creation time, bounded (the newest
  STREAMS_KEPT per collection), so listing the newest streams never reads the chunk documents.
Every document's `_id` derives from its natural key (doc_id), and every hot read is a lookup by `_id`: the one
lookup FerretDB pushes down to SQLite, answered from an index (see doc_id). Writes are idempotent (upserts
or inserts of a fixed `_id`), so a replayed Spark batch rewrites, never duplicates.
Only features both FerretDB and MongoDB 7 support are used (no change streams, no transactions).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import cache
from typing import Any, TypeVar

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.database import Database

from lab.config import settings

STREAM_DOC = -1  # chunk_index of a stream's own document: it sorts before every chunk

VOD = "vod_metadata"
LIVE = "live_metadata"
LIVE_STATE = "live_state"  # the live query's own state: an insert-only version per stream per batch
STREAMS = "streams"        # stream id -> collection, since: what the stream lists read
PARALLEL_FROM = 32         # chunk_docs reads longer streams with parallel lookups
LOOKUP_THREADS = 8         # parallel `_id` lookups (see lookups)
LOOKUP_PREFIX = "catalog-lookup"
STREAMS_KEPT = 100         # entries of `streams` kept per collection: FerretDB decodes each one to list them (~35 µs)
WRITE_BATCH = 32           # update statements per command at most: see bulk_write
PROBE_ID = "health-probe"  # the `_id` the health probe looks up (it need not exist)

T = TypeVar("T")
R = TypeVar("R")


def now() -> datetime:
    return datetime.now(UTC)


@cache
def client() -> MongoClient:
    return MongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000, tz_aware=True, uuidRepresentation="standard")


@cache
def _probe_client() -> MongoClient:
    return MongoClient(settings.mongo_url, serverSelectionTimeoutMS=2000, socketTimeoutMS=3000,
                       connectTimeoutMS=2000)


def probe() -> None:
    """A health probe that answers only if the catalog can read: an `_id` lookup, with a 3 s timeout. A ping
    is not enough: FerretDB answers it without touching its SQLite connection pool, so a server whose pool
    is exhausted (see bulk_write) still answers pings while every read waits forever."""
    _probe_client()[settings.mongo_db][STREAMS].find_one({"_id": PROBE_ID})


def db() -> Database:
    return client()[settings.mongo_db]


def collection(name: str) -> Collection:
    return db()[name]


def index_specs() -> dict[str, list[dict[str, Any]]]:
    """The secondary indexes of each collection, as create_index arguments. MongoDB 7 answers the lists and
    lookups from them; FerretDB accepts them but filters in Go (see doc_id for what makes it fast there)."""
    natural = [{"keys": [("stream_id", ASCENDING), ("chunk_index", ASCENDING)], "unique": True,
                "name": "stream_chunk_unique"},
               {"keys": [("status", ASCENDING)], "name": "status"}]
    return {VOD: natural, LIVE: natural, LIVE_STATE: [],
            STREAMS: [{"keys": [("collection", ASCENDING), ("since", DESCENDING)], "name": "collection_since"}]}


def ensure_indexes() -> list[str]:
    """Create every collection and its indexes (idempotent): the tables exist before the first write. A new
    `streams` index is filled from the stream documents already there. Returns the collections it created."""
    existing = set(db().list_collection_names())
    created = [name for name in index_specs() if name not in existing]
    for name, specs in index_specs().items():
        if name in created:
            db().create_collection(name)
        for spec in specs:
            spec = dict(spec)
            collection(name).create_index(spec.pop("keys"), **spec)
    if STREAMS in created:
        backfill_streams_index()
    return created


def doc_id(stream_id: str, chunk_index: int) -> str:
    """A document's `_id`, derived from its natural key. Why: FerretDB v1.24's SQLite backend pushes a filter
    down to SQL only when it is an equality on `_id` alone (`internal/backends/sqlite/collection.go`, Query);
    any other filter (even `_id` plus one more field) reads and decodes every document of the collection in Go.
    The pushed-down query filters on `_ferretdb_sjson->'$._id'` (metadata.IDColumn), while FerretDB's own `_id_`
    index is on `_ferretdb_sjson->"_id"` (`metadata/registry.go`), an expression SQLite does not match to it
    (EXPLAIN QUERY PLAN: `SCAN`). The embedded stack adds an index on the exact expression at provisioning
    (lab/stack/ferretdb.py), and the plan becomes `SEARCH ... USING INDEX`: measured 44.6 ms -> 0.5 ms for a
    `find_one` by `_id` at 20k documents."""
    return f"{stream_id}/{chunk_index}"


def stream_doc_id(stream_id: str) -> str:
    return doc_id(stream_id, STREAM_DOC)


def find_by_id(name: str, _id: str, projection: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The one lookup FerretDB pushes down to SQLite (see doc_id)."""
    return collection(name).find_one({"_id": _id}, projection)


def upsert(name: str, stream_id: str, chunk_index: int, fields: dict[str, Any]) -> None:
    """Idempotent write keyed by (stream_id, chunk_index), through its `_id` (a new document takes it). A stream
    document also enters the `streams` index the stream lists read."""
    update = {"$set": fields, "$setOnInsert": {"stream_id": stream_id, "chunk_index": chunk_index}}
    collection(name).update_one({"_id": doc_id(stream_id, chunk_index)}, update, upsert=True)
    if chunk_index == STREAM_DOC:
        _index_stream(name, stream_id, now())


def _index_stream(name: str, stream_id: str, since: datetime) -> bool:
    """Enter a stream in the `streams` index (once); True if it was new."""
    entry = {"stream_id": stream_id, "collection": name, "since": since}
    return collection(STREAMS).update_one({"_id": stream_id}, {"$setOnInsert": entry}, upsert=True).upserted_id \
        is not None


def bulk_write(name: str, operations: Sequence[Any]) -> None:
    """An ordered bulk write, sent as commands of at most WRITE_BATCH statements, in order.

    Why not one command: FerretDB v1.24.2's `update` handler (internal/handler/msg_update.go) defers closing each
    statement's read iterator to the end of the whole command, and each open iterator holds one of the 100
    connections of its SQLite pool (metadata/pool/opendb.go) while the next statement's write transaction needs
    another. A command of 100 update statements therefore waits forever for a connection, and so does every
    later query on the server (measured: 99 statements 0.3 s, 100 never return). A VOD batch of many segments
    hit it. MongoDB has no such limit; the batching costs it nothing that matters."""
    for start in range(0, len(operations), WRITE_BATCH):
        collection(name).bulk_write(list(operations[start:start + WRITE_BATCH]), ordered=True)


def stream_doc(name: str, stream_id: str) -> dict[str, Any] | None:
    return find_by_id(name, stream_doc_id(stream_id), {"_id": 0})


def _last_chunk(doc: dict[str, Any] | None) -> int | None:
    """The highest chunk index a stream document says exists: VOD knows its total, live its latest chunk."""
    if doc is None:
        return None
    if isinstance(doc.get("total_chunks"), int):
        return doc["total_chunks"] - 1
    if isinstance(doc.get("latest_chunk"), int):
        return doc["latest_chunk"]
    return None


@cache
def _lookup_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix=LOOKUP_PREFIX)


def lookups(read: Callable[[T], R], keys: Iterable[T]) -> list[R]:
    """`read` over `keys` in parallel on one shared pool (`_id` lookups: each an index search in SQLite, so
    they overlap well). Inline when called from that pool: waiting on it from inside could deadlock."""
    if threading.current_thread().name.startswith(LOOKUP_PREFIX):
        return [read(k) for k in keys]
    return list(_lookup_pool().map(read, keys))


def chunk_docs(name: str, stream_id: str, **filters: Any) -> list[dict[str, Any]]:
    """A stream's chunk documents in order, read by `_id` (cost grows with the stream, not the catalog). A
    stream document that names no bound (an old one) falls back to a filter, a scan on FerretDB."""
    doc = stream_doc(name, stream_id)
    if doc is None:
        return []  # every stream's chunks come after its stream document
    last = _last_chunk(doc)
    if last is None:
        query = {"stream_id": stream_id, "chunk_index": {"$gte": 0}, **filters}
        return list(collection(name).find(query, {"_id": 0}).sort("chunk_index", ASCENDING))
    def read(i: int) -> dict[str, Any] | None:
        return find_by_id(name, doc_id(stream_id, i), {"_id": 0})

    if last < PARALLEL_FROM:
        docs = [read(i) for i in range(last + 1)]
    else:  # a long live recording: lookups in parallel (each is an index search in SQLite)
        docs = lookups(read, range(last + 1))
    while (following := find_by_id(name, doc_id(stream_id, last + 1), {"_id": 0})) is not None:
        docs.append(following)  # the stream document's bound lags its newest chunks by a batch at most
        last += 1
    return [d for d in docs if d is not None and all(d.get(k) == v for k, v in filters.items())]


def recent_streams(name: str, limit: int = 20, projection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The newest streams of a collection, newest first: their stream documents, read by `_id` from the
    bounded `streams` index (the cost does not grow with the chunk documents)."""
    entries = list(collection(STREAMS).find({"collection": name}))
    entries.sort(key=lambda e: e["since"], reverse=True)
    docs = lookups(lambda e: stream_doc(name, e["_id"]), entries[:limit])
    fields = {k for k, v in (projection or {}).items() if v and k != "_id"}
    return [{k: v for k, v in d.items() if not fields or k in fields} for d in docs if d is not None]


def prune_streams_index(keep: int = STREAMS_KEPT) -> int:
    """Keep the `streams` index bounded: the newest `keep` entries per collection (deleted by `_id`, which
    FerretDB pushes down). Returns how many entries it removed."""
    removed = 0
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for entry in collection(STREAMS).find({}, {"collection": 1, "since": 1}):
        by_collection.setdefault(entry.get("collection", ""), []).append(entry)
    for entries in by_collection.values():
        entries.sort(key=lambda e: e["since"], reverse=True)
        for old in entries[keep:]:
            removed += collection(STREAMS).delete_one({"_id": old["_id"]}).deleted_count
    return removed


def backfill_streams_index() -> int:
    """Stream documents written before the `streams` index existed enter it (one scan, at provisioning)."""
    added = 0
    for name in (VOD, LIVE):
        for doc in collection(name).find({"chunk_index": STREAM_DOC}, {"stream_id": 1, "created_at": 1,
                                                                       "started_at": 1}):
            added += _index_stream(name, doc["stream_id"], doc.get("created_at") or doc.get("started_at") or now())
    return added
