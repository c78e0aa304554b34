"""`lab bench catalog --docs N`: do the hot catalog reads stay flat as the catalog grows?

It times the reads behind GET /vod/{id}/manifest and /metadata, GET /streams/{id}/live, the widgets' stream
lists and `lab status`, on the catalog as it is, then again after inserting N filler documents (live chunks,
live state versions and VOD segments, shaped like the pipeline's), and prints both with their ratio. The filler
is removed at the end unless --keep. With --without-index it first drops the SQLite `_id` index the embedded
stack adds (lab/stack/ferretdb.py), to show what FerretDB does without it, and puts it back at the end.
The control row (a ping) reads no data: its ratio is the machine's load drift between the two phases.
Figures only, never pass/fail.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid
from collections.abc import Callable

from lab import catalog

FILL_PREFIX = "benchfill"
CHUNKS_PER_STREAM = 1000


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _median_ms(read: Callable[[], object], repeat: int, budget_s: float = 3.0) -> float:
    """Median of `repeat` reads, fewer (at least 3) once they have taken `budget_s`."""
    times: list[float] = []
    while len(times) < repeat and (len(times) < 3 or sum(times) < budget_s * 1000):
        began = time.perf_counter()
        read()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _probe_streams() -> tuple[str, str]:
    """A VOD stream with 6 segments and a live stream with 60 chunks, written as the pipeline writes them."""
    for kind, name in (("vod", catalog.VOD), ("live", catalog.LIVE)):  # full stream lists in both phases
        for _ in range(20):
            catalog.upsert(name, f"{kind}-benchprobe-{uuid.uuid4().hex[:8]}", catalog.STREAM_DOC,
                           {"status": "ended", "title": "bench list", "created_at": catalog.now()})
    vod, live = f"vod-benchprobe-{uuid.uuid4().hex[:8]}", f"live-benchprobe-{uuid.uuid4().hex[:8]}"
    catalog.upsert(catalog.VOD, vod, catalog.STREAM_DOC, {"status": "ready", "title": "bench", "total_chunks": 6,
                                                          "created_at": catalog.now()})
    catalog.collection(catalog.VOD).insert_many([_vod_segment(vod, i) for i in range(6)])
    catalog.upsert(catalog.LIVE, live, catalog.STREAM_DOC, {"status": "live", "title": "bench", "latest_chunk": 59,
                                                            "started_at": catalog.now()})
    catalog.collection(catalog.LIVE).insert_many([_live_chunk(live, i) for i in range(60)])
    return vod, live


def _vod_segment(stream_id: str, i: int) -> dict:
    return {"_id": catalog.doc_id(stream_id, i), "stream_id": stream_id, "chunk_index": i, "status": "transcoded",
            "raw_sha256": "a" * 64, "duration_ms": 4000, "size_bytes": 1_000_000,
            "variants": {r: {"key": f"{stream_id}/{r}/{i}.ts", "sha256": "b" * 64, "size_bytes": 250_000}
                         for r in ("1080p", "720p", "480p", "360p")}}


def _live_chunk(stream_id: str, i: int) -> dict:
    return {"_id": catalog.doc_id(stream_id, i), "stream_id": stream_id, "chunk_index": i, "in_playlist": True,
            "playlist_seq": i, "checksum_ok": True, "gap_before": 0, "kafka_partition": i % 6, "kafka_offset": i,
            "sha256": "c" * 64, "size_bytes": 400_000, "batch_id": i, "processing_latency_ms": 180,
            "recorded_at": catalog.now()}


def _reads(vod: str, live: str) -> dict[str, Callable[[], object]]:
    from lab import stack

    return {
        "GET /vod/{id}/manifest (stream doc)": lambda: catalog.stream_doc(catalog.VOD, vod),
        "GET /vod/{id}/metadata (doc + segments)": lambda: catalog.chunk_docs(catalog.VOD, vod),
        "GET /streams/{id}/live (stream doc)": lambda: catalog.stream_doc(catalog.LIVE, live),
        "stream list, VOD (newest 20)": lambda: catalog.recent_streams(catalog.VOD, 20),
        "stream list, live (newest 20)": lambda: catalog.recent_streams(catalog.LIVE, 20),
        "stream list by filter (widgets' query today)":
            lambda: list(catalog.collection(catalog.LIVE).find({"chunk_index": catalog.STREAM_DOC}, {"_id": 0})),
        "lab status": stack.status,
        "catalog ping (control: reads no data)": lambda: catalog.client().admin.command("ping"),
    }


def document_count(name: str) -> int:
    """O(1) on MongoDB; on the embedded FerretDB, SQLite's count (its own `count` decodes every document)."""
    from lab.config import settings
    from lab.stack import ferretdb

    if settings.lab_mode == "embedded" and not settings.mongo_uri:
        return ferretdb.count_documents(name)
    return catalog.collection(name).estimated_document_count()


