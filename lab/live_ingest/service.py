"""`lab live-ingest`: the ingest service. It arms an RTMP and an SRT listener (ffmpeg, one publisher each) for
the newest stream started with `"ingest": "rtmp"` / `"srt"`, and takes the browser camera's recording pieces
over HTTP (`POST /ingest/{stream_id}/pieces`); each publisher becomes a `Session` (session.py) that publishes
through the same `LiveStream` path as the lab's encoder.

The browser route: authenticated by the stream's key (`X-Stream-Key`), one publisher per stream (the first
`X-Publisher` id to send a piece holds it: a second tab gets 409), each piece at most
LIVE_INGEST_MAX_PIECE_BYTES (413) and at most LIVE_INGEST_MAX_PIECES_PER_S (429), the first one a WebM or MP4
recording (415), none after the stream ended (410). CORS: the JupyterLab page's origin differs from this
service's, and the pieces carry custom headers, so the browser sends a preflight that must be answered.
Bytes never reach Kafka: a piece goes to ffmpeg's stdin, its segments to S3, only their metadata to Kafka.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from lab import catalog, events, topics
from lab.apiclient import client
from lab.config import settings
from lab.live_ingest import registry
from lab.live_ingest.session import Session, pipe_source, rtmp_source, srt_source

log = logging.getLogger(__name__)
TICK_S = 1.0
PIECE_QUEUE = 20          # pieces waiting for ffmpeg's stdin at most (ffmpeg slower than the camera: 503)
CAMERA_HTML = FilePath(__file__).parent / "camera.html"
WEBM_MAGIC, MP4_BOX = b"\x1a\x45\xdf\xa3", b"ftyp"
CLOCK_SKEW_MS = 10_000    # a browser's recording start further than this from ours is ignored
LiveId = Annotated[str, Path(pattern=events.LIVE_ID, description="live-<10 hex>")]


# --- OBS: the RTMP and SRT listeners -------------------------------------------------------------------

class Listeners:
    """One armed listener per protocol, for the newest stream waiting for such a publisher."""

    SOURCES = {"rtmp": rtmp_source, "srt": srt_source}

    def __init__(self, producer, host: str | None = None) -> None:
        self.producer, self.host = producer, host
        self.armed: dict[str, tuple[str, Session, threading.Thread]] = {}

    def tick(self, entries: list[dict]) -> None:
        for path, make in self.SOURCES.items():
            waiting = [e for e in entries if e.get("ingest") == path and not e.get("end_wanted")
                       and not e.get("publisher_at")]
            newest = max(waiting, key=lambda e: e["opened_at"], default=None)
            current = self.armed.get(path)
            if current and current[2].is_alive():
                sid, session, _ = current
                if not session.connected.is_set() and (newest is None or newest["_id"] != sid):
                    session.stop("re-armed for a newer stream" if newest else "stream ended", clean=False)
                continue
            if newest is not None:
                session = Session(newest["_id"], make(newest["key"], self.host), producer=self.producer,
                                  api_factory=client)
                thread = threading.Thread(target=self._serve, args=(session,), name=f"{path}-listener", daemon=True)
                self.armed[path] = (newest["_id"], session, thread)
                thread.start()
                log.info("%s listener armed for %s", path, newest["_id"])

    def _serve(self, session: Session) -> None:
        session.start()
        threading.Thread(target=_claim_when_connected, args=(session,), daemon=True).start()
        outcome = session.run()
        if outcome.refused:
            log.warning("%s: %s", session.stream_id, outcome.refused)

    def stop(self) -> None:
        for _, session, thread in self.armed.values():
            session.stop("ingest service stopping")
            thread.join(30)


def _claim_when_connected(session: Session) -> None:
    while not session.connected.wait(1.0):
        if session.proc is None or session.proc.poll() is not None:
            return
    registry.claim(session.stream_id, session.source.path)


# --- the browser camera: recording pieces over HTTP ------------------------------------------------------

class BrowserSession:
    """A Session fed from the pieces one browser posts; a writer thread keeps the event loop free."""

    def __init__(self, stream_id: str, publisher: str, started_ms: int | None, producer) -> None:
        self.stream_id, self.publisher = stream_id, publisher
        self.started_ms = started_ms
        self.session = Session(stream_id, pipe_source(), producer=producer, api_factory=client,
                               origin_ms=lambda: self.started_ms)
        self.pieces: queue.Queue[bytes | None] = queue.Queue(PIECE_QUEUE)
        self.received = 0
        self.window: list[float] = []
        self.closed = False
        self.session.start()
        self.session.mark_connected()  # the first piece is the publisher arriving
        self.thread = threading.Thread(target=self.session.run, name=f"browser-{stream_id}", daemon=True)
        self.thread.start()
        threading.Thread(target=self._write, name=f"pieces-{stream_id}", daemon=True).start()

    def _write(self) -> None:
        stdin = self.session.proc.stdin
        assert stdin is not None
        while (piece := self.pieces.get()) is not None:
            try:
                stdin.write(piece)
                stdin.flush()
            except (BrokenPipeError, OSError, ValueError):
                break
        try:
            stdin.close()  # EOF: ffmpeg closes the last segment whole, the stream ends
        except OSError:
            pass

    def over_rate(self) -> bool:
        now = time.monotonic()
        self.window = [t for t in self.window if now - t < 1.0] + [now]
        return len(self.window) > settings.live_ingest_max_pieces_per_s

    def add(self, piece: bytes, final: bool) -> None:
        try:
            if piece:
                self.pieces.put_nowait(piece)
                self.received += 1
            if final:
                self.close()
        except queue.Full:
            raise HTTPException(503, "body: the ingest is behind (ffmpeg slower than the camera); "
                                     "send smaller pieces or a lower resolution") from None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pieces.put(None)

    def status(self) -> dict:
        out = self.session.outcome
        return {"stream_id": self.stream_id, "pieces": self.received, "chunks": out.chunks, "error": out.error,
                "ended": not self.thread.is_alive()}


def create_app(producer) -> FastAPI:
    app = FastAPI(title="Lab live ingest (browser camera)", docs_url=None, redoc_url=None)
    origins = sorted({f"http://{h}:{settings.jupyter_port}" for h in (settings.lab_public_host, "localhost",
                                                                      "127.0.0.1")})
    app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                       allow_headers=["Content-Type", "X-Stream-Key", "X-Publisher", "X-Recording-Started-Ms"])
    sessions: dict[str, BrowserSession] = {}
    lock = asyncio.Lock()  # held across awaits: an asyncio lock, never a thread lock, in the event loop

    def check(stream_id: str, key: str | None) -> dict:
        if not key:
            raise HTTPException(401, "X-Stream-Key: header missing (the ingest_key POST /streams/start gave)")
        entry = registry.entry(stream_id)
        if entry is None:
            raise HTTPException(410 if catalog.stream_doc(catalog.LIVE, stream_id) else 404,
                                f"stream_id: {stream_id} is not an open live stream")
        if not registry.key_matches(stream_id, key):
            raise HTTPException(403, "X-Stream-Key: not this stream's key")
        if entry.get("ingest") != "browser":
            raise HTTPException(409, f"stream_id: {stream_id} was started for ingest {entry.get('ingest')!r}, "
                                     "not 'browser'")
        return entry

    @app.post("/ingest/{stream_id}/pieces", status_code=202)
    async def piece(stream_id: LiveId, request: Request,
                    x_stream_key: Annotated[str | None, Header()] = None,
                    x_publisher: Annotated[str, Header(pattern=r"^[A-Za-z0-9_-]{8,64}$")] = "anonymous-publisher",
                    x_recording_started_ms: Annotated[int | None, Header()] = None,
                    final: Annotated[bool, Query()] = False) -> dict:
        entry = await asyncio.to_thread(check, stream_id, x_stream_key)
        length = request.headers.get("content-length")
        limit = settings.live_ingest_max_piece_bytes
        if length and length.isdigit() and int(length) > limit:
            raise HTTPException(413, f"body: a piece is at most {limit} bytes (LIVE_INGEST_MAX_PIECE_BYTES)")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise HTTPException(413, f"body: a piece is at most {limit} bytes (LIVE_INGEST_MAX_PIECE_BYTES)")
        async with lock:
            current = sessions.get(stream_id)
            if current is None:
                if entry.get("publisher_at"):
                    raise HTTPException(410, f"stream_id: {stream_id} already had its publisher; start a new stream")
                if not body:
                    raise HTTPException(422, "body: the first piece is empty")
                if not (body.startswith(WEBM_MAGIC) or body[4:8] == MP4_BOX):
                    raise HTTPException(415, "body: not a WebM or MP4 recording (what MediaRecorder makes)")
                started = x_recording_started_ms
                if started is None or abs(started - events.now_ms()) > CLOCK_SKEW_MS:
                    started = None
                await asyncio.to_thread(registry.claim, stream_id, "browser")
                for gone in [sid for sid, s in sessions.items() if s.closed and not s.thread.is_alive()]:
                    del sessions[gone]  # ended: a late piece now finds the stream closed (410)
                current = sessions[stream_id] = BrowserSession(stream_id, x_publisher, started, producer)
            elif current.publisher != x_publisher:
                raise HTTPException(409, "X-Publisher: another publisher is sending this stream")
            if current.closed:
                raise HTTPException(410, f"stream_id: {stream_id}: its recording was closed")
            if current.over_rate():
                raise HTTPException(429, f"body: at most {settings.live_ingest_max_pieces_per_s:g} pieces/s",
                                    headers={"Retry-After": "1"})
            current.add(bytes(body), final)
            return current.status()

    @app.get("/ingest/{stream_id}/status")
    def status(stream_id: LiveId) -> dict:
        current = sessions.get(stream_id)
        if current is None:
            raise HTTPException(404, f"stream_id: no browser publisher for {stream_id}")
        return current.status()

    @app.get("/camera", response_class=HTMLResponse, include_in_schema=False)
    def camera() -> HTMLResponse:
        """The camera page the widget shows: stream id, key and player URL come in the fragment (#...)."""
        return HTMLResponse(CAMERA_HTML.read_text(), headers={"Cache-Control": "no-store"})

    @app.get("/metrics", include_in_schema=False)
    def metrics_endpoint() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok", "browser_sessions": sum(s.thread.is_alive() for s in sessions.values())}

    app.state.sessions = sessions
    return app


# --- the process -----------------------------------------------------------------------------------------

def main(host: str | None = None) -> None:
    """`host`: where the listeners and the HTTP route bind (LAB_HOST; containers: 0.0.0.0)."""
    import uvicorn

    producer = topics.producer(**{"client.id": "lab-live-ingest"})
    listeners = Listeners(producer, host)
    stop = threading.Event()

    def arm_loop() -> None:
        while not stop.wait(TICK_S):
            try:
                listeners.tick(registry.open_streams())
            except Exception as exc:  # the catalog away: try again next tick
                log.warning("ingest: reading the open streams failed (%s)", exc)

    threading.Thread(target=arm_loop, name="ingest-arm", daemon=True).start()
    server = uvicorn.Server(uvicorn.Config(create_app(producer), host=host or settings.lab_host,
                                           port=settings.live_ingest_port, log_level="warning", access_log=False))
    try:  # uvicorn handles SIGTERM (`lab down`): the listeners then end their streams cleanly
        server.run()
    finally:
        stop.set()
        listeners.stop()
        producer.flush(10)
