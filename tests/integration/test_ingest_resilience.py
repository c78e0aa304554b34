"""Every started stream ends, whatever breaks; a short S3 outage ends none (issue 22), on the real stack.

- kill -9 of a publisher (the lab's own encoder, in a process of its own) mid-stream: no stream stays live; the
  reaper ends it after its silence bound, with the end marker after the last chunk and a reason in the catalog.
- S3 stopped for 20 s in the middle of a stream: the stream stays live, the publisher keeps what it could not
  upload and sends it once S3 is back, and the recording is whole (or names the gap).
- A started stream whose publisher never comes, and an end asked for while Kafka is away: both end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from lab import catalog, stack, storage
from lab.apiclient import client
from lab.config import settings
from lab.live_ingest import registry
from lab.live_ingest.reaper import silence_bound_s
from lab.producer.replay import Replay
from lab.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("stack")]

# The publisher a test kills: the lab's real-time encoder, small, in its own process group (ffmpeg included).
PUBLISHER = """
import sys, threading
from lab.producer.encoder import LiveEncoder
encoder = LiveEncoder(resolution="320x180", fps=15, chunks_per_stream=10_000)
threading.Thread(target=encoder.run_stream, args=(threading.Event(),), daemon=True).start()
while encoder.stream_id is None:
    threading.Event().wait(0.1)
print(encoder.stream_id, flush=True)
threading.Event().wait()
"""


def stream_doc(stream_id: str) -> dict:
    doc = catalog.stream_doc(catalog.LIVE, stream_id)
    assert doc is not None, f"{stream_id}: no stream document"
    return doc


def ended(stream_id: str) -> dict | None:
    doc = stream_doc(stream_id)
    return doc if doc.get("status") == "vod" else None


def end_bound_s() -> float:
    """Silence bound, plus the reaper's sweep and Spark's batch on a loaded machine."""
    return silence_bound_s() + 90


def test_kill_9_of_the_publisher_leaves_no_stream_live() -> None:
    proc = subprocess.Popen([sys.executable, "-c", PUBLISHER], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env=os.environ.copy())
    try:
        assert proc.stdout is not None
        stream_id = proc.stdout.readline().strip()
        assert stream_id.startswith("live-"), f"the publisher printed {stream_id!r}"
        wait_for(lambda: (stream_doc(stream_id).get("latest_chunk") or 0) >= 1, f"two chunks of {stream_id}",
                 timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the publisher and its ffmpeg, as a crash would
        proc.wait()
    killed_at = time.monotonic()
    doc = wait_for(lambda: ended(stream_id), f"{stream_id} ended by the pipeline", timeout=end_bound_s())
    assert time.monotonic() - killed_at >= silence_bound_s() * 0.5, "ended before any silence was measured"
    assert doc["end_reason"].startswith("silence: no sign of the publisher"), doc.get("end_reason")
    text = storage.get_text(settings.bucket_manifests, storage.live_playlist_key(stream_id)) or ""
    assert "#EXT-X-ENDLIST" in text, "the live playlist did not gain ENDLIST"
    chunks = catalog.chunk_docs(catalog.LIVE, stream_id)
    assert chunks and all(c.get("in_playlist") is not False for c in chunks if c["chunk_index"] >= 0)
    wait_for(lambda: registry.entry(stream_id) is None, "the open-stream entry removed", timeout=30)


def test_a_stream_that_never_gets_a_chunk_is_ended_too() -> None:
    """The reaper's bound for a stream with no sign at all is LIVE_FIRST_CHUNK_WAIT_S; an end asked for
    (`want_end`, as the API records before publishing) is published at the next sweep instead."""
    with client() as api:
        stream_id = api.post("/streams/start", json={"title": "never published"}).json()["stream_id"]
    registry.want_end(stream_id, "test: ended before its first chunk")
    doc = wait_for(lambda: ended(stream_id), f"{stream_id} ended", timeout=90)
    assert doc["end_reason"] == "test: ended before its first chunk"


def test_s3_stopped_for_20_s_mid_stream_leaves_it_live_and_whole() -> None:
    replay = Replay()
    stream = replay.start_stream("S3 outage")
    stop = threading.Event()

    def publish() -> None:  # one segment every 2 s, as a real-time source would, through the outage
        while not stop.wait(settings.live_segment_seconds):
            replay.send(stream)

    pump = threading.Thread(target=publish, daemon=True)
    for _ in range(3):
        replay.send(stream)
    pump.start()
    try:
        stack.stop_service("s3")
        time.sleep(20)
        assert stream.backlog() > 0, "S3 was down but nothing waited in the backlog"
        assert stream_doc(stream.stream_id)["status"] == "live", "the stream ended during a 20 s S3 outage"
    finally:
        stack.start_service("s3")
    wait_for(lambda: stream.backlog() == 0, "the backlog handed over after S3 came back", timeout=120)
    time.sleep(2 * settings.live_segment_seconds)
    stop.set()
    pump.join()
    assert stream_doc(stream.stream_id)["status"] == "live"
    replay.end(stream)
    doc = wait_for(lambda: ended(stream.stream_id), "the end after the outage", timeout=120)
    sent = stream.next_sequence
    chunks = [c for c in catalog.chunk_docs(catalog.LIVE, stream.stream_id) if c["chunk_index"] >= 0]
    recorded = sorted(c["chunk_index"] for c in chunks if c.get("in_playlist"))
    dropped = doc.get("publisher_dropped", [])
    assert sorted(recorded + dropped) == list(range(sent)), (
        f"sent 0..{sent - 1}: recorded {recorded}, named as dropped {dropped}")
    assert doc["end_reason"] == "publisher: POST /streams/end"
