"""Every started live stream ends: the reaper ends the ones whose publisher cannot.

A stream ends with its end marker (`live_end` on the stream's own Kafka partition, after its last chunk), which
the Spark live query turns into the finished playlist and the status `vod`. The publisher asks for it through
`POST /streams/end`. When that never comes (the publisher was killed, its network went, Kafka refused the
end), the reaper, running in the API process, publishes the same marker, with a reason in the catalog:

- silence: no sign of the publisher for LIVE_SILENCE_TARGETS target durations (LIVE_FIRST_CHUNK_WAIT_S before a
  first sign). A sign is a heartbeat of the publisher (`live_open.seen_at`) or a new chunk in the stream
  document. The publisher heartbeats while S3 is away, so an S3 outage is not silence; silence is measured on
  the reaper's own clock, from the moment it last saw a sign change, so clocks need not agree and a reaper
  that could not read the catalog (or just restarted) starts counting again rather than ending everything.
- an end asked for and refused (`POST /streams/end` answered 503 because Kafka was down): retried every sweep
  until Kafka acknowledges it.

Once a stream's status is `vod` its `live_open` entry is deleted. The marker is safe after the last chunk:
a publisher that asked for an end had every chunk acknowledged first, and a silent one sends nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Producer

from lab import catalog, events, metrics, topics
from lab.config import settings
from lab.live_ingest import registry

log = logging.getLogger(__name__)
FLUSH_S = 5.0


def silence_bound_s() -> float:
    return settings.live_silence_targets * settings.live_segment_seconds


def sweep_every_s() -> float:
    """Often enough that a silent stream ends within a quarter bound after the bound."""
    return max(0.5, min(settings.live_segment_seconds, silence_bound_s() / 4))


class Reaper:
    def __init__(self, producer: Producer, clock: Callable[[], float] = time.monotonic):
        self.producer = producer
        self.clock = clock
        self._signs: dict[str, tuple[Any, float]] = {}  # stream_id -> (last sign seen, when it changed)

    def sweep(self) -> list[str]:
        """One look at every open stream; returns the streams it published an end marker for."""
        ended = []
        entries = registry.open_streams()
        for entry in entries:
            sid = entry["_id"]
            doc = catalog.stream_doc(catalog.LIVE, sid)
            if doc is None or doc.get("status") != "live":
                registry.close(sid)
                self._signs.pop(sid, None)
                continue
            reason = self._reason(entry, doc)
            if reason and not entry.get("end_published_at") and self._end(sid, reason):
                ended.append(sid)
        for gone in set(self._signs) - {e["_id"] for e in entries}:
            del self._signs[gone]
        return ended

    def forget(self) -> None:
        """After a sweep that could not read: every stream's silence is counted again from now."""
        self._signs.clear()

    def _reason(self, entry: dict[str, Any], doc: dict[str, Any]) -> str | None:
        if entry.get("end_wanted"):
            return entry["end_wanted"]
        sid, now = entry["_id"], self.clock()
        sign = (entry.get("seen_at"), doc.get("latest_chunk"))
        if sid not in self._signs or self._signs[sid][0] != sign:
            self._signs[sid] = (sign, now)
            return None
        quiet = now - self._signs[sid][1]
        alive_once = sign != (None, None)
        bound = silence_bound_s() if alive_once else settings.live_first_chunk_wait_s
        if quiet < bound:
            return None
        what = "no sign of the publisher" if alive_once else "no first chunk"
        return f"silence: {what} for {quiet:.0f} s (bound {bound:g} s)"

    def _end(self, stream_id: str, reason: str) -> bool:
        """The end marker on the stream's own partition, the reason in the catalog; False if Kafka did not
        acknowledge it (the next sweep tries again)."""
        catalog.upsert(catalog.LIVE, stream_id, catalog.STREAM_DOC, {"end_reason": reason,
                                                                     "end_requested_at": catalog.now()})
        registry.want_end(stream_id, reason)
        marker = events.LiveEndEvent(stream_id=stream_id, published_at_ms=events.now_ms())
        topics.publish(self.producer, settings.live_topic, stream_id, events.encode(marker))
        if self.producer.flush(FLUSH_S):
            log.warning("stream %s: end marker not acknowledged by Kafka (%s); retrying", stream_id, reason)
            return False
        registry.end_published(stream_id)
        metrics.live_streams_reaped.labels(reason.split(":")[0]).inc()
        log.info("stream %s ended by the pipeline: %s", stream_id, reason)
        return True


def run(reaper: Reaper, stop: threading.Event) -> None:
    """Sweep until `stop`; a sweep that fails (catalog away) is logged and counts no silence."""
    while not stop.wait(sweep_every_s()):
        try:
            reaper.sweep()
        except Exception as exc:  # the catalog or Kafka away: try again next sweep, never die
            log.warning("reaper: sweep failed (%s); silence is counted again from the next sweep", exc)
            reaper.forget()


def start(producer: Producer) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=run, args=(Reaper(producer), stop), name="live-reaper", daemon=True)
    thread.start()
    return thread, stop
