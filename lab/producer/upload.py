"""`lab upload FILE --watch` (the reference's test_video.sh): upload a video through the API with a progress
bar, then follow it through the pipeline, status by status, to its playback URL.

The functions below are also what the VOD uploader thread and `lab bench vod` use to upload.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from lab.apiclient import client, detail
from lab.config import settings

POLL_S = 0.5
WATCH_TIMEOUT_S = 1800.0

Progress = Callable[[int, int], None]  # (bytes sent, total bytes)


class UploadError(RuntimeError):
    """One line for the user: what failed and, from the API, its `detail`."""


class ProgressFile(io.RawIOBase):
    """A binary file that reports how much of it has been read. httpx streams a multipart body by reading
    the file in 64 KiB chunks as it sends them, so bytes read ~ bytes handed to the socket."""

    def __init__(self, raw: BinaryIO, total: int, on_progress: Progress):
        super().__init__()
        self._raw, self._total, self._on_progress = raw, total, on_progress
        self._sent = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def fileno(self) -> int:  # httpx sizes the body from it, so the request has a Content-Length
        return self._raw.fileno()

    def tell(self) -> int:
        return self._raw.tell()

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        position = self._raw.seek(offset, whence)
        self._sent = position
        return position

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._sent += len(data)
        self._on_progress(min(self._sent, self._total), self._total)
        return data


def api_client(timeout: float = 300.0) -> httpx.Client:
    """The upload answers once the file is stored and cut into segments: allow for a large file."""
    return client(timeout)


def check_file(path: str | Path) -> Path:
    """The file to upload, or UploadError saying plainly why it cannot be."""
    file = Path(path).expanduser()
    if not file.exists():
        raise UploadError(f"{path}: no such file")
    if not file.is_file():
        raise UploadError(f"{path}: not a regular file")
    if not os.access(file, os.R_OK):
        raise UploadError(f"{path}: not readable (permissions)")
    size = file.stat().st_size
    if size == 0:
        raise UploadError(f"{path}: the file is empty")
    if size > settings.vod_max_upload_bytes:
        raise UploadError(f"{path}: {size} bytes is over VOD_MAX_UPLOAD_BYTES ({settings.vod_max_upload_bytes})")
    return file


def upload_file(client: httpx.Client, path: Path, title: str, on_progress: Progress | None = None) -> dict[str, Any]:
    """`POST /vod/upload` streaming the file (never read into memory); returns the API's answer."""
    size = path.stat().st_size
    with open(path, "rb") as raw:
        body: BinaryIO = ProgressFile(raw, size, on_progress) if on_progress else raw  # type: ignore[assignment]
        try:
            resp = client.post("/vod/upload", files={"file": (path.name, body, "application/octet-stream")},
                               data={"title": title})
        except httpx.HTTPError as exc:
            raise UploadError(f"upload to {settings.api_base} failed: {exc}") from None
    if resp.status_code >= 400:
        raise UploadError(f"upload refused ({resp.status_code}): {detail(resp)}")
    return resp.json()


def get_json(client: httpx.Client, path: str) -> tuple[int, dict[str, Any]]:
    try:
        resp = client.get(path)
    except httpx.HTTPError as exc:
        raise UploadError(f"GET {path} failed: {exc}") from None
    try:
        body = resp.json()
    except ValueError:
        body = {"detail": resp.text[:200]}
    return resp.status_code, body


@dataclass(frozen=True)
class Transition:
    status: str
    at: str  # as the catalog recorded it (ISO 8601, UTC)
    reason: str | None = None


