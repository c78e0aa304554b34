"""Catalog browser: a stream's own document (status, history, live view) and its chunk documents.

Both collections key documents by (stream_id, chunk_index); the stream's own document has chunk_index -1.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import ipywidgets as widgets
import pandas as pd

from lab import catalog
from lab.widgets._base import LabWidget, esc, fmt_time, html_table, muted_html, nullable_ints

VOD_COLUMNS = ["chunk_index", "status", "duration_ms", "size_bytes", "rungs", "executor", "encode_seconds",
               "batch_id", "failure_reason"]
LIVE_COLUMNS = ["chunk_index", "in_playlist", "playlist_seq", "checksum_ok", "gap_before", "reason",
                "kafka_partition", "kafka_offset", "batch_id", "processing_latency_ms"]
INT_COLUMNS = ["chunk_index", "duration_ms", "size_bytes", "batch_id", "playlist_seq", "gap_before",
               "kafka_partition", "kafka_offset"]


def collection_for(stream_id: str) -> str:
    if stream_id.startswith("vod-"):
        return catalog.VOD
    if stream_id.startswith("live-"):
        return catalog.LIVE
    raise ValueError(f"stream_id: {stream_id!r} is neither vod-… nor live-…")


def streams_frame(collection: str, limit: int = 20) -> pd.DataFrame:
    """The newest stream documents of a collection (one row per stream)."""
    fields = {"stream_id": 1, "title": 1, "status": 1, "created_at": 1, "started_at": 1,
              "total_chunks": 1, "verified_chunks": 1}
    # From the bounded `streams` index, never a query over every chunk document (69 s at 100k documents).
    docs = catalog.recent_streams(collection, limit, fields)
    for d in docs:
        d["since"] = d.pop("created_at", None) or d.pop("started_at", None)
        d.pop("started_at", None)
    frame = pd.DataFrame(docs, columns=["stream_id", "title", "status", "since", "total_chunks", "verified_chunks"])
    frame = frame.dropna(axis=1, how="all")
    if "since" in frame:
        frame = frame.sort_values("since", ascending=False, na_position="last")
    return frame.head(limit).reset_index(drop=True)


def stream_document(stream_id: str) -> dict[str, Any] | None:
    return catalog.stream_doc(collection_for(stream_id), stream_id)


def chunks_frame(stream_id: str, limit: int | None = None) -> pd.DataFrame:
    """A stream's chunk documents as a table (the main fields; `limit` keeps the newest)."""
    vod = collection_for(stream_id) == catalog.VOD
    docs = catalog.chunk_docs(collection_for(stream_id), stream_id)
    columns = VOD_COLUMNS if vod else LIVE_COLUMNS
    rows = []
    for d in docs:
        row = {c: d.get(c) for c in columns}
        if vod:
            row["rungs"] = ", ".join(sorted(d.get("variants") or {}, key=lambda r: -int(r[:-1])))
        rows.append(row)
    frame = nullable_ints(pd.DataFrame(rows, columns=columns), INT_COLUMNS)
    return frame.tail(limit).reset_index(drop=True) if limit else frame


def history_text(doc: dict[str, Any]) -> str:
    """`uploaded 07:03:14.481 → processing 07:03:23.726 (+9.2 s) → …`"""
    parts, previous = [], None
    for entry in doc.get("status_history") or []:
        at = entry.get("at")
        step = f"{entry.get('status')} {fmt_time(at)}"
        if isinstance(at, datetime) and isinstance(previous, datetime):
            step += f" (+{(at - previous).total_seconds():.1f} s)"
        parts.append(step)
        previous = at
    return " → ".join(parts)


def document_html(doc: dict[str, Any]) -> str:
    """Field and value per row; a nested document (per-segment results, renditions) folds into a
    click-to-open JSON block, so the table stays readable."""
    rows = []
    for key, value in doc.items():
        if key == "status_history":
            value = esc(history_text(doc))
        elif isinstance(value, datetime):
            value = esc(fmt_time(value) + " UTC")
        elif isinstance(value, dict) and any(isinstance(v, (dict, list)) for v in value.values()):
            pretty = json.dumps(value, indent=1, default=str)
            value = f"<details><summary>{len(value)} entries</summary><pre>{esc(pretty)}</pre></details>"
        elif isinstance(value, dict):
            value = esc(", ".join(f"{k}={v}" for k, v in value.items()))
        else:
            value = esc(value)
        rows.append((key, value))
    return html_table(["field", "value"], rows, raw=(1,))


class CatalogBrowser(LabWidget):
    """A stream's document and its chunks; without a stream id, pick one of the newest streams."""

    title = "Catalog"

    def __init__(self, stream_id: str | None = None, *, collection: str = catalog.VOD, chunks: int = 30,
                 interval: float = 3.0, auto: bool = False):
        self.collection_select = widgets.Dropdown(options=[catalog.VOD, catalog.LIVE],
                                                  value=collection_for(stream_id) if stream_id else collection,
                                                  description="collection", layout=widgets.Layout(width="240px"))
        self.stream_select = widgets.Dropdown(options=[stream_id] if stream_id else [], value=stream_id,
                                              description="stream", layout=widgets.Layout(width="280px"))
        self.max_chunks = chunks
        self.document: dict[str, Any] | None = None
        self.chunks = pd.DataFrame()
        super().__init__(controls=[self.collection_select, self.stream_select], interval=interval, auto=auto)
        self.collection_select.observe(self._collection_changed, names="value")
        self.on_change(self.stream_select)

    def _collection_changed(self, _: dict) -> None:
        with self.quiet_controls():
            self.stream_select.value = None
        self.refresh()

    def render(self) -> str:
        streams = streams_frame(self.collection_select.value)
        ids = list(streams["stream_id"]) if "stream_id" in streams else []
        chosen = self.stream_select.value
        if chosen and chosen not in ids:
            ids.insert(0, chosen)
        self.set_options(self.stream_select, ids, chosen)  # keeps the shown stream selected; no re-render
        if not chosen:
            rows = [tuple(r) for r in streams.astype(object).where(streams.notna(), "").itertuples(index=False)]
            listing = html_table(list(streams.columns), rows) if rows else muted_html("no streams yet")
            return f"<p>newest streams in <code>{esc(self.collection_select.value)}</code> (pick one)</p>{listing}"
        self.document = stream_document(chosen)
        if self.document is None:
            return muted_html(f"{chosen}: no stream document")
        self.chunks = chunks_frame(chosen)
        shown = self.chunks.tail(self.max_chunks)
        rows = [tuple("" if (v is pd.NA or (isinstance(v, float) and pd.isna(v))) else v for v in r)
                for r in shown.astype(object).itertuples(index=False)]
        more = f" (newest {len(shown)} of {len(self.chunks)})" if len(self.chunks) > len(shown) else ""
        return (f"<p><b>stream document</b> <code>{esc(chosen)}</code></p>{document_html(self.document)}"
                f"<p><b>chunk documents</b>{more}</p>"
                + (html_table(list(shown.columns), rows) if rows else muted_html("no chunks yet")))
