"""The embedded catalog's SQLite file: the one index FerretDB v1.24 needs and does not make.

FerretDB pushes an `_id` equality down as `WHERE _ferretdb_sjson->'$._id' = ?` (metadata.IDColumn), but builds
its `_id_` index on `_ferretdb_sjson->"_id"` (registry.go's indexesCreate quotes each field as an identifier,
which SQLite then reads as the string '_id'): a different expression, so SQLite scans (EXPLAIN QUERY PLAN:
`SCAN <table>`). An index on the exact expression turns it into `SEARCH <table> USING INDEX`. FerretDB lists
and drops only the indexes in its own metadata, so this one is invisible to clients and goes with its table.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from lab.config import settings
from lab.stack.supervisor import data_dir

log = logging.getLogger(__name__)

ID_EXPRESSION = "_ferretdb_sjson->'$._id'"  # FerretDB v1.24.2 internal/backends/sqlite/metadata: IDColumn
METADATA_TABLE = "_ferretdb_collections"


def database_file() -> Path:
    return data_dir("catalog") / f"{settings.mongo_db}.sqlite"


def index_every_database() -> list[str]:
    """index_id_lookups on every database file of the embedded catalog (one file per database)."""
    return [table for path in sorted(data_dir("catalog").glob("*.sqlite")) for table in index_id_lookups(path)]


def index_id_lookups(path: Path | None = None) -> list[str]:
    """Add the `_id` lookup index to every collection's table that lacks it; returns the tables indexed now."""
    path = path or database_file()
    if not path.exists():
        return []
    con = sqlite3.connect(path, timeout=30)
    try:
        tables = [row[0] for row in con.execute(f"SELECT table_name FROM {METADATA_TABLE}")]
        have = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        added = []
        for table in tables:
            name = f"{table}_id_lookup"
            if name not in have:
                con.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ({ID_EXPRESSION})')
                added.append(table)
        con.commit()
        return added
    except sqlite3.Error as exc:  # e.g. a Python SQLite older than 3.38 (no `->`): slower, never broken
        log.warning("catalog: could not add the _id lookup index to %s (%s); `_id` reads scan", path, exc)
        return []
    finally:
        con.close()


def query_plan(table: str, path: Path | None = None) -> str:
    """SQLite's plan for FerretDB's pushed-down `_id` query on a table (SEARCH ... USING INDEX, or SCAN)."""
    con = sqlite3.connect(path or database_file(), timeout=30)
    try:
        rows = con.execute(f'EXPLAIN QUERY PLAN SELECT _ferretdb_sjson FROM "{table}" WHERE {ID_EXPRESSION} = ?',
                           ('"x"',)).fetchall()
        return "; ".join(row[-1] for row in rows)
    finally:
        con.close()


def table_of(collection: str, path: Path | None = None) -> str | None:
    con = sqlite3.connect(path or database_file(), timeout=30)
    try:
        row = con.execute(f"SELECT table_name FROM {METADATA_TABLE} WHERE name = ?", (collection,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def count_documents(collection: str, path: Path | None = None) -> int:
    """A collection's size from SQLite's own count. FerretDB v1.24.2 answers `count` (and so pymongo's
    estimated_document_count) by decoding every document (internal/handler/msg_count.go: a CountIterator
    over a full query): seconds per call at 100k documents."""
    table = table_of(collection, path)
    if table is None:
        return 0
    con = sqlite3.connect(f"file:{path or database_file()}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    finally:
        con.close()


def drop_id_lookups(path: Path | None = None) -> None:
    """Remove the added indexes (for `lab bench catalog --without-index`: FerretDB's own behaviour)."""
    con = sqlite3.connect(path or database_file(), timeout=30)
    try:
        names = con.execute("SELECT name FROM sqlite_master WHERE name LIKE '%_id_lookup'").fetchall()
        for (name,) in names:
            con.execute(f'DROP INDEX IF EXISTS "{name}"')
        con.commit()
    finally:
        con.close()


def delete_streams(collection: str, stream_id_like: str, path: Path | None = None) -> int:
    """Delete a collection's documents whose stream_id matches a SQL LIKE pattern, in SQLite directly: FerretDB
    deletes a filter's matches with one `IN (...)` of their ids, refused past SQLite's 32766 variables ("too many
    SQL variables"). For the benches' filler only. Returns the rows deleted."""
    table = table_of(collection, path)
    if table is None:
        return 0
    con = sqlite3.connect(path or database_file(), timeout=60)
    try:
        cur = con.execute(f"""DELETE FROM "{table}" WHERE _ferretdb_sjson->>'$.stream_id' LIKE ?""",
                          (stream_id_like,))
        con.commit()
        return cur.rowcount
    finally:
        con.close()