def watch_status(client: httpx.Client, stream_id: str, *, timeout_s: float = WATCH_TIMEOUT_S,
                 poll_s: float = POLL_S) -> Iterator[tuple[Transition, dict[str, Any]]]:
    """Each status transition once, in order, with the time the pipeline recorded for it (from the stream's
    status_history), until `ready` or `failed`. UploadError on an API error or when `timeout_s` passes."""
    seen = 0
    deadline = time.monotonic() + timeout_s
    while True:
        status, doc = get_json(client, f"/vod/{stream_id}/metadata")
        if status != 200:
            raise UploadError(f"metadata of {stream_id} ({status}): {doc.get('detail')}")
        history = doc.get("status_history") or []
        for entry in history[seen:]:
            yield Transition(entry["status"], entry["at"], entry.get("reason")), doc
        seen = len(history)
        if doc.get("status") in ("ready", "failed"):
            return
        if time.monotonic() > deadline:
            raise UploadError(f"{stream_id} still {doc.get('status')} after {timeout_s:.0f} s")
        time.sleep(poll_s)


# --- the command -----------------------------------------------------------------------------------

def _out(text: str, end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


@contextmanager
def progress_bar(total: int) -> Iterator[Progress]:
    """A tqdm bar over the bytes sent; once they all are, one line on what the API does before it answers.
    tqdm redraws in place on a terminal; into a log it writes at most every 2 s."""
    from tqdm import tqdm  # only `lab upload` draws a bar: the uploader thread and the bench do not

    interactive = sys.stdout.isatty()
    with tqdm(total=total, desc="  upload", unit="B", unit_scale=True, file=sys.stdout, dynamic_ncols=True,
              mininterval=0.1 if interactive else 2.0) as bar:

        def show(sent: int, _total: int) -> None:
            if bar.disable:  # closed: everything was sent
                return
            bar.update(sent - bar.n)
            if sent >= total:
                bar.close()
                _out("  the API is probing the file, cutting it into segments and publishing their events ...")

        yield show


def _clock(iso: str) -> str:
    """The catalog's UTC time as local wall-clock time, as the reference's script printed it."""
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S.%f")[:-3]
    except ValueError:
        return iso


MEANING = {
    "uploaded": "stored, cut into segments, one event per segment in Kafka",
    "processing": "a Spark batch took the segments; their tasks wait for executor cores",
    "transcoding": "the first segment task started: segments being transcoded on the executors",
    "ready": "every rendition in S3, playlists written",
    "failed": "",
}


def upload_cli(file: str, title: str | None = None, watch: bool = False) -> None:
    """`lab upload FILE [--title T] [--watch]`; exits non-zero, with one line, on any failure."""
    try:
        path = check_file(file)
        with api_client() as client:
            _out(f"uploading {path.name} ({path.stat().st_size / 1e6:.1f} MB) to {settings.api_base}")
            with progress_bar(path.stat().st_size) as show:
                accepted = upload_file(client, path, title or path.stem, on_progress=show)
            stream_id = accepted["stream_id"]
            _out(f"stream_id {stream_id}: {accepted['segments']} segments, {accepted['duration_s']:.1f} s, "
                 f"rungs {', '.join(accepted['rungs'])}")
            if not watch:
                _out(f"follow it with: curl {settings.api_base}/vod/{stream_id}/metadata")
                return
            _follow(client, stream_id)
    except UploadError as exc:
        raise SystemExit(f"lab upload: {exc}") from None


def _follow(client: httpx.Client, stream_id: str) -> None:
    final: dict[str, Any] = {}
    for transition, doc in watch_status(client, stream_id):
        reason = f" ({transition.reason})" if transition.reason else ""
        _out(f"  [{_clock(transition.at)}] {transition.status:<12} {MEANING.get(transition.status, '')}{reason}")
        final = doc
    if final.get("status") == "failed":
        raise UploadError(f"{stream_id} failed: {final.get('failure_reason')}")
    status, body = get_json(client, f"/vod/{stream_id}/manifest")
    if status != 200:
        raise UploadError(f"manifest of {stream_id} ({status}): {body.get('detail')}")
    latency = final.get("processing_latency_ms")
    _out(f"ready after {latency / 1000:.1f} s (upload -> ready)" if latency else "ready")
    _out("playback URL (signed; ffmpeg, VLC or hls.js play it):")
    _out(f"  {body['manifest_url']}")
    _out(f"player: {settings.api_public_base}/player?src={_quote(body['manifest_url'])}")


def _quote(url: str) -> str:
    from urllib.parse import quote

    return quote(url, safe="")
