"""Bucket browser: keys, sizes, Cache-Control and checksum of the objects under a prefix, each with a
presigned link (the buckets are private: an unsigned URL is refused)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets
import pandas as pd

from lab import storage
from lab.config import settings
from lab.widgets._base import LabWidget, esc, fmt_bytes, fmt_time, html_table, muted_html


def object_frame(bucket: str, prefix: str = "", limit: int = 50, *, head: bool = True,
                 link_ttl_s: int = 900) -> pd.DataFrame:
    """Objects under `prefix` (first `limit` in key order, numbers in natural order): key, size, modified,
    and with `head` their Cache-Control, Content-Type and sha256 metadata, plus a presigned GET URL."""
    listed: list[dict[str, Any]] = []
    for page in storage.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        listed.extend(page.get("Contents", []))
    listed.sort(key=lambda o: _natural(o["Key"]))
    rows = []
    for obj in listed[:limit]:
        row: dict[str, Any] = {"key": obj["Key"], "size": obj["Size"], "modified": obj["LastModified"]}
        if head:
            meta = storage.s3().head_object(Bucket=bucket, Key=obj["Key"])
            row.update(cache_control=meta.get("CacheControl"), content_type=meta.get("ContentType"),
                       sha256=(meta.get("Metadata") or {}).get("sha256"))
        row["url"] = storage.presigned_get(bucket, obj["Key"], link_ttl_s)
        rows.append(row)
    return pd.DataFrame(rows)


def _natural(key: str) -> list[Any]:
    """`…/10.ts` after `…/9.ts`."""
    import re

    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


class BucketBrowser(LabWidget):
    """Pick a bucket and a prefix (usually a stream id followed by `/`)."""

    title = "Buckets"

    def __init__(self, bucket: str | None = None, prefix: str = "", *, limit: int = 40, interval: float = 5.0,
                 auto: bool = False):
        self.bucket_select = widgets.Dropdown(options=settings.buckets, value=bucket or settings.buckets[0],
                                              description="bucket", layout=widgets.Layout(width="240px"))
        self.prefix_text = widgets.Text(value=prefix, description="prefix", placeholder="stream_id/",
                                        layout=widgets.Layout(width="300px"), continuous_update=False)
        self.limit = limit
        self.objects = pd.DataFrame()
        super().__init__(controls=[self.bucket_select, self.prefix_text], interval=interval, auto=auto)
        self.on_change(self.bucket_select)
        self.on_change(self.prefix_text)

    def render(self) -> str:
        bucket, prefix = self.bucket_select.value, self.prefix_text.value
        frame = object_frame(bucket, prefix, self.limit)
        self.objects = frame
        if frame.empty:
            return muted_html(f"no objects in {bucket}/{prefix}")
        rows = [(esc(r.key), fmt_bytes(r.size), esc(fmt_time(r.modified)), esc(r.cache_control),
                 esc(r.content_type), esc((r.sha256 or "")[:12] + ("…" if r.sha256 else "")),
                 f'<a href="{esc(r.url)}" target="_blank">open</a>') for r in frame.itertuples()]
        total = int(frame["size"].sum())
        return (f"<p>{len(frame)} object(s) in <code>{esc(bucket)}/{esc(prefix)}</code>, {fmt_bytes(total)}"
                f"{' (first ' + str(self.limit) + ')' if len(frame) >= self.limit else ''}</p>"
                + html_table(["key", "size", "modified (UTC)", "Cache-Control", "Content-Type", "sha256",
                              "presigned"], rows, raw=(0, 2, 3, 4, 5, 6), numeric=(1,)))
