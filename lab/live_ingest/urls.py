"""Where a publisher connects, per ingest path: the one place these URLs are assembled."""

from __future__ import annotations

from lab.config import settings

RTMP_APP = "live"  # the RTMP application name: OBS's server URL ends with it, the stream key follows


def rtmp_server() -> str:
    """What OBS calls the Server (Settings > Stream > Custom); the stream key goes in its own field."""
    return f"rtmp://{settings.lab_public_host}:{settings.rtmp_port}/{RTMP_APP}"


def srt_url(key: str | None = None) -> str:
    """SRT caller URL; the stream key is the SRT passphrase (encryption the listener enforces)."""
    base = f"srt://{settings.lab_public_host}:{settings.srt_port}?mode=caller&latency=200000"
    return f"{base}&passphrase={key}" if key else base


def pieces_url(stream_id: str) -> str:
    """Where the browser camera widget posts its recording pieces."""
    return f"{ingest_public_base()}/ingest/{stream_id}/pieces"


def publish_url(ingest: str, stream_id: str) -> str | None:
    return {"rtmp": rtmp_server(), "srt": srt_url(), "browser": pieces_url(stream_id)}.get(ingest)


def ingest_base() -> str:
    """The ingest service's HTTP address inside the lab (tests, the kernel)."""
    return f"http://{settings.lab_host}:{settings.live_ingest_port}"


def ingest_public_base() -> str:
    """The ingest service as a browser reaches it (the camera page, the pieces)."""
    return f"http://{settings.lab_public_host}:{settings.live_ingest_port}"
