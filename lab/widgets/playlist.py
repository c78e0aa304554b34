"""Playlist viewer: the stored playlist of a stream, refreshed, with its DVR window and media sequence
highlighted, and (live streams) a strip of every chunk: in the window, slid out, missing, or kept out.

It reads the canonical playlist in the `manifests` bucket (URIs relative, no signatures): what the Spark job
wrote. Players get the same text with every URI signed by the API.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import m3u8

from lab import catalog, storage
from lab.config import settings
from lab.widgets._base import LabWidget, esc, html_table, muted_html

STRIP_MAX = 60
_INDEX = re.compile(r"(\d+)\.ts$")
COLORS = {"window": "#2e7d32", "new": "#66bb6a", "recorded": "#c8e6c9", "kept_out": "#ef6c00", "gap": "#c62828",
          "pending": "#eeeeee"}


@dataclass(frozen=True)
class Version:
    """One distinct version of the playlist the viewer saw."""

    seen_at: datetime
    media_sequence: int
    first_chunk: int | None
    last_chunk: int | None
    entries: int
    ended: bool
    chunks: tuple[int, ...]


def default_name(stream_id: str) -> str:
    return storage.LIVE_PLAYLIST_NAME if stream_id.startswith("live-") else storage.VOD_MASTER


def chunk_of(uri: str) -> int | None:
    match = _INDEX.search(posixpath.basename(uri.split("?")[0]))
    return int(match.group(1)) if match else None


def read_playlist(stream_id: str, name: str | None = None) -> str | None:
    return storage.get_text(settings.bucket_manifests, f"{stream_id}/{name or default_name(stream_id)}")


def window_of(text: str) -> Version:
    playlist = m3u8.loads(text)
    chunks = tuple(c for c in (chunk_of(s.uri) for s in playlist.segments) if c is not None)
    return Version(datetime.now(), int(playlist.media_sequence or 0), chunks[0] if chunks else None,
                   chunks[-1] if chunks else None, len(playlist.segments), bool(playlist.is_endlist), chunks)


class PlaylistViewer(LabWidget):
    """Refreshes every `interval` s while live; stops by itself once the playlist has #EXT-X-ENDLIST."""

    title = "Playlist"

    def __init__(self, stream_id: str, name: str | None = None, *, interval: float = 1.0, auto: bool = True,
                 chunk_strip: bool = True, stop_when_ended: bool = True):
        self.stream_id = stream_id
        self.name = name or default_name(stream_id)
        self.chunk_strip = chunk_strip and stream_id.startswith("live-")
        self.stop_when_ended = stop_when_ended
        self.versions: list[Version] = []
        self.text: str | None = None
        self._known: dict[int, dict[str, Any]] = {}
        self.title = f"Playlist {self.name}"
        super().__init__(interval=interval, auto=auto)

    # --- what the viewer learned -----------------------------------------------------------------
    @property
    def latest(self) -> Version | None:
        return self.versions[-1] if self.versions else None

    @property
    def ended(self) -> bool:
        return bool(self.latest and self.latest.ended)

    def on_tick(self) -> None:
        if self.stop_when_ended and self.ended:
            self.stop()

    # --- rendering -------------------------------------------------------------------------------
    def render(self) -> str:
        text = read_playlist(self.stream_id, self.name)
        if text is None:
            return muted_html(f"{settings.bucket_manifests}/{self.stream_id}/{self.name}: not written yet")
        previous = self.latest
        if text != self.text:
            self.text = text
            self.versions.append(window_of(text))
        playlist = m3u8.loads(text)
        if playlist.is_variant:
            return self._master(playlist, text)
        current = self.latest
        assert current is not None
        new = set(current.chunks) - set(previous.chunks if previous else ())
        summary = self._summary(current, previous)
        strip = self._strip(current, new) if self.chunk_strip else ""
        return summary + strip + self._text_html(text, new) + self._history()

    def _summary(self, current: Version, previous: Version | None) -> str:
        if current.entries == 0:
            window = "no segments yet"
        else:
            window = f"{current.entries} segment(s): chunks {current.first_chunk}–{current.last_chunk}"
        ending = (f"the stream ended; its recording is a playlist of its own, {esc(storage.RECORDING_NAME)}"
                  if self.name == storage.LIVE_PLAYLIST_NAME else "complete")
        state = (f"<b style='color:#2e7d32'>#EXT-X-ENDLIST: {ending}</b>" if current.ended
                 else "live: the window slides as chunks arrive")
        slid = ""
        if previous and previous is not current:
            gone = sorted(set(previous.chunks) - set(current.chunks))
            if gone:
                slid = f" · slid out at the last change: chunk(s) {', '.join(map(str, gone))}"
        return (f"<p><code>{esc(self.stream_id)}/{esc(self.name)}</code> · "
                f"<span style='background:#fff59d'>MEDIA-SEQUENCE {current.media_sequence}</span> · {window} · "
                f"{state}{slid}</p>")

    def _chunk_docs(self, current: Version) -> tuple[dict[int, dict[str, Any]], int]:
        """The chunk documents of the strip's range, and the highest chunk index known. Looked up by `_id`
        only (`catalog.doc_id`): FerretDB answers any other filter by scanning the whole collection, which
        takes seconds once a stack has run for a while. Chunk documents are insert-only, so one found is
        kept and never asked for again."""
        coll = catalog.collection(catalog.LIVE)
        stream = coll.find_one({"_id": catalog.stream_doc_id(self.stream_id)}, {"latest_chunk": 1})
        latest = (stream or {}).get("latest_chunk")
        top = max([*self._known, *current.chunks, latest if isinstance(latest, int) else -1, -1])
        for index in range(max(0, top + 1 - STRIP_MAX), top + 1):
            if index not in self._known:
                doc = coll.find_one({"_id": catalog.doc_id(self.stream_id, index)},
                                    {"_id": 0, "chunk_index": 1, "in_playlist": 1, "reason": 1})
                if doc is not None:
                    self._known[index] = doc
        return self._known, top

    def _strip(self, current: Version, new: set[int]) -> str:
        known, top = self._chunk_docs(current)
        if top < 0:
            return ""
        window = set(current.chunks)
        cells = []
        for index in range(max(0, top + 1 - STRIP_MAX), top + 1):
            doc = known.get(index)
            if index in window:
                kind, tip = ("new" if index in new else "window"), "in the playlist window"
            elif doc is None:
                kind, tip = ("gap", "never arrived (a gap in the sequence numbers)") if index < top else \
                    ("pending", "not recorded yet")
            elif doc.get("in_playlist"):
                kind, tip = "recorded", "verified; slid out of the live window (still in the recording)"
            else:
                kind, tip = "kept_out", f"kept out of the playlist: {doc.get('reason')}"
            color = COLORS[kind]
            fg = "#fff" if kind in ("window", "kept_out", "gap") else "#222"
            cells.append(f"<span title='chunk {index}: {esc(tip)}' style='display:inline-block;min-width:22px;"
                         f"margin:1px;padding:1px 2px;text-align:center;font:11px monospace;background:{color};"
                         f"color:{fg};border-radius:3px'>{index}</span>")
        legend = " ".join(f"<span style='background:{COLORS[k]};padding:0 6px;border-radius:3px'>&nbsp;</span> {t}"
                          for k, t in (("window", "in the window"), ("new", "just added"),
                                       ("recorded", "slid out (in the recording)"), ("gap", "missing"),
                                       ("kept_out", "kept out (bad segment)")))
        return f"<div>{''.join(cells)}</div><div style='font-size:11px;color:#555'>{legend}</div>"

    def _text_html(self, text: str, new: set[int]) -> str:
        lines = []
        for line in text.splitlines():
            style = ""
            if line.startswith("#EXT-X-MEDIA-SEQUENCE"):
                style = "background:#fff59d"
            elif line.startswith("#EXT-X-ENDLIST"):
                style = "background:#c8e6c9;font-weight:bold"
            elif line and not line.startswith("#"):
                chunk = chunk_of(line)
                style = "background:#a5d6a7;font-weight:bold" if chunk in new else "background:#e8f5e9"
            lines.append(f"<span style='{style}'>{esc(line)}</span>" if style else esc(line))
        return f"<details open><summary>playlist text</summary><pre>{chr(10).join(lines)}</pre></details>"

    def _history(self) -> str:
        if len(self.versions) < 2:
            return ""
        rows = []
        shown = self.versions[-8:]
        for before, v in zip([None, *shown[:-1]], shown, strict=True):
            change = ""
            if before is not None:
                added = len(set(v.chunks) - set(before.chunks))
                dropped = len(set(before.chunks) - set(v.chunks))
                change = f"+{added} / -{dropped}" + (" · ENDLIST" if v.ended and not before.ended else "")
            rows.append((v.seen_at.strftime("%H:%M:%S.%f")[:-3], v.media_sequence,
                         "" if v.first_chunk is None else f"{v.first_chunk}–{v.last_chunk}", v.entries, change))
        return ("<p><b>versions seen</b> (newest last)</p>"
                + html_table(["seen at", "media sequence", "chunks", "entries", "added / slid out"], rows,
                             numeric=(1, 3)))

    def _master(self, playlist: m3u8.M3U8, text: str) -> str:
        rows: list[tuple[Any, ...]] = []
        for p in playlist.playlists:
            info = p.stream_info
            res = "x".join(map(str, info.resolution)) if info.resolution else ""
            rows.append((p.uri, res, f"{(info.bandwidth or 0) / 1000:,.0f} kbit/s",
                         f"{(info.average_bandwidth or 0) / 1000:,.0f} kbit/s", info.codecs, info.frame_rate))
        table = html_table(["variant playlist", "resolution", "BANDWIDTH (peak)", "AVERAGE-BANDWIDTH", "CODECS",
                            "fps"], rows, numeric=(2, 3))
        return (f"<p><code>{esc(self.stream_id)}/{esc(self.name)}</code> · master playlist: "
                f"{len(rows)} rendition(s), highest first</p>{table}"
                f"<details><summary>playlist text</summary><pre>{esc(text)}</pre></details>")