def fill(docs: int, report: Callable[[str], None] = _print) -> None:
    """Insert `docs` filler documents: 70 % live chunks (1000 per stream, with its stream doc), 20 % live state
    versions, 10 % VOD segments."""
    run = uuid.uuid4().hex[:6]
    plan = [(catalog.LIVE, int(docs * 0.7)), (catalog.LIVE_STATE, int(docs * 0.2)), (catalog.VOD, docs // 10)]
    for name, count in plan:
        batch: list[dict] = []
        for n in range(count):
            stream = f"{'vod' if name == catalog.VOD else 'live'}-{FILL_PREFIX}-{run}-{n // CHUNKS_PER_STREAM}"
            index = n % CHUNKS_PER_STREAM
            if index == 0 and name != catalog.LIVE_STATE:
                catalog.upsert(name, stream, catalog.STREAM_DOC, {"status": "ended", "title": "filler",
                                                                  "created_at": catalog.now()})
            doc = _vod_segment(stream, index) if name == catalog.VOD else _live_chunk(stream, index)
            if name == catalog.LIVE_STATE:
                doc = {"_id": f"{stream}/v{index}", "stream_id": stream, "version": index, "last_sequence": index}
            batch.append(doc)
            if len(batch) == 1000:
                catalog.collection(name).insert_many(batch)
                batch = []
        if batch:
            catalog.collection(name).insert_many(batch)
        report(f"  inserted {count} filler documents into {name}")


def remove_filler() -> None:
    """In SQLite directly on the embedded catalog (see ferretdb.delete_streams); through the driver elsewhere."""
    from lab.config import settings
    from lab.stack import ferretdb

    pattern = f"^(vod|live)-({FILL_PREFIX}|benchprobe)-"
    catalog.collection(catalog.STREAMS).delete_many({"_id": {"$regex": pattern}})  # ~100 entries
    for name in (catalog.LIVE, catalog.LIVE_STATE, catalog.VOD):
        for prefix in (FILL_PREFIX, "benchprobe"):
            for kind in ("vod", "live"):
                if settings.lab_mode == "embedded" and not settings.mongo_uri:
                    ferretdb.delete_streams(name, f"{kind}-{prefix}-%")
                else:
                    catalog.collection(name).delete_many({"stream_id": {"$regex": f"^{kind}-{prefix}-"}})


def run(docs: int = 100_000, repeat: int = 100, keep: bool = False, without_index: bool = False,
        report: Callable[[str], None] = _print) -> dict[str, tuple[float, float]]:
    """Returns read name -> (ms on the catalog as it was, ms with `docs` more documents)."""
    from lab.stack import ferretdb

    if without_index:
        ferretdb.drop_id_lookups()
        report("dropped the SQLite _id index (FerretDB's own behaviour)")
    try:
        before = {name: _median_ms(read, repeat) for name, read in _reads(*_probe_streams()).items()}
        report(f"filling the catalog with {docs} documents ...")
        fill(docs, report)
        # new streams, written after the filler: the newest rows, the last a scan would reach
        after = {name: _median_ms(read, repeat) for name, read in _reads(*_probe_streams()).items()}
    finally:
        if not keep:
            remove_filler()
        if without_index:
            ferretdb.index_every_database()
    width = max(len(n) for n in before)
    report(f"\n{'read'.ljust(width)}  {'fresh ms':>9}  {f'+{docs} docs ms':>14}  ratio")
    for name in before:
        report(f"{name.ljust(width)}  {before[name]:9.2f}  {after[name]:14.2f}  {after[name] / before[name]:5.2f}")
    total = sum(document_count(c) for c in (catalog.VOD, catalog.LIVE))
    report(f"(median of {repeat} reads each; VOD and live documents in the catalog now: {total})")
    return {name: (before[name], after[name]) for name in before}
