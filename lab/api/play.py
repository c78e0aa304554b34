"""Signed playlists for players, and a local hls.js player page (no internet needed at run time)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from lab import playback, toolpaths

router = APIRouter(tags=["playback"])
PLAYER_HTML = FilePath(__file__).parent / "player.html"
SIG_PATTERN = r"^[0-9a-f]{32}$"  # playback._mac: 128 bits of HMAC-SHA256, hex


@router.get("/play/{stream_id}/{name}", response_class=Response,
            responses={200: {"content": {"application/vnd.apple.mpegurl": {}}}})
def play(stream_id: Annotated[str, Path(pattern=r"^(vod|live)-[0-9a-f]{10,12}$")],
         name: Annotated[str, Path(pattern=playback.PLAYLIST_NAME.pattern)],
         exp: Annotated[int, Query(ge=0, lt=2**63, description="expiry, epoch seconds")],
         sig: Annotated[str, Query(pattern=SIG_PATTERN, description="the URL's signature, 32 hex digits")],
         ) -> Response:
    """A stored playlist with every URI signed for this request (segments: presigned S3 GETs)."""
    try:
        signed = playback.signed_playlist(stream_id, name, exp, sig)
    except playback.SignatureError as exc:
        raise HTTPException(403, str(exc)) from None
    if signed is None:
        raise HTTPException(404, f"name: {stream_id} has no playlist {name} (yet)")
    text, cache_control = signed
    return Response(text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": cache_control})


@router.get("/player", response_class=HTMLResponse, include_in_schema=False)
def player() -> HTMLResponse:
    """An hls.js player: /player?src=<signed playlist URL>."""
    return HTMLResponse(PLAYER_HTML.read_text())


@router.get("/player/hls.min.js", include_in_schema=False)
def hlsjs() -> FileResponse:
    """hls.min.js as `make lab` fetched it: the API only reads the file, a request never fetches a tool."""
    path = toolpaths.hlsjs_file()
    if not path.is_file():
        raise HTTPException(503, f"hls.js: {path} is missing; run `make lab` (it fetches hls.js once at set-up)")
    return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})
