"""An HLS player inline: an iframe of the API's own hls.js page (`/player?src=<signed playlist URL>`).

hls.js is fetched from the npm registry at set-up and served by the API, so playback needs no internet.
The player page publishes `window.playerState` (currentTime, fatal, levels, ...), which the browser test reads.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from urllib.parse import quote

import httpx

from lab.config import settings
from lab.widgets._base import HTMLDisplay, error


def player_url(src: str) -> str:
    return f"{settings.api_public_base.rstrip('/')}/player?src={quote(src, safe='')}"


class Player:
    """Displays as an iframe; `url` is the page, `src` the signed playlist it plays."""

    def __init__(self, src: str, *, label: str = "", height: int = 360):
        self.src, self.label, self.height = src, label, height

    @property
    def url(self) -> str:
        return player_url(self.src)

    def _repr_html_(self) -> str:
        url = html.escape(self.url, quote=True)
        return (f'<iframe src="{url}" width="100%" height="{self.height + 40}" style="border:0;max-width:720px" '
                f'allow="autoplay; fullscreen"></iframe>'
                f'<div style="font:12px system-ui"><a href="{url}" target="_blank">open the player in a new tab</a>'
                f'{" · " + html.escape(self.label) if self.label else ""}</div>')

    def __repr__(self) -> str:
        return f"HLS player{': ' + self.label if self.label else ''}"


def _signed(path: str) -> dict:
    from lab.apiclient import detail

    resp = httpx.get(f"{settings.api_base}{path}", timeout=15)
    if resp.status_code != 200:
        raise RuntimeError(f"GET {path}: {resp.status_code} {detail(resp)}")
    return resp.json()


def vod_player(stream_id: str, *, height: int = 360) -> Player | HTMLDisplay:
    """The master playlist of a ready VOD stream (`GET /vod/{id}/manifest`), or a short red message."""
    return _player(f"/vod/{stream_id}/manifest", lambda _: f"{stream_id} (VOD, every rendition)", height)


def live_player(stream_id: str, *, height: int = 360) -> Player | HTMLDisplay:
    """`GET /streams/{id}/live`: the live playlist while live; once ended, its recording (`recording_url`, a
    VOD playlist of its own: the live playlist only gains ENDLIST, RFC 8216 6.2.1)."""
    return _player(f"/streams/{stream_id}/live", lambda answer: f"{stream_id} ({answer['status']})", height)


def _player(path: str, label: Callable[[dict], str], height: int) -> Player | HTMLDisplay:
    try:
        answer = _signed(path)
    except Exception as exc:
        return error(exc)
    return Player(answer.get("recording_url") or answer["manifest_url"], label=label(answer), height=height)


def play(src: str, *, label: str = "", height: int = 360) -> Player:
    """Any playlist URL the browser can reach (a signed `/play/...` URL, usually)."""
    return Player(src, label=label, height=height)
