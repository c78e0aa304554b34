"""Signed playlists for players, and a local hls.js player page (no internet needed at run time)."""

from __future__ import annotations

from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import FileResponse, HTMLResponse, Response

from lab import playback
from lab.stack import tools

router = APIRouter(tags=["playback"])
PLAYER_HTML = FilePath(__file__).parent / "player.html"


@router.get("/play/{stream_id}/{name}", response_class=Response,
            responses={200: {"content": {"application/vnd.apple.mpegurl": {}}}})
def play(stream_id: Annotated[str, Path(pattern=r"^(vod|live)-[0-9a-f]{10,12}$")],
         name: Annotated[str, Path(pattern=playback.PLAYLIST_NAME.pattern)],
         exp: Annotated[int, Query(description="expiry, epoch seconds")],
         sig: Annotated[str, Query(min_length=8, max_length=128)]) -> Response:
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
    return FileResponse(tools.hlsjs(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
