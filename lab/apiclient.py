"""The control plane seen from outside: an httpx client with the API key, and its error messages. A neutral
module beside lab/api (not inside it), so the producer, `lab upload` and the widgets call the API without
importing the API server's package."""

from __future__ import annotations

import httpx

from lab.config import settings


def client(timeout: float = 30.0) -> httpx.Client:
    """Every caller of the API (the producer, `lab upload`, the lessons): base URL and X-API-Key from .env."""
    # uvicorn closes an idle keep-alive connection after 5 s (its timeout_keep_alive), httpx keeps one for
    # 5 s too: a request sent on a connection the server is closing at that instant fails with "connection
    # reset by peer" (seen in lesson 06). Expiring ours first removes the race.
    return httpx.Client(base_url=settings.api_base, headers={"X-API-Key": settings.lab_api_key},
                        timeout=httpx.Timeout(timeout, connect=5.0), limits=httpx.Limits(keepalive_expiry=2.0))


def detail(resp: httpx.Response) -> str:
    """The API's `detail` (FastAPI's error body), or the start of the body when there is none."""
    try:
        found = resp.json().get("detail")
    except (ValueError, AttributeError):
        found = None
    if isinstance(found, list):  # FastAPI's own validation errors: a list of {loc, msg}
        found = "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in found)
    return str(found or resp.text[:200] or resp.reason_phrase)
