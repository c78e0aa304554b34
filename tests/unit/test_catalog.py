"""The catalog's index specs (what MongoDB 7 answers from) and the SQLite index FerretDB's `_id` lookups need.

`explain()` of the hot queries on MongoDB 7 would need a real mongod, which this machine's registries do not
offer (the container stack runs one; no engine here): the specs are checked as data instead.
"""

from __future__ import annotations

import json
import sqlite3

from lab import catalog
from lab.stack import ferretdb


def test_index_specs_cover_every_hot_query():
    specs = catalog.index_specs()
    for name in (catalog.VOD, catalog.LIVE):
        natural = next(s for s in specs[name] if s["name"] == "stream_chunk_unique")
        assert natural["keys"] == [("stream_id", 1), ("chunk_index", 1)] and natural["unique"]
        assert {"keys": [("status", 1)], "name": "status"} in specs[name]
    assert specs[catalog.STREAMS] == [{"keys": [("collection", 1), ("since", -1)], "name": "collection_since"}]
    assert set(specs) == {catalog.VOD, catalog.LIVE, catalog.LIVE_STATE, catalog.STREAMS}


def test_a_stream_document_bounds_its_chunks():
    assert catalog._last_chunk({"total_chunks": 6}) == 5           # VOD: every segment exists from ingest
    assert catalog._last_chunk({"latest_chunk": 41}) == 41         # live: the newest chunk seen
    assert catalog._last_chunk({"status": "live"}) is None         # an old document: the filter fallback
    assert catalog._last_chunk(None) is None


def _ferretdb_like_file(path, rows: int = 2000):
    """A database laid out as FerretDB v1.24.2 lays it out: its metadata table, a collection's table with its
    own `_id_` index on `_ferretdb_sjson->"_id"` (registry.go quotes the field as an identifier)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE _ferretdb_collections (name TEXT, table_name TEXT, settings TEXT)")
    con.execute("INSERT INTO _ferretdb_collections VALUES ('live_metadata', 'live_metadata_9456e6b5', '{}')")
    con.execute("CREATE TABLE live_metadata_9456e6b5 (_ferretdb_sjson TEXT NOT NULL "
                "CHECK(_ferretdb_sjson != '')) STRICT")
    con.execute('CREATE UNIQUE INDEX "live_metadata_9456e6b5__id_" ON live_metadata_9456e6b5 (_ferretdb_sjson->"_id")')
    con.executemany("INSERT INTO live_metadata_9456e6b5 VALUES (?)",
                    [(json.dumps({"_id": f"live-x/{i}", "stream_id": "live-x", "chunk_index": i}),)
                     for i in range(rows)])
    con.commit()
    con.close()


def test_ferretdb_id_query_scans_until_the_lab_adds_the_exact_expression_index(tmp_path):
    db = tmp_path / "pipeline.sqlite"
    _ferretdb_like_file(db)
    table = ferretdb.table_of("live_metadata", db)
    assert ferretdb.query_plan(table, db).startswith("SCAN")  # FerretDB's own _id_ index is not used
    assert ferretdb.index_id_lookups(db) == [table]
    assert ferretdb.query_plan(table, db).startswith(f"SEARCH {table} USING INDEX {table}_id_lookup")
    assert ferretdb.index_id_lookups(db) == []  # idempotent
    con = sqlite3.connect(db)
    found = con.execute(f"SELECT _ferretdb_sjson FROM {table} WHERE {ferretdb.ID_EXPRESSION} = ?",
                        (json.dumps("live-x/1999"),)).fetchall()
    assert [json.loads(r[0])["chunk_index"] for r in found] == [1999]
    ferretdb.drop_id_lookups(db)
    assert ferretdb.query_plan(table, db).startswith("SCAN")


def test_bench_filler_is_deleted_by_stream_prefix_only(tmp_path):
    db = tmp_path / "pipeline.sqlite"
    _ferretdb_like_file(db, rows=10)
    con = sqlite3.connect(db)
    con.execute("INSERT INTO live_metadata_9456e6b5 VALUES (?)",
                (json.dumps({"_id": "live-benchfill-a/0", "stream_id": "live-benchfill-a", "chunk_index": 0}),))
    con.commit()
    con.close()
    assert ferretdb.delete_streams("live_metadata", "live-benchfill-%", db) == 1
    assert ferretdb.delete_streams("live_metadata", "live-benchfill-%", db) == 0


def test_bulk_write_sends_every_operation_in_order_in_commands_of_at_most_write_batch(monkeypatch):
    sent: list[list[int]] = []

    class Collection:
        def bulk_write(self, ops, ordered):
            assert ordered
            sent.append(list(ops))

    monkeypatch.setattr(catalog, "collection", lambda name: Collection())
    catalog.bulk_write("vod_metadata", list(range(2 * catalog.WRITE_BATCH + 5)))
    assert [len(c) for c in sent] == [catalog.WRITE_BATCH, catalog.WRITE_BATCH, 5]
    assert [op for c in sent for op in c] == list(range(2 * catalog.WRITE_BATCH + 5))
    assert catalog.WRITE_BATCH < 50  # FerretDB's pool of 100 connections, shared with other clients' commands


def test_document_count_reads_sqlite_not_the_documents(tmp_path):
    db = tmp_path / "pipeline.sqlite"
    _ferretdb_like_file(db, rows=37)
    assert ferretdb.count_documents("live_metadata", db) == 37
    assert ferretdb.count_documents("no_such_collection", db) == 0
