"""The writes every live engine makes, one copy for all of them: where an engine writes (`Outputs`), the live
playlists, the background views of the stream documents, and the one end-of-stream write.

The end of a stream, by RFC 8216 6.2.1: a live playlist may change only by appending, removing segments from
its head (with MEDIA-SEQUENCE incremented to match) and finally adding EXT-X-ENDLIST. So the live playlist
keeps its last window and gains ENDLIST; the whole recording is a separate VOD playlist at its own key
(`recording.m3u8`), written first, and the stream document says where it is (`recording_path`). Every write
here is the same on a replay: the end time is the end marker's Kafka time and the history entry is added
with $addToSet, so a replayed end marker rewrites the same bytes and documents.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from lab import catalog, storage
from lab.config import settings
from lab.streaming import live_io
from lab.streaming.common import Received
from lab.streaming.live_logic import Entry, StreamPlan, StreamState, render_playlist, render_recording

STATE_NAME = "live-state.json"


@dataclass(frozen=True)
class Outputs:
    """Where an engine writes: the lab's own keys and collections (prefix ""), or a bench-only namespace,
    so a benchmark engine can process the same events beside the running query without touching its
    playlists, state or documents."""

    prefix: str = ""

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def playlist_key(self, stream_id: str) -> str:
        return self._key(storage.live_playlist_key(stream_id))

    def recording_key(self, stream_id: str) -> str:
        return self._key(storage.recording_playlist_key(stream_id))

    def state_key(self, stream_id: str) -> str:
        return self._key(f"{stream_id}/{STATE_NAME}")

    def page_key(self, stream_id: str, page: int) -> str:
        return self._key(f"{stream_id}/recording/{page}.json")

    @property
    def chunks(self) -> str:
        return f"bench_{self.prefix.replace('-', '_')}_live" if self.prefix else catalog.LIVE

    @property
    def states(self) -> str:
        return f"{self.chunks}_state" if self.prefix else catalog.LIVE_STATE


# --- live playlists -------------------------------------------------------------------------------------

def write_playlists(outputs: Outputs, plans: Iterable[StreamPlan]) -> dict[str, datetime]:
    """The rolling playlist of every stream whose window changed (parallel PUTs); returns when each was
    written (what `processing_latency_ms` measures to)."""
    changed = [p.after for p in plans if p.window_changed]

    def write(state: StreamState) -> datetime:
        text = render_playlist(state.stream_id, state.window, target_duration=state.target_duration,
                               ended=False, media_sequence=state.media_sequence)
        storage.put_playlist(settings.bucket_manifests, outputs.playlist_key(state.stream_id), text,
                             cache_control=storage.LIVE_PLAYLIST)
        return datetime.now(UTC)

    written = live_io.parallel(write, changed)
    return {state.stream_id: at for state, at in zip(changed, written, strict=True)}


# --- the stream documents' live view ----------------------------------------------------------------------

_VIEWS: dict[Outputs, live_io.ViewWriter] = {}
_VIEWS_LOCK = threading.Lock()


def views(outputs: Outputs) -> live_io.ViewWriter:
    with _VIEWS_LOCK:
        return _VIEWS.setdefault(outputs, live_io.ViewWriter(outputs.chunks, outputs.states))


def submit_views(outputs: Outputs, plans: Iterable[StreamPlan], written: dict[str, datetime]) -> None:
    for plan in plans:
        if plan.new_chunks and plan.end is None:
            fields = {**plan.after.view_fields(), "state_version": plan.after.version}
            if plan.after.stream_id in written:
                fields["manifest_updated_at"] = written[plan.after.stream_id]
            views(outputs).submit(plan.after.stream_id, fields)


# --- the end of a stream ------------------------------------------------------------------------------------

FINAL_WRITES = ("recording", "live_final")  # the playlist_writes labels of write_final, in its order


def write_final(outputs: Outputs, state: StreamState, entries: Sequence[Entry], end: Received) -> None:
    """The end marker's writes, before each engine records its own state: the recording (a VOD playlist of
    its own, immutable), then the live playlist's last window with ENDLIST, then status `vod` with where the
    recording is. `state` is the stream's state after its last chunk; `entries` its whole recording."""
    sid = state.stream_id
    recording = render_recording(sid, entries, target_duration=state.target_duration)
    storage.put_playlist(settings.bucket_manifests, outputs.recording_key(sid), recording,
                         cache_control=storage.IMMUTABLE)
    last = render_playlist(sid, state.window, target_duration=state.target_duration, ended=True,
                           media_sequence=state.media_sequence)
    storage.put_playlist(settings.bucket_manifests, outputs.playlist_key(sid), last, cache_control=storage.IMMUTABLE)
    views(outputs).discard(sid)
    ended_at = datetime.fromtimestamp(end.kafka_timestamp_ms / 1000, UTC)
    catalog.collection(outputs.chunks).update_one(
        {"_id": catalog.stream_doc_id(sid)},
        {"$set": {**state.view_fields(), "state_version": state.version, "status": "vod", "ended_at": ended_at,
                  "recorded_chunks": len(entries),
                  "recorded_duration_s": sum(e.duration_ms for e in entries) / 1000,
                  "recording_path": f"{settings.bucket_manifests}/{outputs.recording_key(sid)}",
                  "end_published_at_ms": end.event.published_at_ms},
         "$addToSet": {"status_history": {"status": "vod", "at": ended_at}}},
        upsert=bool(outputs.prefix))
    live_io.counted(outputs.chunks, "update")
